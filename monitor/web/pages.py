"""The console's pages. Each handler reads through queries.py or acts through acting.py and
renders a template; the rules of what may happen live below it."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from monitor import accounts
from monitor.accounts import AccountError
from monitor.alerts.links import LinkError
from monitor.clock import show, show_delta
from monitor.incidents.record import ActionError, official_source
from monitor.incidents.words import EVENT_NAMES, state_name
from monitor.reports.period import from_label, last_complete_week
from monitor.reports.weekly import make_report
from monitor.severity import SEVERITIES
from monitor.store.models import Incident, Outbox, ReportRun, UsedLink
from monitor.web import acting, queries
from monitor.web.acting import ACTION_NAMES, Forbidden
from monitor.web.app import page
from monitor.web.auth import console_of, current_user, require_user, sign_in, verify_csrf

router = APIRouter()
OUTBOX_STATES = {"pending": "待发送", "sending": "发送中", "sent": "已送达", "failed": "发送失败",
                 "digest": "已随汇总送达", "dropped": "已回应，未再发送"}
HEALTH_NAMES = {"ok": "正常", "failing": "抓取失败", "quiet": "长时间无新帖"}


def _back(request: Request, url: str, message: str, kind: str = "ok") -> RedirectResponse:
    request.session["flash"] = [message, kind]
    return RedirectResponse(url, status_code=303)


def _local_path(url: str | None) -> str:
    """Where to go after login: a path on this site only (no open redirect)."""
    return url if url and url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


@router.get("/healthz")
def healthz() -> dict:
    return {"ok": True}


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return page(request, "login.html", user=None, next_url=_local_path(next), error=None, name="")


@router.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), csrf: str = Form(""), next: str = Form("/")):
    verify_csrf(request, csrf)
    console = console_of(request)
    web = console.web
    error = None
    with console.sessions.begin() as session:  # a wrong password is counted even though it fails
        try:
            who = accounts.principal(accounts.login(session, name, password, console.clock.now(), web.max_failed_logins, web.lockout))
        except AccountError as e:
            error = str(e)
    if error:
        return page(request, "login.html", 401, user=None, next_url=_local_path(next), error=error, name=name[:100])
    sign_in(request, who)
    return RedirectResponse(_local_path(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")):
    verify_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def board(request: Request):
    who = require_user(request)
    if who.role == "分管领导":
        return RedirectResponse("/overview", status_code=303)
    console = console_of(request)
    number = request.query_params.get("page", "1")
    with console.sessions() as session:
        b = queries.board(session, int(number) if number.isdigit() else 1, console.web.board_page)
        return page(request, "board.html", user=who, board=b, duty=queries.duty_now(console.config(), console.clock.now()))


@router.get("/overview")
def overview(request: Request, days: int = 30):
    who = require_user(request)
    console = console_of(request)
    days = min(max(days, 1), 366)
    now = console.clock.now()
    with console.sessions() as session:
        return page(request, "overview.html", user=who, days=days, board=queries.board(session, 1, 1),
                    rates=queries.on_time(session, now, now - timedelta(days=days)))


def _can(console, who) -> dict:
    return {a: acting.may(console, who, a) for a in ACTION_NAMES}


@router.get("/incidents/{incident_id}")
def incident(request: Request, incident_id: int):
    who = require_user(request)
    console = console_of(request)
    now = console.clock.now()
    with console.sessions() as session:
        inc = session.get(Incident, incident_id)
        if inc is None:
            raise HTTPException(404, f"事件 #{incident_id} 不存在")
        heat, width = queries.heat_curve(session, inc, now)
        events, event_total = queries.timeline(session, inc.id)
        clocks = [c for c in inc.clocks if c.active]
        return page(
            request, "incident.html", user=who, inc=inc, state=state_name(inc), clocks=clocks, can=_can(console, who),
            posts=queries.posts(session, inc), heat=heat, heat_width=show_delta(width),
            heat_text=console.incidents().heat(session, inc, now).describe(), events=events, event_total=event_total,
            alerts=queries.incident_alerts(session, inc.id), event_names=EVENT_NAMES, severities=SEVERITIES,
            proposals=[{**e.data, "source": official_source(e.actor), "published": datetime.fromisoformat(e.data["published_at"])}
                       for e in console.incidents().actions.proposals(session, inc.id)],
        )


@router.post("/incidents/{incident_id}/{action}")
async def act(request: Request, incident_id: int, action: str):
    form = dict(await request.form())
    verify_csrf(request, form.get("csrf"))
    params = {k: v for k, v in form.items() if k in ("clock", "evidence", "note", "level", "other", "posts")}

    def run() -> acting.Done:
        who = require_user(request)
        return acting.perform(console_of(request), who, who.name, incident_id, action, **params)

    try:
        done = await run_in_threadpool(run)
    except Forbidden as e:
        raise HTTPException(403, str(e)) from None
    except ActionError as e:
        return _back(request, f"/incidents/{incident_id}", f"无法执行：{e}", "bad")
    return _back(request, f"/incidents/{done.incident_id}", done.message)


@router.get("/a/{token}")
def link_page(request: Request, token: str):
    return _link(request, token, tap=False)


@router.post("/a/{token}")
def link_tap(request: Request, token: str, csrf: str = Form("")):
    verify_csrf(request, csrf)
    return _link(request, token, tap=True)


def _link(request: Request, token: str, tap: bool):
    """GET shows what the link will do (a link preview sees only this); the tap acts."""
    console = console_of(request)
    links = console.links
    who = current_user(request)
    try:
        claim = links.read(token)
        with console.sessions() as session:
            row = session.get(Outbox, claim.outbox_id)
            inc = session.get(Incident, claim.incident_id)
            if row is None or inc is None:
                raise LinkError("链接无效（与告警记录不符）：没有执行任何操作")
            actor = f"{queries.recipient(console.config(), row.tag, row.target_display)}（告警链接）"
            proposal = acting.link_proposal(session, console, row, inc)
            if tap:
                done = acting.act_by_link(console, claim, actor)
                return page(request, "link.html", user=who, inc=inc, done=done.message, error=None, proposal=proposal)
            spent = session.get(UsedLink, claim.outbox_id)
            if spent is not None:
                raise LinkError(f"此链接已于 {show(spent.used_at)} 使用过：没有再次执行任何操作")
            if proposal is None and inc.acked_at is not None:
                raise LinkError(f"事件 #{inc.id} 已由 {inc.acked_by} 确认，无需再次确认")
            return page(request, "link.html", user=who, inc=inc, clocks=[c for c in inc.clocks if c.active],
                        actor=actor, done=None, error=None, proposal=proposal)
    except (LinkError, ActionError) as e:
        return page(request, "link.html", 400, user=who, inc=None, error=str(e), done=None)


@router.get("/alerts")
def alerts(request: Request):
    who = require_user(request)
    console = console_of(request)
    cfg = console.config()
    with console.sessions() as session:
        return page(request, "alerts.html", user=who, deliveries=queries.alerts(session), outbox_states=OUTBOX_STATES,
                    recipient=lambda o: queries.recipient(cfg, o.tag, o.target_display))


@router.get("/sources")
def sources(request: Request):
    who = require_user(request)
    console = console_of(request)
    with console.sessions() as session:
        return page(request, "sources.html", user=who, sources=queries.sources(session), health_names=HEALTH_NAMES)


@router.get("/roster")
def roster(request: Request):
    who = require_user(request)
    console = console_of(request)
    cfg = console.config()
    return page(request, "roster.html", user=who, duty=queries.duty_now(cfg, console.clock.now()),
                shifts=cfg.main.shift, people=cfg.main.person)


@router.get("/reports")
def reports(request: Request):
    who = require_user(request)
    console = console_of(request)
    with console.sessions() as session:
        return page(request, "reports.html", user=who, runs=queries.report_runs(session),
                    last_week=last_complete_week(console.clock.now()).label)


_making = threading.Lock()  # one report at a time: each takes seconds of CPU


@router.get("/reports/make")
def report_make(request: Request, week: str = "", format: str = "xlsx") -> Response:
    """A report made now for the period asked (a week, month, quarter or year; default: the last complete week)."""
    require_user(request)
    console = console_of(request)
    if format not in ("xlsx", "docx", "html"):
        raise HTTPException(400, "格式应为 xlsx、docx 或 html")
    now = console.clock.now()
    try:
        period = from_label(week) if week.strip() else last_complete_week(now)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    if not _making.acquire(blocking=False):
        raise HTTPException(429, "正在生成另一份报表，请稍候再试")
    try:
        cfg = console.config()
        _report, files = make_report(console.sessions, cfg.main, period, now, [format], cfg.state_dir / "reports" / "console" / period.label)
    finally:
        _making.release()
    path = next(f for f in files if f.suffix == f".{format}")
    return FileResponse(path, filename=path.name)


@router.get("/reports/{run_id}/{index}")
def report_file(request: Request, run_id: int, index: int) -> Response:
    """A file of a scheduled report, by its place in the run's list: no path comes from the URL."""
    require_user(request)
    console = console_of(request)
    with console.sessions() as session:
        run = session.get(ReportRun, run_id)
        files = list(run.files) if run is not None else []
    if not 0 <= index < len(files) or not Path(files[index]).is_file():
        raise HTTPException(404, "报表文件不存在（可能已被清理）")
    path = Path(files[index])
    return FileResponse(path, filename=path.name)


@router.get("/rules/test")
def rules_form(request: Request):
    who = require_user(request)
    return page(request, "rules.html", user=who, title="", body="", verdicts=None)


@router.post("/rules/test")
def rules_test(request: Request, title: str = Form(""), body: str = Form(""), csrf: str = Form("")):
    verify_csrf(request, csrf)
    who = require_user(request)
    title, body = title[:2000], body[:20000]
    verdicts = [v for v in console_of(request).matcher().evaluate(title, body, every_rule=True) if v.matched or v.hits or v.rejected]
    marked = {id(v): {name: queries.highlight(text, [(h.start, h.end) for h in v.hits if h.field == name])
                      for name, text in (("title", title), ("body", body)) if text} for v in verdicts}
    return page(request, "rules.html", user=who, title=title, body=body, verdicts=verdicts, marked=marked)
