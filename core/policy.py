"""Who may use the bot where: channel switches, role or user allowlists and services, per scope.

Policies live in the database (so every process and restart sees them) and are cached here, one
cache per database, so a change made through ``/access`` applies to the very next message. Other
processes sharing a PostgreSQL database are told of it (``LISTEN``/``NOTIFY``) and see it at once;
processes sharing a SQLite file see it within ``CACHE_TTL_S``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from core.db import Database
from core.parts import Access, Intent, Request, Scope

Mode = Literal["open", "allowlist"]
MemberKind = Literal["role", "user"]
SWITCHABLE: tuple[Intent, ...] = (Intent.IMAGE, Intent.SONG, Intent.RESEARCH, Intent.CHAT)
"""The services an admin may switch off with ``/access service``."""
CACHE_TTL_S = 10.0
RECENT_CHANGES = 5
CHANGED = "policy_changed"
"""The database notification a policy change sends, naming its scope."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One recorded policy change: when, by whom, what."""

    at: datetime
    by: str
    what: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A scope's access policy. The default lets everyone use everything everywhere."""

    mode: Mode = "open"
    channels: Mapping[str, bool] = field(default_factory=dict)
    """Channels switched on (True) or off (False) explicitly."""
    roles: frozenset[str] = frozenset()
    """Roles allowed to use paid commands and mentions; empty: no role is required."""
    users: frozenset[str] = frozenset()
    """Members allowed by name (Slack, which has no roles for apps to read cheaply)."""
    services_off: frozenset[Intent] = frozenset()
    changes: tuple[Change, ...] = ()
    """The last few changes, newest first."""

    def listens_in(self, channel: str | None) -> bool:
        """Whether the bot answers in ``channel`` (``None``: no channel, e.g. the console)."""
        if channel is None:
            return True
        switched = self.channels.get(channel)
        return switched if switched is not None else self.mode == "open"

    @property
    def restricts_members(self) -> bool:
        """Whether only allowed roles or members (and admins) may use paid work."""
        return bool(self.roles or self.users)

    def admits(self, *, user: str, roles: Collection[str], admin: bool) -> bool:
        """Whether this person may use paid commands and mentions."""
        if admin or not self.restricts_members or user in self.users:
            return True
        return not self.roles.isdisjoint(roles)

    def serves(self, intent: Intent) -> bool:
        return intent not in self.services_off


SWITCHED_OFF_HERE = "I'm switched off in this channel."
NOT_ALLOWED = (
    "Only members with an allowed role can use me here (an admin can change that with `/access`). "
    "Nothing was charged."
)
NOT_ALLOWED_USER = (
    "Only members on this workspace's allowlist can use me here (an admin can change that with "
    "`/access`). Nothing was charged."
)
_SERVICE_NAMES: dict[Intent, str] = {
    Intent.IMAGE: "Image generation",
    Intent.SONG: "Song generation",
    Intent.RESEARCH: "Research",
    Intent.CHAT: "Chat",
    Intent.SUMMARY: "Summaries",
}


def switched_off(intent: Intent) -> str:
    """What to say when an admin switched ``intent``'s service off in this scope."""
    return f"{_SERVICE_NAMES[intent]} is switched off here by an admin. Nothing was charged."


