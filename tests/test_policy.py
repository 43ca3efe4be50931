"""Access policies: channels, allowlists and services, decided in the core for every surface."""

from __future__ import annotations

from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Access, Failure, Intent, Part, Request, Scope
from core.policy import Policies
from tests.clock import FakeClock
from tests.conftest import demo_engine

SCOPE = Scope("discord", "42")


async def ask(
    engine: Engine, text: str, *, access: Access | None, user: str = "ann", intent: Intent | None = None
) -> list[Part]:
    request = Request(scope=SCOPE, user=user, text=text, intent=intent, access=access)
    return [part async for part in engine.handle(request)]


async def transactions(ledger: Ledger) -> int:
    return len((await ledger.report(SCOPE, recent=100)).recent)


def dispatcher(engine: Engine, *, roles: bool = True) -> Dispatcher:
    return Dispatcher(
        ledger=engine.ledger,
        conversations=None,
        intents=engine.intents,
        policies=engine.policies,
        roles=roles,
    )


async def command(commands: Dispatcher, name: str, text: str = "", **context: object) -> Reply | Request:
    values: dict[str, object] = {"scope": SCOPE, "user": "ann", "channel": "C1"} | context
    return await commands.dispatch(name, text, CommandContext(**values))  # type: ignore[arg-type]


async def test_a_switched_off_channel_gets_no_answer_and_no_charge(engine: Engine, ledger: Ledger) -> None:
    await engine.policies.set_channel(SCOPE, "C1", False, by="admin")

    assert await ask(engine, "draw a fox", access=Access(channel="C1")) == []
    assert await transactions(ledger) == 0
    assert await ask(engine, "draw a fox", access=Access(channel="C2")) != [], "other channels still answered"


async def test_allowlist_mode_answers_only_in_channels_switched_on(engine: Engine, ledger: Ledger) -> None:
    await engine.policies.set_mode(SCOPE, "allowlist", by="admin")
    assert await ask(engine, "hello", access=Access(channel="C1")) == []
    await engine.policies.set_channel(SCOPE, "C1", True, by="admin")
    assert await ask(engine, "hello", access=Access(channel="C1")) != []
    assert await ask(engine, "hello", access=Access(channel="C2")) == []


async def test_only_allowed_roles_and_admins_may_use_paid_work(engine: Engine, ledger: Ledger) -> None:
    await engine.policies.set_member(SCOPE, "role", "777", True, by="admin")

    [refused] = await ask(engine, "hello", access=Access(channel="C1", roles=frozenset({"1"})))
    assert isinstance(refused, Failure) and refused.message.startswith("Only members with an allowed role")
    assert await transactions(ledger) == 0
    served = await ask(engine, "hello", access=Access(channel="C1", roles=frozenset({"777"})))
    assert not any(isinstance(part, Failure) for part in served)
    admin = await ask(engine, "hello", access=Access(channel="C1", admin=True))
    assert not any(isinstance(part, Failure) for part in admin)


async def test_a_switched_off_service_is_explained_never_swapped_for_chat(
    engine: Engine, ledger: Ledger
) -> None:
    await engine.policies.set_service(SCOPE, Intent.IMAGE, False, by="admin")

    [mention] = await ask(engine, "draw a lighthouse at dusk", access=Access(channel="C1"))
    assert mention == Failure("Image generation is switched off here by an admin. Nothing was charged.")
    [command_refused] = await ask(engine, "a fox", access=None, intent=Intent.IMAGE)
    assert isinstance(command_refused, Failure), "work without a caller (e.g. the API) obeys it too"
    assert await transactions(ledger) == 0
    await engine.policies.set_service(SCOPE, Intent.IMAGE, True, by="admin")
    assert not any(
        isinstance(part, Failure) for part in await ask(engine, "draw a lighthouse", access=Access())
    )


async def test_slash_commands_in_a_switched_off_channel_are_answered_privately(engine: Engine) -> None:
    commands = dispatcher(engine)
    await engine.policies.set_channel(SCOPE, "C1", False, by="admin")

    for name, text in (("imagine", "a fox"), ("budget", ""), ("help", "")):
        reply = await command(commands, name, text)
        assert reply == Reply("I'm switched off in this channel.")
    hint = await command(commands, "imagine", "a fox", admin=True)
    assert isinstance(hint, Reply) and "`/access channel on`" in hint.text
    switched_on = await command(commands, "access", "channel on", admin=True)
    assert isinstance(switched_on, Reply) and switched_on.text == "I'm switched on in <#C1>."
    assert isinstance(await command(commands, "imagine", "a fox"), Request)


