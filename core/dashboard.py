"""Signed, expiring links to a scope's cost dashboard, and the browser sessions they open.

``/budget dashboard`` hands an admin a link that carries the scope, the admin and an expiry, signed
with ``WEB_SECRET`` (itsdangerous, HMAC-SHA1 over the payload with a per-purpose salt). Opening it
gives a session cookie signed the same way, good for that scope only until the same expiry
interval has passed again. An operator holding ``WEB_ADMIN_TOKEN`` gets a session for every scope.
Nothing is stored per link: a tampered link fails its signature, an old one its expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

from core.clock import Clock
from core.db import Database
from core.parts import Scope

DEFAULT_LINK_MINUTES = 60
SECRET_NAME = "web_secret"
LINK_SALT = "dashboard-link"
SESSION_SALT = "dashboard-session"
OPERATOR = "operator"
"""The user an operator's changes are recorded as."""


class LinkRefused(Exception):
    """A dashboard link or session that can't be used; the message says why, for a person."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardAccess:
    """Who a link or session lets in: one scope's admin, or (``scope`` None) the operator."""

    scope: Scope | None
    user: str
    expires_at: datetime

    @property
    def operator(self) -> bool:
        return self.scope is None

    def allows(self, scope: Scope) -> bool:
        return self.scope is None or self.scope == scope


@dataclass(frozen=True, slots=True)
class DashboardLink:
    url: str
    expires_at: datetime


async def stored_secret(database: Database) -> str:
    """The database's signing secret, made on first use; every process sharing the database
    reads the same one (whichever inserted first wins)."""
    await database.write(
        "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (SECRET_NAME, secrets.token_urlsafe(32), database.clock.utc().isoformat()),
    )
    row = await database.fetchone("SELECT value FROM secrets WHERE name = ?", (SECRET_NAME,))
    assert row is not None
    return str(row[0])


class DashboardLinks:
    """Makes and checks dashboard links and session cookies. ``base_url`` is where browsers reach
    the web server; empty until one is known (then no link can be made)."""

    def __init__(
        self,
        secret: str,
        *,
        clock: Clock,
        base_url: str = "",
        link_minutes: int = DEFAULT_LINK_MINUTES,
        admin_token: str | None = None,
    ) -> None:
        self._links = URLSafeSerializer(secret, salt=LINK_SALT)
        self._sessions = URLSafeSerializer(secret, salt=SESSION_SALT)
        self._csrf_key = hashlib.sha256(f"csrf:{secret}".encode()).digest()
        self._clock = clock
        self.base_url = base_url.rstrip("/")
        self.lifetime = timedelta(minutes=link_minutes)
        self._admin_token = admin_token or None

    def serve_at(self, base_url: str) -> None:
        """Where the web server turned out to listen, when no public URL was configured."""
        if not self.base_url:
            self.base_url = base_url.rstrip("/")

    @property
    def operator_enabled(self) -> bool:
        return self._admin_token is not None

    def link(self, scope: Scope, *, user: str) -> DashboardLink:
        """A link to ``scope``'s dashboard for its admin ``user``, valid for ``lifetime``."""
        if not self.base_url:
            raise LinkRefused("the web server's address is not configured (WEB_PUBLIC_URL or WEB_PORT)")
        expires_at = self._clock.utc() + self.lifetime
        token = self._links.dumps({"s": str(scope), "u": user, "x": int(expires_at.timestamp())})
        return DashboardLink(f"{self.base_url}/dashboard/open?t={quote(str(token))}", expires_at)

    def open(self, token: str) -> DashboardAccess:
        """The access a link's token grants, renewed for ``lifetime`` from now (the session)."""
        payload = self._load(self._links, token, what="link")
        if payload.expires_at <= self._clock.utc():
            raise LinkRefused(
                "This dashboard link has expired. Type `/budget dashboard` again for a new one."
            )
        return DashboardAccess(
            scope=payload.scope, user=payload.user, expires_at=self._clock.utc() + self.lifetime
        )

    def operator(self, token: str) -> DashboardAccess:
        """An operator session, when ``token`` is ``WEB_ADMIN_TOKEN``."""
        expected = self._admin_token
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise LinkRefused("That is not the operator token (WEB_ADMIN_TOKEN).")
        return DashboardAccess(scope=None, user=OPERATOR, expires_at=self._clock.utc() + self.lifetime)

    def cookie(self, access: DashboardAccess) -> str:
        """The session cookie's value for ``access``."""
        scope = str(access.scope) if access.scope is not None else ""
        return str(
            self._sessions.dumps({"s": scope, "u": access.user, "x": int(access.expires_at.timestamp())})
        )

    def session(self, cookie: str | None) -> DashboardAccess | None:
        """The live session ``cookie`` holds, or ``None`` (missing, tampered or expired)."""
        if not cookie:
            return None
        try:
            access = self._load(self._sessions, cookie, what="session")
        except LinkRefused:
            return None
        return access if access.expires_at > self._clock.utc() else None

    def csrf_token(self, cookie: str) -> str:
        """A form token tied to one session: a page of another site can't know it."""
        return hmac.new(self._csrf_key, cookie.encode(), hashlib.sha256).hexdigest()[:32]

    def _load(self, serializer: URLSafeSerializer, token: str, *, what: str) -> DashboardAccess:
        try:
            payload = serializer.loads(token)
            scope_text, user, expiry = str(payload["s"]), str(payload["u"]), int(payload["x"])
            scope = Scope.parse(scope_text) if scope_text else None
        except (BadSignature, KeyError, TypeError, ValueError):
            raise LinkRefused(
                f"This dashboard {what} is not valid: it was changed or cut short. "
                "Type `/budget dashboard` again for a new one."
            ) from None
        return DashboardAccess(scope=scope, user=user, expires_at=datetime.fromtimestamp(expiry, UTC))
