"""The cost dashboard in Chromium: opened from a real `/budget dashboard` reply on the fake Discord,
every figure checked against the database, a limit changed, transactions paged, filtered and
downloaded; expired and tampered links and other scopes refused; the operator's view."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from core.ledger import Hold
from core.money import format_usd, usd_to_micros
from core.parts import Scope
from tests.browser.conftest import (
    OPERATOR_TOKEN,
    Site,
    dashboard_link_from_discord,
    save_screenshot,
    unlabelled_controls,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVICES = {"image": 40_000, "research": 12_345, "chat": 2_000, "song": 50_000}
MEMBERS = ("111", "222", "333", "api:reports")
OTHER = Scope("discord", "999")
OTHER_PROMPT = "a prompt only the other server asked"


async def seed(site: Site, scope: Scope) -> None:
    """Two months of transactions in ``scope`` (charged, refunded, one still held), and one in
    another scope that must never show."""
    ledger, draw = site.app.ledger, random.Random(18)
    now = site.clock.utc()

    async def spend(moment: datetime, target: Scope, service: str, user: str, prompt: str) -> Hold:
        with site.clock.at(moment):
            hold = await ledger.reserve(
                target,
                SERVICES[service],
                user=user,
                service=service,
                prompt=prompt,
                request_id=f"r{draw.random()}",
            )
            assert isinstance(hold, Hold)
            if draw.random() < 0.12:
                await ledger.refund(hold)
            else:
                await ledger.settle(hold, SERVICES[service] - draw.randrange(0, 1000))
        return hold

    previous_month = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
    for day in range(31):
        for _ in range(draw.randrange(0, 3)):
            service = draw.choice(list(SERVICES))
            await spend(
                previous_month + timedelta(days=day), scope, service, draw.choice(MEMBERS), f"old {service}"
            )
    this_month = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    for day in range(19):
        for number in range(3):
            service = draw.choice(list(SERVICES))
            moment = this_month + timedelta(days=day, hours=number * 3)
            await spend(moment, scope, service, draw.choice(MEMBERS), f"{service} request {day}-{number}")
    await ledger.reserve(
        scope, 50_000, user="222", service="song", prompt="a song still cooking", request_id="held"
    )
    await spend(now - timedelta(hours=1), OTHER, "image", "777", OTHER_PROMPT)


async def rows(site: Site, sql: str, *params: Any) -> list[Any]:
    return list(await site.app.ledger.database.fetchall(sql, params))


async def text_of(page: Page, selector: str) -> str:
    return " ".join((await page.locator(selector).inner_text()).split())


async def test_dashboard_from_a_discord_link_matches_the_database(
    site: Site, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    guild, link = await dashboard_link_from_discord(site, monkeypatch)
    scope = Scope("discord", guild)
    await seed(site, scope)
    response = await page.goto(link)
    assert response is not None and response.ok
    assert page.url.endswith(f"/dashboard/discord:{guild}")

    # Overview: every figure as the ledger holds it.
    [(used, held)] = await rows(
        site, "SELECT used, held FROM periods WHERE scope = ? AND period = '2026-01'", str(scope)
    )
    limit = usd_to_micros("20")
    assert await text_of(page, "#limit") == f"{format_usd(limit)} (default)"
    assert await text_of(page, "#spent") == format_usd(used)
    assert await text_of(page, "#held") == format_usd(held) == "$0.05"
    assert await text_of(page, "#remaining") == format_usd(limit - used - held)
    assert await text_of(page, "#resets") == "2026-02-01"
    by_service = await rows(
        site,
        "SELECT service, SUM(charged) FROM transactions WHERE scope = ? AND period = '2026-01' "
        "AND status = 'charged' GROUP BY service ORDER BY service",
        str(scope),
    )
    shown = [
        [" ".join(cell.split()) for cell in await row.locator("th, td").all_inner_texts()]
        for row in await page.locator("#services tbody tr").all()
    ]
    assert [cells[:2] for cells in shown] == [[service, format_usd(total)] for service, total in by_service]
    members = await rows(
        site,
        "SELECT user, SUM(CASE WHEN status = 'charged' THEN charged ELSE 0 END) AS spent, "
        "SUM(service != 'router') AS requests FROM transactions "
        "WHERE scope = ? AND period = '2026-01' GROUP BY user ORDER BY spent DESC, requests DESC, user",
        str(scope),
    )
    shown_members = [
        [" ".join(cell.split()) for cell in await row.locator("th, td").all_inner_texts()][:2]
        for row in await page.locator("#members tbody tr").all()
    ]
    assert [[user, cells.split(" (+")[0]] for user, cells in shown_members] == [
        [user, format_usd(spent)] for user, spent, _ in members
    ]
    day_bars = await page.locator("svg.chart rect title").all_text_contents()
    assert any(text.startswith("2026-01-") for text in day_bars)
    assert any(text.startswith("2025-12-") for text in day_bars), "the previous month is beside it"
    assert OTHER_PROMPT not in await page.content()
    save_screenshot(await page.screenshot(full_page=True), "dashboard.png", site.tmp)

    # Transactions: newest first, 50 a page, then filtered, then as CSV.
    await page.get_by_role("link", name="Transactions").click()
    all_ids = [
        row[0]
        for row in await rows(
            site, "SELECT id FROM transactions WHERE scope = ? ORDER BY id DESC", str(scope)
        )
    ]
    assert await text_of(page, "#count") == f"{len(all_ids)} transactions, page 1 of 2. " + (
        "Times in UTC; prompts are blank after the history is purged."
    )
    first_page = [
        int(value)
        for value in await page.locator("#transactions tbody tr").evaluate_all(
            "rs => rs.map(r => r.dataset.id)"
        )
    ]
    assert first_page == all_ids[:50]
    await page.get_by_role("link", name="Older →").click()
    second_page = [
        int(value)
        for value in await page.locator("#transactions tbody tr").evaluate_all(
            "rs => rs.map(r => r.dataset.id)"
        )
    ]
    assert second_page == all_ids[50:100]

    assert await unlabelled_controls(page) == []
    await page.get_by_label("Service").select_option("image")
    await page.get_by_label("Status").select_option("charged")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"status=charged"))
    expected = await rows(
        site,
        "SELECT id, user, prompt, reserved, charged FROM transactions WHERE scope = ? AND service = 'image' "
        "AND status = 'charged' ORDER BY id DESC",
        str(scope),
    )
    cells = [
        [" ".join(cell.split()) for cell in await row.locator("td").all_inner_texts()]
        for row in await page.locator("#transactions tbody tr").all()
    ]
    assert [[c[1], c[2], c[3], c[4], c[5], c[6]] for c in cells] == [
        [user, "image", prompt, format_usd(reserved), format_usd(charged), "charged"]
        for _, user, prompt, reserved, charged in expected
    ]
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download CSV").click()
    download = await download_info.value
    exported = list(csv.DictReader(io.StringIO((await download.path()).read_text())))
    assert [
        (row["member"], row["service"], row["prompt"], row["charged_usd"], row["status"]) for row in exported
    ] == [
        (user, "image", prompt, format_usd(charged).removeprefix("$"), "charged")
        for _, user, prompt, _, charged in expected
    ]

    # Limits: keyboard only, through the same command as `/budget set`, recorded with the admin.
    await page.get_by_role("link", name="Limits").click()
    await expect(page.get_by_label("New monthly limit in dollars")).to_be_visible()
    assert await unlabelled_controls(page) == []
    await page.get_by_label("New monthly limit in dollars").focus()
    await page.keyboard.type("12.50")
    await page.keyboard.press("Enter")
    await expect(page.locator("#outcome")).to_have_text("Monthly limit set to $12.50.")
    [(stored, by)] = await rows(
        site, "SELECT limit_micros, updated_by FROM limits WHERE scope = ?", str(scope)
    )
    assert (stored, by) == (usd_to_micros("12.50"), "900")
    await expect(page.locator("#current-limit")).to_have_text("$12.50")
    await page.get_by_label("New monthly limit in dollars").fill("5,00")
    await page.get_by_role("button", name="Set limit").click()
    await expect(page.locator("#outcome")).to_contain_text("Can't set the limit")
    assert (await rows(site, "SELECT limit_micros FROM limits WHERE scope = ?", str(scope)))[0][0] == stored
    await page.get_by_role("link", name="Overview").click()
    assert await text_of(page, "#limit") == "$12.50"


async def test_member_caps_are_set_from_the_limits_page(site: Site, page: Page) -> None:
    scope = Scope("slack", "T0123")
    await seed(site, scope)
    assert site.app.engine.dashboard is not None
    await page.goto(site.app.engine.dashboard.link(scope, user="U900").url)
    await page.get_by_role("link", name="Limits").click()

    await page.get_by_label("Default cap per member in dollars").fill("3")
    await page.get_by_role("button", name="Set default cap").click()
    await expect(page.locator("#outcome")).to_contain_text("may now spend $3.00 a month")
    await expect(page.locator("#default-cap")).to_have_text("$3.00")
    await page.get_by_label("Member id").fill("222")
    await page.get_by_label("Their cap in dollars").fill("off")
    await page.get_by_role("button", name="Set member's cap").click()
    await expect(page.locator("#outcome")).to_contain_text("222 now has no per-member cap")
    await page.get_by_label("Member id").fill("111")
    await page.get_by_label("Their cap in dollars").fill("1.25")
    await page.get_by_role("button", name="Set member's cap").click()
    await expect(page.locator("#outcome")).to_contain_text("monthly cap set to $1.25")
    stored = await rows(
        site, "SELECT user, cap_micros, updated_by FROM member_caps WHERE scope = ? ORDER BY user", str(scope)
    )
    assert stored == [("111", usd_to_micros("1.25"), "U900"), ("222", None, "U900")]
    assert await page.locator("#member-caps tbody th").all_inner_texts() == ["111", "222"]
    assert [
        " ".join(t.split()) for t in await page.locator("#member-caps tbody td.num").all_inner_texts()
    ] == [
        "$1.25",
        "no cap",
    ]
    [(default,)] = await rows(site, "SELECT cap_micros FROM member_defaults WHERE scope = ?", str(scope))
    assert default == usd_to_micros("3")

    await page.get_by_role("button", name="Reset 111's cap to the default").click()
    await expect(page.locator("#outcome")).to_contain_text("111's cap is the default again: $3.00 a month")
    assert [
        row[0] for row in await rows(site, "SELECT user FROM member_caps WHERE scope = ?", str(scope))
    ] == ["222"]
    await page.get_by_label("Member id").fill("<script>")
    await page.get_by_label("Their cap in dollars").fill("1")
    await page.get_by_role("button", name="Set member's cap").click()
    await expect(page.locator("#outcome")).to_contain_text("That isn't a member id")

    await page.get_by_role("link", name="Overview").click()
    own_caps = {
        cells[0]: cells[-1]
        for cells in [
            [" ".join(c.split()) for c in await row.locator("th, td").all_inner_texts()]
            for row in await page.locator("#members tbody tr").all()
        ]
    }
    assert own_caps["222"] == "no cap" and own_caps["111"] == "default"


async def test_expired_and_tampered_links_are_refused_with_a_readable_page(site: Site, page: Page) -> None:
    assert site.app.engine.dashboard is not None
    link = site.app.engine.dashboard.link(Scope("discord", "123"), user="900").url
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    response = await page.goto(tampered)
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("This link can't be used")
    await expect(page.get_by_role("alert")).to_contain_text("changed or cut short")

    site.clock.advance(timedelta(minutes=61))
    response = await page.goto(link)
    assert response is not None and response.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("has expired")
    response = await page.goto("/dashboard/discord:123")
    assert response is not None and response.status == 401, "no session was opened"
    await expect(page.get_by_role("heading", level=1)).to_have_text("Open the dashboard from chat")


async def test_one_scopes_link_never_shows_another_scopes_data(site: Site, page: Page) -> None:
    mine = Scope("discord", "123")
    await seed(site, mine)
    assert site.app.engine.dashboard is not None
    await page.goto(site.app.engine.dashboard.link(mine, user="900").url)
    await page.get_by_role("link", name="Transactions").click()
    assert OTHER_PROMPT not in await page.content()
    for path in ("", "/transactions", "/transactions.csv", "/limits"):
        response = await page.request.get(f"/dashboard/{OTHER}{path}")
        assert response.status == 403, path
        body = await response.text()
        assert "Not your budget" in body and OTHER_PROMPT not in body and "777" not in body
    response = await page.request.post(f"/dashboard/{OTHER}/limits", form={"action": "set", "amount": "1"})
    assert response.status == 403
    assert await rows(site, "SELECT * FROM limits WHERE scope = ?", str(OTHER)) == []


async def test_the_operator_sees_every_scope_with_the_admin_token(site: Site, page: Page) -> None:
    await seed(site, Scope("slack", "T0123"))
    response = await page.goto("/dashboard")
    assert response is not None and response.status == 401
    await page.get_by_label("Operator token").fill("wrong")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not the operator token")
    await page.get_by_label("Operator token").fill(OPERATOR_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("All budgets")
    await page.get_by_role("link", name=str(OTHER)).click()
    [(used,)] = await rows(
        site, "SELECT used FROM periods WHERE scope = ? AND period = '2026-01'", str(OTHER)
    )
    assert await text_of(page, "#spent") == format_usd(used)
    await page.get_by_role("link", name="Transactions").click()
    assert OTHER_PROMPT in await page.content()