async def test_paid_commands_check_roles_and_services(engine: Engine) -> None:
    commands = dispatcher(engine)
    await engine.policies.set_member(SCOPE, "role", "777", True, by="admin")
    await engine.policies.set_service(SCOPE, Intent.SONG, False, by="admin")

    refused = await command(commands, "imagine", "a fox", roles=frozenset({"1"}))
    assert (
        isinstance(refused, Reply)
        and refused.private
        and refused.text.startswith("Only members with an allowed role")
    )
    allowed = await command(commands, "imagine", "a fox", roles=frozenset({"777"}))
    assert isinstance(allowed, Request) and allowed.access == Access(channel="C1", roles=frozenset({"777"}))
    off = await command(commands, "song", "a shanty", roles=frozenset({"777"}))
    assert off == Reply("Song generation is switched off here by an admin. Nothing was charged.")


async def test_only_admins_change_access_and_every_change_is_shown(engine: Engine) -> None:
    commands = dispatcher(engine)
    for text in ("show", "channel off", "mode allowlist", "role <@&777> allow", "service image off"):
        assert await command(commands, "access", text) == Reply(
            "Only admins can see or change who may use me here."
        )
    policy = await engine.policies.policy(SCOPE)
    assert policy.channels == {} and policy.mode == "open" and not policy.roles and not policy.services_off

    for text in (
        "channel off",
        "channel <#C9> on",
        "mode allowlist",
        "role <@&777> allow",
        "service image off",
    ):
        await command(commands, "access", text, admin=True, user="boss")
    shown = await command(commands, "access", "show", admin=True)
    assert isinstance(shown, Reply)
    assert "Channels: allowlist (only channels switched on)" in shown.text
    assert "Switched on: <#C9>" in shown.text and "Switched off: <#C1>" in shown.text
    assert "Allowed roles: <@&777> (and admins)" in shown.text
    assert "Services off: image" in shown.text
    changes = shown.text.split("Last changes:\n")[1].splitlines()
    assert [line.split(": ", 1)[1] for line in changes] == [
        "service image off",
        "role <@&777> allowed",
        "mode allowlist",
        "channel <#C9> on",
        "channel <#C1> off",
    ]
    assert all("<@boss>" in line for line in changes)


async def test_slack_allowlists_members_and_discord_roles(engine: Engine) -> None:
    slack = dispatcher(engine, roles=False)
    assert "role" not in {sub.name for sub in slack.command("access").subcommands}  # type: ignore[union-attr]
    allowed = await command(slack, "access", "user <@U0BOB|bob> allow", admin=True)
    assert isinstance(allowed, Reply) and allowed.text.startswith("<@U0BOB> may use me.")
    assert (await engine.policies.policy(SCOPE)).users == {"U0BOB"}
    refused = await command(slack, "imagine", "a fox", user="U0ANN")
    assert isinstance(refused, Reply) and "allowlist" in refused.text
    assert isinstance(await command(slack, "imagine", "a fox", user="U0BOB"), Request)
    removed = await command(slack, "access", "user <@U0BOB> remove", admin=True)
    assert isinstance(removed, Reply) and "everyone may use me again" in removed.text


async def test_another_process_sees_a_change_once_its_cache_expires(ledger: Ledger) -> None:
    clock = FakeClock()
    ledger.database.clock = clock  # type: ignore[misc]
    mine, theirs = demo_engine(ledger).policies, Policies(ledger.database, ttl_s=10)
    assert await theirs.listens(SCOPE, "C1")
    await mine.set_channel(SCOPE, "C1", False, by="admin")
    assert not await mine.listens(SCOPE, "C1"), "at once in this process"
    assert await theirs.listens(SCOPE, "C1"), "cached a little while elsewhere"
    await clock.advance(11)
    assert not await theirs.listens(SCOPE, "C1")
