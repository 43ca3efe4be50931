"""The browser chat in Chromium on the demo providers: an image, streamed research, a song with its
lyrics, the charge as the ledger has it, and a reload that keeps the conversation."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from adapters.web.services import DEMO_SCOPE
from core.money import format_usd
from core.parts import Scope
from tests.browser.conftest import Site, save_screenshot, unlabelled_controls

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def charged(site: Site, scope: Scope = DEMO_SCOPE) -> list[int]:
    """Each answer's charge (its transactions summed per request), oldest first."""
    await site.server.services.inflight.join()
    rows = await site.app.ledger.database.fetchall(
        "SELECT request_id, SUM(charged) FROM transactions WHERE scope = ? "
        "GROUP BY request_id ORDER BY MIN(id)",
        (str(scope),),
    )
    return [int(total) for _, total in rows]


async def send(page: Page, text: str) -> None:
    """Type and send with the keyboard alone, as a person without a mouse would."""
    await page.get_by_label("Message").focus()
    await page.keyboard.type(text)
    await page.keyboard.press("Enter")


async def test_chat_on_the_demo_shows_image_streamed_text_song_and_charges(site: Site, page: Page) -> None:
    await page.goto("/chat")
    await expect(page.locator("#connection")).to_contain_text("Connected to the offline demo")
    assert await unlabelled_controls(page) == []
    answers = page.locator(".msg.bot")

    await send(page, "/imagine a red fox")
    image = answers.nth(0).get_by_role("img", name="a red fox")
    await expect(image).to_be_visible()
    assert await image.evaluate("img => img.complete && img.naturalWidth > 0"), (
        "the image loaded from the bot"
    )
    await expect(answers.nth(0).locator(".cost")).to_be_visible()

    await send(page, "/research how lighthouses work")
    # Streamed: text shows while the answer is still running, then grows until it is done.
    await expect(answers.nth(1).locator(".text")).to_be_visible()
    partial = await answers.nth(1).locator(".text").inner_text()
    assert await answers.nth(1).get_attribute("aria-busy") == "true", "text arrived before the end"
    await expect(answers.nth(1).locator(".cost")).to_be_visible()
    final = await answers.nth(1).locator(".text").inner_text()
    assert len(final) > len(partial) > 0
    assert await answers.nth(1).locator(".text h2, .text h3, .text h4").count() >= 1, "markdown is rendered"
    assert await answers.nth(1).locator(".text em code").count() == 1, "emphasis around code"

    await send(page, "/song about the sea")
    await expect(answers.nth(2).locator("audio")).to_have_count(1)
    await expect(answers.nth(2).locator("pre")).not_to_be_empty()
    await expect(answers.nth(2).locator(".cost")).to_be_visible()

    costs = await charged(site)
    assert len(costs) == 3
    shown = [text.removeprefix("Charged ") for text in await page.locator(".msg.bot .cost").all_inner_texts()]
    assert shown == [format_usd(cost) for cost in costs]
    await page.set_viewport_size({"width": 900, "height": 1300})
    await page.locator("#log").evaluate("log => { log.scrollTop = 0; }")
    save_screenshot(await page.screenshot(), "chat.png", site.tmp)

    await page.reload()
    await expect(page.locator("#connection")).to_contain_text("Connected")
    await expect(page.locator(".msg.user").first).to_have_text("/imagine a red fox")
    await expect(page.locator(".msg.user").nth(1)).to_have_text("/research how lighthouses work")


async def test_chat_with_an_api_key_charges_its_scope(site: Site, page: Page) -> None:
    scope = Scope("api", "team")
    _, secret = await site.server.services.keys.create("team", scope)
    await page.goto("/chat")
    await page.evaluate("() => localStorage.clear()")
    object.__setattr__(site.server.services, "demo_chat", False)
    await page.reload()
    await page.get_by_label("API key").fill(secret)
    await page.get_by_role("button", name="Connect").click()
    await expect(page.locator("#connection")).to_have_text("Connected.")
    await send(page, "/budget")
    await expect(page.locator(".msg.bot .text")).to_contain_text("Budget for 2026-01")
    await send(page, "what is a budget?")
    await expect(page.locator(".msg.bot .cost").nth(1)).to_be_visible()
    costs = await charged(site, scope)
    shown = [text.removeprefix("Charged ") for text in await page.locator(".msg.bot .cost").all_inner_texts()]
    assert shown == ["$0.00", *(format_usd(cost) for cost in costs)]
