"""What every route of the web surface shares, and how a request proves which API key sent it."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.requests import HTTPConnection

from adapters.web.answers import MediaLinks
from adapters.web.errors import invalid_key
from core.api_keys import ApiKey, KeyStore
from core.clock import Clock
from core.commands.dispatcher import Dispatcher
from core.dashboard import DashboardLinks
from core.engine import Engine
from core.inflight import Inflight
from core.media_store import MediaStore
from core.parts import Scope

DEFAULT_SUMMARY_AFTER_S = 60.0
DEMO_KEY_NAME = "_demo"
"""Not a name a key can have (they start with a letter or digit), so no real key's sessions mix in."""
DEMO_SCOPE = Scope("web", "demo")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebServices:
    """The core pieces the routes use. ``public_url`` is where clients reach this server (for
    media links); empty means the address each request came in on."""

    engine: Engine
    keys: KeyStore
    media: MediaStore
    clock: Clock
    inflight: Inflight = field(default_factory=Inflight)
    summary_after_s: float = DEFAULT_SUMMARY_AFTER_S
    """Seconds a session stays disconnected before its summary is made; 0 = never."""
    public_url: str = ""
    demo_chat: bool = False
    """Every service runs on the free demo: ``/chat`` and sessions work without an API key."""

    @property
    def dashboard(self) -> DashboardLinks | None:
        """Signs and checks the dashboard's links and sessions (``/budget dashboard``)."""
        return self.engine.dashboard

    def demo_identity(self) -> ApiKey | None:
        """Who a browser without a key is on a demo-only bot: one shared, free demo budget."""
        if not self.demo_chat:
            return None
        return ApiKey(name=DEMO_KEY_NAME, scope=DEMO_SCOPE, created_at=self.clock.utc())

    def dispatcher(self) -> Dispatcher:
        # Keys see their scope's /budget (their spend is in it) but change nothing: no admin rights.
        return Dispatcher(
            ledger=self.engine.ledger,
            conversations=self.engine.conversations,
            intents=self.engine.intents,
            budget_visible_to="everyone",
        )

    def links(self, connection: HTTPConnection) -> MediaLinks:
        base = self.public_url or str(connection.base_url)
        if base.startswith("ws"):
            base = "http" + base[2:]
        return MediaLinks(self.media, base)


def bearer_token(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(services: WebServices, secret: str | None) -> ApiKey:
    """The live key ``secret`` is; raises 401 ``invalid_api_key`` otherwise."""
    key = await services.keys.authenticate(secret) if secret else None
    if key is None:
        raise invalid_key()
    return key
