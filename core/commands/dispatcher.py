"""One dispatcher for every surface: a command and its context in, a reply or a request out.

Surfaces translate a platform's command into ``dispatch(name, text, context)``, computing the
caller's rights from platform permissions; everything else (who may do what, the wording, the
ledger and conversation calls) is decided here once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from core.budget import budget_command
from core.commands.access import access_command
from core.commands.catalogue import BY_NAME, Command, available, help_text, usage_hint
from core.commands.reply import Reply as Reply
from core.conversations import ConversationStore, forget_command
from core.dashboard import DashboardLinks, LinkRefused
from core.ledger import Ledger
from core.parts import Access, Destination, Intent, Request, Scope, StudioWork
from core.policy import SWITCHED_OFF_HERE, Policies, not_admitted, policies_for, switched_off
from core.studio import (
    REFERENCE_ELSEWHERE,
    Action,
    BadOption,
    Expired,
    Removal,
    StudioStore,
    action_id,
    parse_image_prompt,
    press,
)

NO_CONVERSATION = "I can only summarize a conversation I'm part of: ask in a thread where I've answered."
BudgetAudience = Literal["admins", "everyone"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandContext:
    """Who used a command, where. ``admin`` is the surface's judgement from platform permissions
    (Discord: Manage Server; Slack: workspace admins and configured ids); ``direct`` marks a
    direct message, whose scope is the caller's own. ``conversation`` is the one the command was
    used in, for the commands that act on it. ``channel`` is where it was used (a thread's parent
    channel) and ``roles`` the caller's role ids, for the scope's access policy."""

    scope: Scope
    user: str
    admin: bool = False
    direct: bool = False
    conversation: str | None = None
    destination: Destination | None = None
    channel: str | None = None
    roles: frozenset[str] = frozenset()

    @property
    def access(self) -> Access:
        return Access(channel=self.channel, roles=self.roles, admin=self.admin)


class Dispatcher:
    """Answers commands, or turns them into a ``Request`` for the engine."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        conversations: ConversationStore | None,
        intents: Collection[Intent],
        budget_visible_to: BudgetAudience = "admins",
        policies: Policies | None = None,
        roles: bool = False,
        dashboard: DashboardLinks | None = None,
        studio: StudioStore | None = None,
        last_media: bool = False,
    ) -> None:
        self._ledger = ledger
        self._studio = studio
        self._dashboard = dashboard
        self._conversations = conversations
        self._budget_visible_to = budget_visible_to
        self.policies = policies or policies_for(ledger.database)
        self.roles = roles
        """Whether the surface's members have roles (Discord): allowlists then name roles."""
        self.commands: tuple[Command, ...] = available(
            intents=intents,
            conversations=conversations is not None,
            roles=roles,
            last_media=last_media and studio is not None,
        )
        """What this bot offers: the surfaces register exactly these."""
        self._offered = {command.name: command for command in self.commands}

    def command(self, name: str) -> Command | None:
        """The offered command called ``name`` (case-insensitive, leading slash optional)."""
        return self._offered.get(name.lstrip("/").lower())

    @property
    def budget_admins_only(self) -> bool:
        """Whether only admins may see the scope's whole ``/budget`` (members see their own line)."""
        return self._budget_visible_to == "admins"

    @property
    def admin_only(self) -> frozenset[str]:
        """Commands every action of which is for admins (Discord hides them from others)."""
        return frozenset(command.name for command in self.commands if command.admins_only)

    async def dispatch(self, name: str, text: str, context: CommandContext) -> Reply | Request:
        """Answer ``/name text`` used in ``context``: a reply, or the request to hand the engine."""
        command = self.command(name)
        text = text.strip()
        if command is None:
            return Reply(self._unavailable(name))
        if command.name == "access":  # always answered, or a switched-off channel could not be switched on
            return Reply(await self._access(text, context))
        policy = await self.policies.policy(context.scope)
        if not context.direct and not policy.listens_in(context.channel):
            hint = " `/access channel on` switches me back on." if context.admin else ""
            return Reply(SWITCHED_OFF_HERE + hint)
        if command.on_last_media is not None:
            return await self._on_last_media(command, command.on_last_media, text, context)
        if command.intent is not None:
            if not policy.admits(user=context.user, roles=context.roles, admin=context.admin):
                return Reply(not_admitted(policy))
            if not policy.serves(command.intent):
                return Reply(switched_off(command.intent))
            return self._request(command, text, context)
        if command.name == "budget":
            if text.lower() == "dashboard":
                return Reply(self._dashboard_link(context))
            return Reply(await self._budget(text, context))
        if command.name == "forget":
            return Reply(await self._forget(text, context))
        return Reply(help_text(self.commands))

    def _unavailable(self, name: str) -> str:
        known = BY_NAME.get(name.lstrip("/").lower())
        if known is None:
            return f"Unknown command /{name.lstrip('/')}.\n{help_text(self.commands)}"
        if known.conversational:
            doing = "forget" if known.name == "forget" else "summarize"
            return f"I don't remember conversations here, so there's nothing to {doing}."
        return f"`/{known.name}` ({known.description}) isn't configured on this bot. Nothing was charged."

    def _request(self, command: Command, text: str, context: CommandContext) -> Reply | Request:
        intent = command.intent
        assert intent is not None
        if intent is Intent.SUMMARY:
            if context.conversation is None:
                return Reply(NO_CONVERSATION)
        elif not text:
            return Reply(usage_hint(intent))
        studio: StudioWork | None = None
        if intent is Intent.IMAGE:
            try:
                options = parse_image_prompt(text)
            except BadOption as bad:
                return Reply(str(bad))
            if options.reference is not None:
                return Reply(REFERENCE_ELSEWHERE)
            if not options.prompt:
                return Reply(usage_hint(intent))
            text = options.prompt
            studio = StudioWork(aspect=options.aspect, seed=options.seed)
        return Request(
            scope=context.scope,
            user=context.user,
            text=text,
            intent=intent,
            destination=context.destination,
            conversation=context.conversation,
            access=context.access,
            studio=studio,
        )

    async def _on_last_media(
        self, command: Command, intent: Intent, text: str, context: CommandContext
    ) -> Reply | Request:
        """``/reroll``, ``/vary``, ``/upscale``, ``/edit``, ``/another``: the button of the same
        name pressed on the conversation's last image or song."""
        what = "image" if intent is Intent.IMAGE else "song"
        latest = None
        if self._studio is not None and context.conversation is not None:
            latest = await self._studio.latest(context.conversation, intent)
        if self._studio is None or latest is None:
            return Reply(f"There's no {what} here yet to work on. Nothing was charged.")
        strength = "subtle"
        if command.name == "vary":
            word = text.lower() or "subtle"
            if word not in ("subtle", "strong"):
                return Reply("Usage: `/vary [subtle|strong]`. Nothing was charged.")
            strength = word
        outcome = await press(
            self._studio,
            action_id(Action(command.name), latest.job),
            scope=context.scope,
            user=context.user,
            access=context.access,
            destination=context.destination,
            conversation=context.conversation,
            instruction=text if command.name == "edit" else "",
            strength="strong" if strength == "strong" else "subtle",
        )
        if isinstance(outcome, Removal | Expired):
            return Reply(outcome.text)
        return outcome

    async def _access(self, text: str, context: CommandContext) -> str:
        return await access_command(
            self.policies,
            context.scope,
            text,
            user=context.user,
            admin=context.admin or context.direct,
            channel=context.channel,
            roles=self.roles,
        )

    async def _budget(self, text: str, context: CommandContext) -> str:
        if context.direct:
            # In a DM the budget is the person's own allowance, set by the operator.
            can_view, can_change = True, False
        else:
            can_change = context.admin
            can_view = can_change or not self.budget_admins_only
        return await budget_command(
            self._ledger, context.scope, text, user=context.user, can_view=can_view, can_change=can_change
        )

    def _dashboard_link(self, context: CommandContext) -> str:
        """A private, expiring link to the scope's web dashboard, for its admins."""
        if context.direct:
            return "The dashboard is for a server's or workspace's budget: use `/budget dashboard` there."
        if not context.admin:
            return "Only admins can open this budget's dashboard."
        if self._dashboard is None:
            return (
                "The web dashboard isn't set up on this bot (the operator sets WEB_PORT or WEB_PUBLIC_URL)."
            )
        try:
            link = self._dashboard.link(context.scope, user=context.user)
        except LinkRefused as refused:
            return f"The web dashboard isn't available: {refused}."
        return (
            f"Your dashboard for this budget: {link.url}\n"
            f"The link is yours alone and works until {link.expires_at:%Y-%m-%d %H:%M} UTC; "
            "type `/budget dashboard` again for a new one."
        )

    async def _forget(self, text: str, context: CommandContext) -> str:
        if self._conversations is None:
            return self._unavailable("forget")
        # Those who may change /budget may forget a whole scope; a DM's scope is the caller's own.
        return await forget_command(
            self._conversations,
            context.conversation,
            context.scope,
            text,
            can_forget_scope=context.direct or context.admin,
        )
