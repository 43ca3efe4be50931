"""/budget: workspace admins and owners (users.info) and SLACK_ADMIN_IDS see and change it, privately."""

from __future__ import annotations

from core.engine import Engine
from core.ledger import Ledger
from core.money import usd_to_micros
from tests.conftest import DEFAULT_LIMIT
from tests.fakes.fake_slack import ALICE, FakeSlack
from tests.slack.conftest import SCOPE, StartHttp

ADMIN, OWNER = "U0ADMIN", "U0OWNER"


def add_users(slack: FakeSlack) -> None:
    slack.users[ADMIN] = {"id": ADMIN, "name": "ada", "is_admin": True}
    slack.users[OWNER] = {"id": OWNER, "name": "otto", "is_owner": True, "is_primary_owner": True}


def private_replies(slack: FakeSlack) -> list[str]:
    assert all(reply["response_type"] == "ephemeral" for reply in slack.responses)
    return [reply["text"] for reply in slack.responses]


async def test_a_workspace_admin_sees_the_report_and_can_set_and_reset_the_limit(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    add_users(slack)
    harness = await start_http(engine)
    await harness.command("imagine", "a red fox")

    await harness.command("budget", user=ADMIN)
    await harness.command("budget", "set 12.50", user=OWNER)
    limit_after_set = (await ledger.report(SCOPE)).limit
    await harness.command("budget", "reset", user=ADMIN)

    shown, changed, reset = private_replies(slack)
    assert shown.startswith("*Budget for ")
    assert (
        "Limit: $20.00 (default)" in shown and "Spent: $0.04" in shown and "By service: image $0.04" in shown
    )
    assert "image $0.04 charged · demo: “a red fox”" in shown
    assert changed.startswith("Monthly limit set to $12.50.")
    assert limit_after_set == usd_to_micros("12.50")
    assert reset.startswith("Limit reset to the default, $20.00 a month.")
    assert (await ledger.report(SCOPE)).limit == DEFAULT_LIMIT
    assert [call.args["user"] for call in slack.calls_to("users.info")] == [ADMIN, OWNER, ADMIN]
    assert len(slack.top_level("C0GENERAL")) == 1, "budget replies are never posted in the channel"


async def test_other_members_are_refused_privately(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine)
    await harness.command("budget", user=ALICE)
    await harness.command("budget", "set 1000", user=ALICE)
    await harness.command("budget", "set 5", user="U0STRANGER")  # users.info: user_not_found

    own, *refused = private_replies(slack)
    assert own.startswith("*Your spend in ") and "Limit:" not in own, "only their own line"
    assert refused == ["Only admins can change this budget.", "Only admins can change this budget."]
    assert slack.calls_to("chat.postMessage") == []
    assert (await ledger.report(SCOPE)).limit == DEFAULT_LIMIT


async def test_configured_admin_ids_need_no_workspace_role(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine, admin_ids=frozenset({ALICE}))
    await harness.command("budget", "set 3", user=ALICE)

    [reply] = private_replies(slack)
    assert reply.startswith("Monthly limit set to $3.00.")
    assert slack.calls_to("users.info") == []
    assert (await ledger.report(SCOPE)).limit == usd_to_micros(3)


async def test_budget_visible_to_everyone_lets_members_look_but_not_change(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    harness = await start_http(engine, budget_visible_to="everyone")
    await harness.command("budget", user=ALICE)
    await harness.command("budget", "reset", user=ALICE)

    shown, refused = private_replies(slack)
    assert shown.startswith("*Budget for ") and "Remaining: $20.00" in shown
    assert refused == "Only admins can change this budget."


async def test_budget_dashboard_sends_an_admin_a_private_link_to_the_workspace(
    start_http: StartHttp, engine: Engine, slack: FakeSlack
) -> None:
    from core.dashboard import DashboardLinks
    from tests.clock import FakeClock

    add_users(slack)
    engine.dashboard = links = DashboardLinks("s", clock=FakeClock(), base_url="https://bot.example.com")
    harness = await start_http(engine)
    await harness.command("budget", "dashboard", user=ADMIN)
    await harness.command("budget", "dashboard", user=ALICE)

    link, refused = private_replies(slack)
    url = link.split("dashboard for this budget: ")[1].split()[0]
    assert links.open(url.split("t=")[1]).scope == SCOPE
    assert refused == "Only admins can open this budget's dashboard."
    assert len(slack.top_level("C0GENERAL")) == 0
