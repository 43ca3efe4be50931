"""The core's command dispatcher: one set of rules for every surface."""

from __future__ import annotations

from core.commands.dispatcher import CommandContext, Dispatcher, Reply
from core.conversations import ConversationStore, EventKind
from core.ledger import Ledger
from core.money import usd_to_micros
from core.parts import Intent, Request, Scope

SCOPE = Scope("discord", "42")
EVERY_INTENT = frozenset(Intent)


def dispatcher(ledger: Ledger, *, remembers: bool = True, **options: object) -> Dispatcher:
    conversations = ConversationStore(ledger.database) if remembers else None
    return Dispatcher(
        ledger=ledger,
        conversations=conversations,
        intents=options.pop("intents", EVERY_INTENT),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def context(**fields: object) -> CommandContext:
    return CommandContext(scope=SCOPE, user="7", **fields)  # type: ignore[arg-type]


async def reply(commands: Dispatcher, name: str, text: str = "", **fields: object) -> str:
    outcome = await commands.dispatch(name, text, context(**fields))
    assert isinstance(outcome, Reply), outcome
    assert outcome.private
    return outcome.text


async def test_a_generation_command_becomes_a_request_with_its_intent(ledger: Ledger) -> None:
    outcome = await dispatcher(ledger).dispatch("/Imagine", "  a red fox ", context(conversation="c:1"))

    assert isinstance(outcome, Request)
    assert (outcome.intent, outcome.text, outcome.scope, outcome.user) == (
        Intent.IMAGE,
        "a red fox",
        SCOPE,
        "7",
    )
    assert outcome.conversation == "c:1"


async def test_bad_commands_are_explained_and_nothing_is_reserved(ledger: Ledger) -> None:
    commands = dispatcher(ledger)

    assert (await reply(commands, "song")).startswith("Usage: `/song PROMPT`")
    unknown = await reply(commands, "frobnicate")
    assert (
        unknown.startswith("Unknown command /frobnicate.")
        and "`/imagine PROMPT [--ar 16:9] [--seed 42]`" in unknown
    )
    assert await reply(commands, "summary") == (
        "I can only summarize a conversation I'm part of: ask in a thread where I've answered."
    )
    assert (await ledger.report(SCOPE)).recent == []


async def test_services_that_are_off_are_neither_offered_nor_run(ledger: Ledger) -> None:
    commands = dispatcher(ledger, intents={Intent.CHAT, Intent.RESEARCH})

    assert [command.name for command in commands.commands] == [
        "research",
        "budget",
        "access",
        "help",
        "forget",
    ]
    answer = await reply(commands, "imagine", "a fox")
    assert answer == "`/imagine` (draw an image) isn't configured on this bot. Nothing was charged."
    assert "/imagine" not in await reply(commands, "help")


async def test_without_a_memory_conversation_commands_say_so(ledger: Ledger) -> None:
    commands = dispatcher(ledger, remembers=False)

    assert {"summary", "forget"}.isdisjoint(command.name for command in commands.commands)
    assert (
        await reply(commands, "forget")
        == "I don't remember conversations here, so there's nothing to forget."
    )


async def test_budget_rights_come_from_the_context(ledger: Ledger) -> None:
    members_see = dispatcher(ledger, budget_visible_to="everyone")
    admins_see = dispatcher(ledger)

    # Where only admins see the whole budget, a member sees their own line and nothing more.
    own = await reply(admins_see, "budget")
    assert own.startswith("**Your spend in ") and "Budget for" not in own and "Limit:" not in own
    assert (await reply(members_see, "budget")).startswith("**Budget for")
    assert await reply(members_see, "budget", "set 5") == "Only admins can change this budget."
    assert (await reply(admins_see, "budget", "set 5", admin=True)).startswith("Monthly limit set to $5.00.")
    # In a DM the budget is the person's own allowance: visible, but set by the operator only.
    assert (await reply(admins_see, "budget", direct=True)).startswith("**Budget for")
    assert await reply(admins_see, "budget", "reset", direct=True) == "Only admins can change this budget."
    assert (await ledger.report(SCOPE)).limit == usd_to_micros("5")


async def test_forget_all_is_for_admins_and_direct_messages(ledger: Ledger) -> None:
    commands = dispatcher(ledger)
    store = ConversationStore(ledger.database)
    await store.record("c:1", scope=SCOPE, user="7", kind=EventKind.USER_MESSAGE, text="hi", request_id="r1")

    assert (await reply(commands, "forget", "all")).startswith("Only admins can make me forget")
    assert (
        await reply(commands, "forget", "all", direct=True)
        == "Forgot every conversation here (1 message deleted)."
    )


async def test_a_reference_path_outside_the_console_says_how_to_attach_the_picture(ledger: Ledger) -> None:
    """Slack's slash commands carry no files (and the console reads ``--ref`` itself, before
    dispatching), so ``--ref`` reaching the dispatcher is explained, not drawn as words."""
    commands = dispatcher(ledger)

    answer = await reply(commands, "imagine", "the harbour at night --ref harbour.png")
    assert answer.startswith("`--ref` reads a file on the bot's own computer")
    assert "on Slack, mention me with the picture attached" in answer and "Nothing was charged." in answer
    usage = await reply(commands, "imagine")
    assert (
        usage.startswith("Usage: `/imagine PROMPT") and "on Discord, fill in /imagine's `reference`" in usage
    )
    assert (await ledger.report(SCOPE)).recent == []
