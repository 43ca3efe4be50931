"""``/chat``: the browser chat page, a client of the WebSocket session protocol (``static/chat.js``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from adapters.web.pages import render
from adapters.web.services import WebServices


def chat_page_routes(services: WebServices) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/chat")
    async def chat_page(request: Request) -> HTMLResponse:
        """The chat: with an API key, or on a demo-only bot without one."""
        return render(request, "chat.html", {"demo": services.demo_chat, "page": "chat"})

    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/chat")

    return router
