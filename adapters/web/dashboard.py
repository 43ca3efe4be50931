"""The cost dashboard: a scope's overview, transactions (paged, filtered, as CSV) and limits, opened
from a ``/budget dashboard`` link; and the operator's list of every scope (``WEB_ADMIN_TOKEN``).

Pages are rendered here from the core's queries (``Ledger.report``, ``Spending``, ``scope_activity``);
a limit changed here goes through the same command as ``/budget set`` and is recorded the same way.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from adapters.web.charts import spend_chart
from adapters.web.pages import render
from adapters.web.services import WebServices
from core.commands.dispatcher import CommandContext, Reply
from core.dashboard import DashboardAccess, DashboardLinks, LinkRefused
from core.members import MemberCaps
from core.money import format_usd
from core.parts import Scope
from core.scopes import scope_activity
from core.spending import Spending, TransactionFilter, previous_period

COOKIE = "studio_dashboard"
MENTION = re.compile(r"<@!?([A-Za-z0-9]+)>")
MEMBER_ID = re.compile(r"[A-Za-z0-9]{1,64}")
REFUSALS = ("Can't", "Usage", "Only admins", "'", "That isn't")
"""How the budget command's refusals begin (its successes say what changed)."""
COOKIE_PATH = "/dashboard"


class Refused(Exception):
    """A page the visitor may not see: shown as a readable page with ``status``."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def dashboard_path(scope: Scope, page: str = "") -> str:
    return f"{COOKIE_PATH}/{quote(str(scope), safe=':')}{'/' + page if page else ''}"


def dashboard_routes(services: WebServices) -> APIRouter:
    router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
    spending = Spending(services.engine.ledger.database)
    ledger = services.engine.ledger
    caps = MemberCaps(ledger)

    def links() -> DashboardLinks:
        if services.dashboard is None:
            raise Refused(404, "No dashboard here", "This bot doesn't serve the dashboard.")
        return services.dashboard

    def refused_page(request: Request, refused: Refused) -> HTMLResponse:
        return render(
            request,
            "refused.html",
            {"title": refused.title, "message": refused.message},
            status_code=refused.status,
        )

    def session(request: Request) -> tuple[DashboardAccess, str]:
        cookie = request.cookies.get(COOKIE, "")
        access = links().session(cookie)
        if access is None:
            raise Refused(
                401,
                "Open the dashboard from chat",
                "This page needs a dashboard link: type `/budget dashboard` where the bot is, "
                "and open the private link it sends you. Links and sessions expire.",
            )
        return access, cookie

    def scoped(request: Request, scope_text: str) -> tuple[DashboardAccess, Scope, str]:
        access, cookie = session(request)
        try:
            scope = Scope.parse(scope_text)
        except ValueError:
            raise Refused(404, "No such budget", f"{scope_text!r} is not a budget's name.") from None
        if not access.allows(scope):
            raise Refused(
                403,
                "Not your budget",
                "Your dashboard link opens one budget only, and this is another one. "
                "Ask for a link where that budget's bot is.",
            )
        return access, scope, cookie

    def base(request: Request, access: DashboardAccess, scope: Scope | None, page: str) -> dict[str, Any]:
        return {
            "scope": scope,
            "page": page,
            "operator": access.operator,
            "paths": {
                name: dashboard_path(scope, name if name != "overview" else "")
                for name in ("overview", "transactions", "limits")
            }
            if scope
            else {},
        }

    @router.get("/open")
    async def open_link(request: Request, t: str = "") -> Response:
        try:
            access = links().open(t)
        except LinkRefused as refused:
            return refused_page(request, Refused(403, "This link can't be used", str(refused)))
        except Refused as refused:
            return refused_page(request, refused)
        assert access.scope is not None
        response = RedirectResponse(dashboard_path(access.scope), status_code=303)
        _set_cookie(response, links(), access, secure=request.url.scheme == "https")
        return response

    @router.get("")
    async def home(request: Request) -> Response:
        try:
            access, _ = session(request)
        except Refused as refused:
            if services.dashboard is None or not services.dashboard.operator_enabled:
                return refused_page(request, refused)
            return render(request, "login.html", {"error": ""}, status_code=401)
        if access.scope is not None:
            return RedirectResponse(dashboard_path(access.scope), status_code=303)
        activity = await scope_activity(ledger)
        return render(
            request,
            "operator.html",
            base(request, access, None, "operator")
            | {"activity": activity, "path_of": dashboard_path, "usd": format_usd},
        )

    @router.post("/login")
    async def login(request: Request, token: str = Form("")) -> Response:
        try:
            access = links().operator(token)
        except LinkRefused as refused:
            return render(request, "login.html", {"error": str(refused)}, status_code=403)
        except Refused as refused:
            return refused_page(request, refused)
        response = RedirectResponse(COOKIE_PATH, status_code=303)
        _set_cookie(response, links(), access, secure=request.url.scheme == "https")
        return response

    @router.get("/{scope_text}")
    async def overview(request: Request, scope_text: str) -> Response:
        try:
            access, scope, _ = scoped(request, scope_text)
        except Refused as refused:
            return refused_page(request, refused)
        report = await ledger.report(scope, recent=0)
        current = await spending.daily(scope, report.period)
        previous = await spending.daily(scope, previous_period(report.period))
        chart, legend = spend_chart(current, previous)
        return render(
            request,
            "overview.html",
            base(request, access, scope, "overview")
            | {
                "report": report,
                "chart": chart,
                "legend": legend,
                "current": current,
                "previous": previous,
                "members": await caps.top_spenders(scope),
            },
        )

    @router.get("/{scope_text}/transactions")
    async def transactions(
        request: Request, scope_text: str, service: str = "", status: str = "", user: str = "", page: int = 1
    ) -> Response:
        try:
            access, scope, _ = scoped(request, scope_text)
        except Refused as refused:
            return refused_page(request, refused)
        chosen = TransactionFilter(service=service, status=status, user=user)
        shown = await spending.page(scope, chosen, page=page)
        query = {
            key: value for key, value in (("service", service), ("status", status), ("user", user)) if value
        }

        def page_link(number: int) -> str:
            return dashboard_path(scope, "transactions") + "?" + urlencode(query | {"page": str(number)})

        return render(
            request,
            "transactions.html",
            base(request, access, scope, "transactions")
            | {
                "shown": shown,
                "chosen": chosen,
                "choices": await spending.choices(scope),
                "page_link": page_link,
                "csv_link": dashboard_path(scope, "transactions.csv")
                + ("?" + urlencode(query) if query else ""),
            },
        )

    @router.get("/{scope_text}/transactions.csv")
    async def transactions_csv(
        request: Request, scope_text: str, service: str = "", status: str = "", user: str = ""
    ) -> Response:
        try:
            _, scope, _ = scoped(request, scope_text)
        except Refused as refused:
            return refused_page(request, refused)
        rows = await spending.rows(scope, TransactionFilter(service=service, status=status, user=user))
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ("time_utc", "member", "service", "prompt", "reserved_usd", "charged_usd", "status", "request_id")
        )
        for row in rows:
            writer.writerow(
                (
                    row.created_at.isoformat(),
                    row.user,
                    row.service,
                    row.prompt,
                    format_usd(row.reserved).removeprefix("$"),
                    format_usd(row.charged).removeprefix("$"),
                    row.status,
                    row.request_id,
                )
            )
        filename = f"transactions-{scope.platform}-{scope.id}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.get("/{scope_text}/limits")
    async def limits(request: Request, scope_text: str) -> Response:
        try:
            access, scope, cookie = scoped(request, scope_text)
        except Refused as refused:
            return refused_page(request, refused)
        return await limits_page(request, access, scope, cookie, outcome=None)

    @router.post("/{scope_text}/limits")
    async def change_limit(
        request: Request,
        scope_text: str,
        action: str = Form(...),
        amount: str = Form(""),
        member: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        try:
            access, scope, cookie = scoped(request, scope_text)
        except Refused as refused:
            return refused_page(request, refused)
        if csrf != links().csrf_token(cookie):
            return refused_page(
                request, Refused(403, "Form expired", "Reload the page and try again: the form is stale.")
            )
        member = member.strip().removeprefix("@")
        if action in ("user", "user-reset") and not MEMBER_ID.fullmatch(member):
            refusal = f"That isn't a member id: {member!r}. Use the platform's id, e.g. 123456789 or U0123."
            return await limits_page(request, access, scope, cookie, outcome=refusal)
        words = command_words(action, amount=amount.strip(), member=member)
        if words is None:
            return refused_page(request, Refused(400, "Unknown change", f"{action!r} is not a change."))
        # The same command as `/budget set` in chat, with the dashboard's admin as the one changing it.
        answer = await services.dispatcher().dispatch(
            "budget", words, CommandContext(scope=scope, user=access.user, admin=True)
        )
        message = answer.text if isinstance(answer, Reply) else ""
        # Replies name members as chat mentions (<@id>); the page shows the id.
        shown = MENTION.sub(r"\1", message.split("\n\n")[0])
        return await limits_page(request, access, scope, cookie, outcome=shown)

    async def limits_page(
        request: Request, access: DashboardAccess, scope: Scope, cookie: str, *, outcome: str | None
    ) -> HTMLResponse:
        report = await ledger.report(scope, recent=0, detailed=False)
        failed = outcome is not None and outcome.startswith(REFUSALS)
        default_cap, default_set_here = await caps.scope_default(scope)
        return render(
            request,
            "limits.html",
            base(request, access, scope, "limits")
            | {
                "report": report,
                "default_limit": ledger.default_limit_for(scope),
                "csrf": links().csrf_token(cookie),
                "outcome": outcome,
                "failed": failed,
                "default_cap": default_cap,
                "default_set_here": default_set_here,
                "bot_default_cap": ledger.member_cap,
                "member_caps": await spending.member_caps(scope),
            },
            status_code=400 if failed else 200,
        )

    return router


def _set_cookie(response: Response, links: DashboardLinks, access: DashboardAccess, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        links.cookie(access),
        max_age=int(links.lifetime.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def command_words(action: str, *, amount: str, member: str) -> str | None:
    """The ``/budget`` words a limits form asks for: the same command an admin types in chat."""
    if action == "set":
        return f"set {amount}"
    if action == "reset":
        return "reset"
    if action == "user-default":
        return f"user-default {amount or 'reset'}"
    if action in ("user", "user-reset"):
        return f"user <@{member}> {amount if action == 'user' else 'reset'}"
    return None
