"""The console as an ASGI application: filters for Beijing time and safe links, the session
cookie, security headers, and the routers (pages, one-tap links, JSON API)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, urlsplit

from jinja2 import pass_context
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from monitor import secrets
from monitor.clock import show, show_delta, show_due, time_left
from monitor.incidents.words import beijing
from monitor.web.auth import LoginRequired, csrf_token, current_user
from monitor.web.context import Console

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
SEVERITY_CLASS = {"特别重大": "s1", "重大": "s2", "较大": "s3", "一般": "s4"}
WEEKDAY_NAMES = dict(zip(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "一二三四五六日"))

# Pages run no inline script and load nothing from elsewhere; links never leak the one-tap
# token in a Referer; no other site may frame a page (clickjacking an acknowledge button).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def safe_href(url) -> str:
    """A link taken from a post or typed by a person, only if it is http(s): a javascript: or
    data: link is shown as text, never followed."""
    if not isinstance(url, str):
        return ""
    url = url.strip()
    return url if urlsplit(url).scheme.lower() in ("http", "https") and "\n" not in url else ""


def shown_url(url: str) -> str:
    """A source's address without user info or query, where tokens live."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "（地址无法显示）"
    host = parts.hostname or ""
    return secrets.redact(f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}")


def _event_data(data: dict) -> str:
    return json.dumps(beijing(data), ensure_ascii=False)


@pass_context
def _left(context, due) -> str:
    return time_left(due, context["now"])


env = templates.env
env.filters.update(left=_left, 
    bj=show, due=show_due, delta=show_delta, safe_href=safe_href, shown_url=shown_url, event_data=_event_data,
    basename=lambda p: Path(p).name, id=id, weekday=lambda d: "周" + WEEKDAY_NAMES.get(d, d),
)


def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    console: Console = request.app.state.console
    now = console.clock.now()
    flash = request.session.pop("flash", None)
    context.setdefault("user", current_user(request))
    base = dict(request=request, csrf=csrf_token(request), now=now, now_text=show(now), severity_class=SEVERITY_CLASS,
                flash=flash[0] if flash else None, flash_kind=flash[1] if flash else None)
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status)


class SecurityHeaders:
    """Plain ASGI (Starlette's BaseHTTPMiddleware costs a task and a stream per request)."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []), *(h for h in self.headers if h[0] not in present)]}
            await send(message)

        await self.app(scope, receive, with_headers)


MAX_BODY = 1 << 20  # every form and API body here is a few KB; a hostile one stops at 1 MB


class BodyLimit:
    """Refuse a request body over MAX_BODY (413) before anything parses it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return await _too_large(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, "请求内容过大")
            return message

        await self.app(scope, counted, send)


async def _too_large(send) -> None:
    body = "请求内容过大（上限 1 MB）".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(console: Console) -> FastAPI:
    from monitor.web import api, pages

    web = console.web
    app = FastAPI(title="舆情回应监测 API", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.console = console
    app.add_middleware(SessionMiddleware, secret_key=console.links.secret.decode(), session_cookie="monitor_session",
                       max_age=int(web.session_ttl.total_seconds()), same_site="lax", https_only=web.secure)

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        heading = {403: "无权操作", 404: "找不到", 429: "请求过多"}.get(exc.status_code, "出错了")
        return page(request, "message.html", exc.status_code, heading=heading, message=exc.detail, kind="bad")

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    return app
