"""Sessions, CSRF and roles for the console's pages.

The session is Starlette's signed cookie (itsdangerous): the user's id and their account's
epoch, so a password reset or a disable ends it; a CSRF token lives in it too and every form
sends it back. The JSON API does not read cookies: it takes per-user bearer tokens."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request

from monitor import accounts
from monitor.accounts import Principal
from monitor.web.context import Console


class LoginRequired(Exception):
    """A page that needs a user was asked for without one: go to the login page."""


def console_of(request: Request) -> Console:
    return request.app.state.console


def current_user(request: Request) -> Principal | None:
    uid, epoch = request.session.get("uid"), request.session.get("epoch")
    if uid is None:
        return None
    console = console_of(request)
    with console.sessions() as session:
        who = accounts.active(session, int(uid), int(epoch or 0))
    if who is None:
        request.session.clear()
    return who


def require_user(request: Request) -> Principal:
    who = current_user(request)
    if who is None:
        raise LoginRequired()
    return who


def sign_in(request: Request, who: Principal) -> None:
    request.session.clear()  # a new session on login: a planted cookie learns nothing
    request.session.update(uid=who.id, epoch=who.epoch, csrf=secrets.token_urlsafe(24))


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def verify_csrf(request: Request, sent: str | None) -> None:
    """Every form posts the session's CSRF token back; anything else is refused (403)."""
    expected = request.session.get("csrf") or ""
    if not expected or not secrets.compare_digest(str(sent or ""), expected):
        raise HTTPException(403, "表单已失效或来源不明（CSRF 校验失败）：请刷新页面后重试")
