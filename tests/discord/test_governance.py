"""Member caps and access policies through the real discord.py client: Discord's member, role and
channel options reach the core as ``<@id>``, ``<@&id>`` and ``<#id>``, and the core decides."""

from __future__ import annotations

from typing import Any

from core.ledger import Ledger
from core.parts import Intent, Scope
from tests.conftest import IMAGE_COST
from tests.discord.conftest import StartBot
from tests.fakes.fake_discord import EPHEMERAL, FakeDiscord, FakeInteraction

GREEN, RED = 0x1F8B4C, 0xE74C3C
MANAGE_GUILD = 1 << 5
ADMIN = FakeDiscord.user("900", "admin")
ALICE = FakeDiscord.user("111", "alice")
BOB = FakeDiscord.user("222", "bob")
Json = dict[str, Any]


def sub(name: str, *options: Json) -> list[Json]:
    return [{"name": name, "type": 1, "options": list(options)}]


def text(name: str, value: str) -> Json:
    return {"name": name, "type": 3, "value": value}


async def private_reply(interaction: FakeInteraction, fake: FakeDiscord) -> str:
    await fake.wait_until(lambda: bool(interaction.callbacks))
    [callback] = interaction.callbacks
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL, "answered at once, privately"
    return str(callback["data"]["embeds"][0]["description"])


async def generated(interaction: FakeInteraction, fake: FakeDiscord) -> tuple[int | None, str]:
    """How a generation command ended: ``(GREEN, "image")`` once its image is up, else the colour
    and text of the notice it ended with (a refusal replaces the placeholder, privately)."""

    def ended() -> tuple[int | None, str] | None:
        for message in fake.messages.values():
            if message.interaction_token != interaction.token or message.deleted:
                continue
            if message.current.attachments:
                return GREEN, "image"
            if message.current.colour == RED:
                return RED, message.current.description
        return None

    await fake.wait_until(lambda: ended() is not None)
    result = ended()
    assert result is not None
    return result


async def imagine(fake: FakeDiscord, user: Json, **kwargs: Any) -> FakeInteraction:
    return await fake.slash("imagine", [text("prompt", "a red fox")], user=user, **kwargs)


async def answer_to(fake: FakeDiscord, mention_id: str) -> tuple[int | None, str]:
    def replied() -> bool:
        return any(
            m.reference == mention_id and m.current.colour in (GREEN, RED) for m in fake.messages.values()
        )

    await fake.wait_until(replied)
    reply = next(m for m in fake.messages.values() if m.reference == mention_id)
    return reply.current.colour, reply.current.description


async def charged(ledger: Ledger, fake: FakeDiscord) -> list[tuple[str, str]]:
    report = await ledger.report(Scope("discord", fake.guild_id), recent=100)
    return [(row.user, row.status) for row in report.recent]