def not_admitted(policy: Policy) -> str:
    """Why a member outside the allowlist is refused."""
    return NOT_ALLOWED if policy.roles else NOT_ALLOWED_USER


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the policy says about a request before any work: go ahead, stay silent (switched-off
    channel: no answer, no charge) or refuse with ``message``."""

    silent: bool = False
    message: str = ""

    @property
    def allowed(self) -> bool:
        return not self.silent and not self.message


ALLOWED = Verdict()


def judge(policy: Policy, request: Request) -> Verdict:
    """The verdict on ``request`` before routing; services are checked once it is routed."""
    access = request.access
    if access is None:  # work the bot started itself (resumed jobs, idle summaries)
        return ALLOWED
    if not policy.listens_in(access.channel):
        return Verdict(silent=True)
    if not policy.admits(user=request.user, roles=access.roles, admin=access.admin):
        return Verdict(message=not_admitted(policy))
    return ALLOWED


class Policies:
    """Every scope's policy, read through a cache. Get the one for a database with ``policies_for``."""

    def __init__(self, database: Database, *, ttl_s: float = CACHE_TTL_S) -> None:
        self._database = database
        self._ttl_s = ttl_s
        self._cache: dict[Scope, tuple[float, Policy]] = {}
        self._loading: dict[Scope, asyncio.Future[Policy]] = {}
        self._listening = False

    async def policy(self, scope: Scope) -> Policy:
        """``scope``'s policy, from the cache when fresh. Requests arriving while it loads share
        that one load, and go on in the order they asked."""
        if not self._listening:
            self._listening = True
            await self._database.listen(CHANGED, self._changed_elsewhere)
        now = self._database.clock.now()
        cached = self._cache.get(scope)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        loading = self._loading.get(scope)
        if loading is None:
            loading = self._loading[scope] = asyncio.ensure_future(self._load(scope))
            loading.add_done_callback(lambda _: self._loaded(scope, now, loading))
        return await asyncio.shield(loading)

    def _loaded(self, scope: Scope, at: float, loading: asyncio.Future[Policy]) -> None:
        if self._loading.get(scope) is not loading:  # a change came in meanwhile: don't keep it
            return
        del self._loading[scope]
        if not loading.cancelled() and loading.exception() is None:
            self._cache[scope] = (at, loading.result())

    async def listens(self, scope: Scope, channel: str | None) -> bool:
        """Whether the bot answers mentions and follow-ups in ``channel`` of ``scope``."""
        return (await self.policy(scope)).listens_in(channel)

    async def judge(self, request: Request) -> Verdict:
        return judge(await self.policy(request.scope), request)

    # --- changes ----------------------------------------------------------------------------

    async def set_channel(self, scope: Scope, channel: str, on: bool, *, by: str) -> None:
        await self._change(
            scope,
            "INSERT INTO access_channels (scope, channel, enabled) VALUES (?, ?, ?) "
            "ON CONFLICT (scope, channel) DO UPDATE SET enabled = excluded.enabled",
            (str(scope), channel, int(on)),
            by=by,
            what=f"channel <#{channel}> {'on' if on else 'off'}",
        )

    async def set_mode(self, scope: Scope, mode: Mode, *, by: str) -> None:
        await self._change(
            scope,
            "INSERT INTO access_modes (scope, mode) VALUES (?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET mode = excluded.mode",
            (str(scope), mode),
            by=by,
            what=f"mode {mode}",
        )

    async def set_member(self, scope: Scope, kind: MemberKind, ident: str, allowed: bool, *, by: str) -> None:
        """Allow (or stop allowing) a role or a member by id."""
        shown = f"<@&{ident}>" if kind == "role" else f"<@{ident}>"
        if allowed:
            sql = "INSERT INTO access_members (scope, kind, id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        else:
            sql = "DELETE FROM access_members WHERE scope = ? AND kind = ? AND id = ?"
        what = f"{kind} {shown} {'allowed' if allowed else 'removed'}"
        await self._change(scope, sql, (str(scope), kind, ident), by=by, what=what)

    async def set_service(self, scope: Scope, intent: Intent, on: bool, *, by: str) -> None:
        if on:
            sql = "DELETE FROM access_services_off WHERE scope = ? AND service = ?"
        else:
            sql = "INSERT INTO access_services_off (scope, service) VALUES (?, ?) ON CONFLICT DO NOTHING"
        what = f"service {intent.value} {'on' if on else 'off'}"
        await self._change(scope, sql, (str(scope), intent.value), by=by, what=what)

    async def _change(
        self, scope: Scope, sql: str, params: tuple[object, ...], *, by: str, what: str
    ) -> None:
        """Apply one change and record it, in one transaction; the cache forgets the scope."""
        async with self._database.transaction() as db:
            await db.execute(sql, params)
            await db.execute(
                "INSERT INTO access_changes (scope, at, by, change) VALUES (?, ?, ?, ?)",
                (str(scope), self._database.clock.utc().isoformat(), by, what),
            )
        self._forget(scope)
        await self._database.notify(CHANGED, str(scope))

    def _forget(self, scope: Scope) -> None:
        self._cache.pop(scope, None)
        self._loading.pop(scope, None)  # a load begun before the change may read the old policy

    def _changed_elsewhere(self, scope: str) -> None:
        self._forget(Scope.parse(scope))

    async def _load(self, scope: Scope) -> Policy:
        key = str(scope)
        async with self._database.snapshot() as db:
            mode_row = await db.fetchone("SELECT mode FROM access_modes WHERE scope = ?", (key,))
            channel_rows = await db.fetchall(
                "SELECT channel, enabled FROM access_channels WHERE scope = ?", (key,)
            )
            channels = {str(channel): bool(enabled) for channel, enabled in channel_rows}
            member_rows = await db.fetchall("SELECT kind, id FROM access_members WHERE scope = ?", (key,))
            members = [(str(kind), str(ident)) for kind, ident in member_rows]
            off_rows = await db.fetchall("SELECT service FROM access_services_off WHERE scope = ?", (key,))
            off = frozenset(Intent(str(service)) for (service,) in off_rows)
            change_rows = await db.fetchall(
                "SELECT at, by, change FROM access_changes WHERE scope = ? ORDER BY id DESC LIMIT ?",
                (key, RECENT_CHANGES),
            )
            changes = tuple(
                Change(at=datetime.fromisoformat(at), by=str(by), what=str(what))
                for at, by, what in change_rows
            )
        return Policy(
            mode="allowlist" if mode_row and mode_row[0] == "allowlist" else "open",
            channels=channels,
            roles=frozenset(ident for kind, ident in members if kind == "role"),
            users=frozenset(ident for kind, ident in members if kind == "user"),
            services_off=off,
            changes=changes,
        )


_BY_DATABASE: weakref.WeakKeyDictionary[Database, Policies] = weakref.WeakKeyDictionary()


def policies_for(database: Database) -> Policies:
    """The one ``Policies`` of ``database`` in this process, so every change is seen at once."""
    policies = _BY_DATABASE.get(database)
    if policies is None:
        policies = _BY_DATABASE[database] = Policies(database)
    return policies


__all__ = [
    "SWITCHABLE",
    "Access",
    "Change",
    "Mode",
    "Policies",
    "Policy",
    "Verdict",
    "judge",
    "policies_for",
    "switched_off",
]
