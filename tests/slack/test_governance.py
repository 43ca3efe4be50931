"""Member caps and access policies through the real Bolt app: caps, channels, allowlists, services."""

from __future__ import annotations

from core.engine import Engine
from core.ledger import Ledger
from core.parts import Intent
from tests.conftest import IMAGE_COST
from tests.fakes.fake_slack import ALICE, GENERAL, FakeSlack
from tests.slack.conftest import SCOPE, Harness, StartHttp

ADMIN, BOB = "U0ADMIN", "U0BOB"
RANDOM = "C0RANDOM"


def add_users(slack: FakeSlack) -> None:
    slack.users[ADMIN] = {"id": ADMIN, "name": "ada", "is_admin": True}
    slack.users[BOB] = {"id": BOB, "name": "bob"}


def last_private_reply(slack: FakeSlack) -> str:
    reply = slack.responses[-1]
    assert reply["response_type"] == "ephemeral"
    return str(reply["text"])


async def command(harness: Harness, name: str, text: str = "", **kwargs: str) -> str:
    before = len(harness.slack.responses)
    await harness.command(name, text, **kwargs)
    if len(harness.slack.responses) == before:
        return ""
    return last_private_reply(harness.slack)


def thread_text(slack: FakeSlack, thread_ts: str, channel: str = GENERAL) -> str:
    return "\n".join(message.text for message in slack.thread(channel, thread_ts))


async def transactions(ledger: Ledger) -> list[tuple[str, str, str]]:
    return [(row.user, row.service, row.status) for row in (await ledger.report(SCOPE, recent=100)).recent]


async def test_a_member_over_their_cap_is_refused_until_an_admin_raises_it(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    add_users(slack)
    ledger.member_cap = IMAGE_COST
    harness = await start_http(engine)

    await command(harness, "imagine", "a red fox", user=ALICE)
    await command(harness, "imagine", "another fox", user=ALICE)
    refused = [m.text for m in slack.messages.values() if "Your own monthly cap" in m.text]
    assert len(refused) == 1 and "$0.00 of your $0.04 is left" in refused[0]
    await command(harness, "imagine", "a blue fox", user=BOB)
    assert await transactions(ledger) == [(BOB, "image", "charged"), (ALICE, "image", "charged")]

    assert await command(harness, "budget", f"user <@{ALICE}|alice> 1", user=BOB) == (
        "Only admins can change this budget."
    )
    raised = await command(harness, "budget", f"user <@{ALICE}|alice> 1", user=ADMIN)
    assert raised.startswith(f"<@{ALICE}>'s monthly cap set to $1.00")
    await command(harness, "imagine", "a green fox", user=ALICE)
    assert (await transactions(ledger))[0] == (ALICE, "image", "charged")

    own = await command(harness, "budget", user=ALICE)
    assert own.startswith("*Your spend in ") and "$0.08 spent of your $1.00 cap (set for you)" in own
    users = await command(harness, "budget", "users", user=ADMIN)
    assert f"1. <@{ALICE}> $0.08 · 67% · 2 requests · own cap $1.00" in users


async def test_a_switched_off_channel_gets_no_answer_and_no_charge(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    add_users(slack)
    harness = await start_http(engine)

    assert (await command(harness, "access", "channel off", user=ADMIN)).startswith("I'm switched off in <#")
    before = len(slack.messages)
    await harness.mention("draw a fox", user=ALICE)
    assert len(slack.messages) == before, "no reply, no progress line"
    assert await command(harness, "imagine", "a fox", user=ALICE) == "I'm switched off in this channel."
    assert await transactions(ledger) == []

    answered = await harness.mention("hello there", user=ALICE, channel=RANDOM)
    assert thread_text(slack, answered["event"]["ts"], RANDOM), "other channels are still answered"
    assert len(await transactions(ledger)) == 1


async def test_only_allowed_members_and_admins_may_use_paid_work(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    add_users(slack)
    harness = await start_http(engine)
    allowed = await command(harness, "access", f"user <@{BOB}|bob> allow", user=ADMIN)
    assert allowed.startswith(f"<@{BOB}> may use me.")

    refused = await command(harness, "imagine", "a fox", user=ALICE)
    assert refused.startswith("Only members on this workspace's allowlist can use me here")
    mention = await harness.mention("hello there", user=ALICE)
    assert "allowlist" in thread_text(slack, mention["event"]["ts"])
    assert await transactions(ledger) == []

    await command(harness, "imagine", "a fox", user=BOB)
    await command(harness, "imagine", "a fox", user=ADMIN)
    assert [row[0] for row in await transactions(ledger)] == [ADMIN, BOB]


async def test_a_switched_off_service_is_refused_privately_and_never_rerouted(
    start_http: StartHttp, engine: Engine, ledger: Ledger, slack: FakeSlack
) -> None:
    add_users(slack)
    harness = await start_http(engine)
    assert (
        await command(harness, "access", "service image off", user=ADMIN)
        == "Image generation is now off here."
    )

    refused = await command(harness, "imagine", "a fox", user=ALICE)
    assert refused == "Image generation is switched off here by an admin. Nothing was charged."
    mention = await harness.mention("draw a lighthouse at dusk", user=ALICE)
    assert "Image generation is switched off here" in thread_text(slack, mention["event"]["ts"])
    assert await transactions(ledger) == [], "no image, and no chat answer pretending to be one"


async def test_members_cannot_change_access_and_admins_see_every_change(
    start_http: StartHttp, engine: Engine, slack: FakeSlack
) -> None:
    add_users(slack)
    harness = await start_http(engine)
    for text in ("show", "channel off", "mode allowlist", f"user <@{ALICE}> allow", "service chat off"):
        assert await command(harness, "access", text, user=BOB) == (
            "Only admins can see or change who may use me here."
        )
    policy = await engine.policies.policy(SCOPE)
    assert (policy.channels, policy.mode, policy.users, policy.services_off) == (
        {},
        "open",
        frozenset(),
        frozenset(),
    )

    await command(harness, "access", "service chat off", user=ADMIN)
    await command(harness, "access", f"channel <#{RANDOM}|random> off", user=ADMIN)
    shown = await command(harness, "access", "show", user=ADMIN)
    assert f"Switched off: <#{RANDOM}>" in shown and "Services off: chat" in shown
    assert f"<@{ADMIN}>: channel <#{RANDOM}> off" in shown and f"<@{ADMIN}>: service chat off" in shown
    assert not (await engine.policies.policy(SCOPE)).serves(Intent.CHAT)