async def test_a_member_over_their_cap_is_refused_until_an_admin_raises_it(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    ledger.member_cap = IMAGE_COST
    await start_bot()

    assert (await generated(await imagine(fake, ALICE), fake))[0] == GREEN
    colour, refusal = await generated(await imagine(fake, ALICE), fake)
    assert colour == RED and "Your own monthly cap here can't cover an image ($0.04)" in refusal
    assert (await generated(await imagine(fake, BOB), fake))[0] == GREEN, "another member is served"

    member = {"name": "member", "type": 6, "value": ALICE["id"]}
    resolved = {"users": {ALICE["id"]: ALICE}}
    denied = await fake.slash("budget", sub("user", member, text("amount", "1")), user=BOB, resolved=resolved)
    assert await private_reply(denied, fake) == "Only admins can change this budget."
    raised = await fake.slash(
        "budget",
        sub("user", member, text("amount", "1")),
        user=ADMIN,
        permissions=MANAGE_GUILD,
        resolved=resolved,
    )
    assert (await private_reply(raised, fake)).startswith("<@111>'s monthly cap set to $1.00")
    assert (await generated(await imagine(fake, ALICE), fake))[0] == GREEN, "served again"
    assert await charged(ledger, fake) == [("111", "charged"), ("222", "charged"), ("111", "charged")]

    own = await private_reply(await fake.slash("budget", sub("show"), user=ALICE), fake)
    assert own.startswith("**Your spend in ") and "$0.08 spent of your $1.00 cap (set for you)" in own


async def test_a_switched_off_channel_gets_no_answer_and_no_charge(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    off = await fake.slash(
        "access", sub("channel", text("state", "off")), user=ADMIN, permissions=MANAGE_GUILD
    )
    assert (await private_reply(off, fake)).startswith(f"I'm switched off in <#{fake.channel_id}>")

    await fake.mention("hello there", author=ALICE)
    await fake.mention("hello in the thread", author=ALICE, channel_id=fake.thread_id)  # its parent is off
    refused = await imagine(fake, ALICE)
    assert await private_reply(refused, fake) == "I'm switched off in this channel."
    assert await charged(ledger, fake) == []
    assert [
        m for m in fake.messages.values() if m.author["id"] == fake.application_id and not m.interaction_token
    ] == []

    on = await fake.slash(
        "access",
        sub("channel", text("state", "on"), {"name": "channel", "type": 7, "value": fake.channel_id}),
        user=ADMIN,
        permissions=MANAGE_GUILD,
        resolved={
            "channels": {
                fake.channel_id: {"id": fake.channel_id, "type": 0, "name": "general", "permissions": "0"}
            }
        },
    )
    assert await private_reply(on, fake) == f"I'm switched on in <#{fake.channel_id}>."
    colour, _ = await answer_to(fake, await fake.mention("hello again", author=ALICE))
    assert colour == GREEN
    assert len(await charged(ledger, fake)) == 1


async def test_a_member_without_an_allowed_role_is_refused(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    artists = fake.add_role("artists")
    await start_bot()
    allow = await fake.slash(
        "access",
        sub("role", {"name": "role", "type": 8, "value": artists}, text("action", "allow")),
        user=ADMIN,
        permissions=MANAGE_GUILD,
        resolved={"roles": {artists: fake.role_payload(artists, "artists")}},
    )
    assert (await private_reply(allow, fake)).startswith(f"<@&{artists}> may use me.")

    refused = await private_reply(await imagine(fake, ALICE), fake)
    assert refused.startswith("Only members with an allowed role can use me here")
    colour, said = await answer_to(fake, await fake.mention("hello there", author=ALICE))
    assert colour == RED and "Only members with an allowed role" in said
    assert await charged(ledger, fake) == []

    assert (await generated(await imagine(fake, BOB, roles=[artists]), fake))[0] == GREEN
    colour, _ = await answer_to(fake, await fake.mention("hello there", author=BOB, roles=[artists]))
    assert colour == GREEN
    assert (await generated(await imagine(fake, ADMIN, permissions=MANAGE_GUILD), fake))[0] == GREEN
    assert [user for user, _ in await charged(ledger, fake)] == ["900", "222", "222"]


async def test_a_switched_off_service_is_refused_privately_and_never_rerouted(
    fake: FakeDiscord, start_bot: StartBot, ledger: Ledger
) -> None:
    await start_bot()
    off = await fake.slash(
        "access",
        sub("service", text("service", "image"), text("state", "off")),
        user=ADMIN,
        permissions=MANAGE_GUILD,
    )
    assert await private_reply(off, fake) == "Image generation is now off here."

    refused = await private_reply(await imagine(fake, ALICE), fake)
    assert refused == "Image generation is switched off here by an admin. Nothing was charged."
    colour, said = await answer_to(fake, await fake.mention("draw a lighthouse at dusk", author=ALICE))
    assert colour == RED and "Image generation is switched off here" in said
    assert await charged(ledger, fake) == [], "no image, and no chat answer pretending to be one"


async def test_members_cannot_change_access(fake: FakeDiscord, start_bot: StartBot, ledger: Ledger) -> None:
    artists = fake.add_role("artists")
    client_task = await start_bot()
    assert not client_task.done()
    attempts = [
        sub("show"),
        sub("channel", text("state", "off")),
        sub("mode", text("mode", "allowlist")),
        sub("role", {"name": "role", "type": 8, "value": artists}, text("action", "allow")),
        sub("service", text("service", "chat"), text("state", "off")),
    ]
    for options in attempts:
        interaction = await fake.slash(
            "access",
            options,
            user=ALICE,
            resolved={"roles": {artists: fake.role_payload(artists, "artists")}},
        )
        assert await private_reply(interaction, fake) == "Only admins can see or change who may use me here."
    from core.policy import policies_for

    policy = await policies_for(ledger.database).policy(Scope("discord", fake.guild_id))
    assert (policy.channels, policy.mode, policy.roles, policy.services_off) == (
        {},
        "open",
        frozenset(),
        frozenset(),
    )
    assert policy.serves(Intent.CHAT) and policy.changes == ()
