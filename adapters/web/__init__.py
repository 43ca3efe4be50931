"""The web surface: an OpenAI-compatible HTTP API and live WebSocket sessions (FastAPI + uvicorn)."""

from adapters.web.app import WebServer, create_app
from adapters.web.services import WebServices

__all__ = ["WebServer", "WebServices", "create_app"]
