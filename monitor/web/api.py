"""The JSON API for the office's own systems (OA): per-user bearer tokens, the same roles and
the same actions as the console. Its OpenAPI description is at /api/openapi.json."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from monitor import accounts
from monitor.accounts import Principal
from monitor.incidents.record import ActionError, NoSuchIncident
from monitor.store.models import Incident
from monitor.web import acting, queries
from monitor.web.acting import Forbidden
from monitor.web.auth import console_of

router = APIRouter(prefix="/api", tags=["incidents"])


def api_user(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "需要 API 令牌：Authorization: Bearer <令牌>（monitor users token 生成）",
                            headers={"WWW-Authenticate": "Bearer"})
    console = console_of(request)
    with console.sessions.begin() as session:
        user = accounts.by_token(session, token.strip(), console.clock.now())
        if user is None:
            raise HTTPException(401, "API 令牌无效或已停用", headers={"WWW-Authenticate": "Bearer"})
        return accounts.principal(user)


class ClockOut(BaseModel):
    name: str
    started_at: datetime
    due_at: datetime
    met_at: datetime | None
    met_by: str | None
    evidence: str | None


class IncidentOut(BaseModel):
    id: int
    title: str
    rule: str
    severity: str
    category: str
    department: str
    state: str
    false_positive: bool
    merged_into: int | None
    post_count: int
    started_at: datetime
    opened_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    url: str | None
    clocks: list[ClockOut]


class ActionOut(BaseModel):
    ok: bool = True
    message: str
    incident: IncidentOut


class MetIn(BaseModel):
    clock: str = Field(min_length=1, description="时限名称，如 发布权威信息")
    evidence: str | None = Field(None, max_length=2000, description="回应的链接")
    note: str | None = Field(None, max_length=2000)


class NoteIn(BaseModel):
    note: str | None = Field(None, max_length=2000)


class RegradeIn(BaseModel):
    level: str = Field(description="特别重大 | 重大 | 较大 | 一般")


class MergeIn(BaseModel):
    other: int = Field(description="并入并关闭的事件编号")


class SplitIn(BaseModel):
    posts: list[str] = Field(min_length=1, description="帖文编号（数据库编号或来源中的 id）")


def _out(inc: Incident) -> IncidentOut:
    return IncidentOut(
        id=inc.id, title=inc.title, rule=inc.rule, severity=inc.severity, category=inc.category, department=inc.department,
        state=inc.state, false_positive=bool(inc.false_positive), merged_into=inc.merged_into, post_count=inc.post_count,
        started_at=inc.started_at, opened_at=inc.opened_at, acked_at=inc.acked_at, acked_by=inc.acked_by,
        url=inc.first_post_url,
        clocks=[ClockOut(name=c.name, started_at=c.started_at, due_at=c.due_at, met_at=c.met_at, met_by=c.met_by,
                         evidence=c.evidence) for c in inc.clocks if c.active],
    )


@router.get("/incidents", response_model=list[IncidentOut], summary="未关闭的事件，按最近截止时间排序")
def list_incidents(request: Request, page: int = 1, who: Principal = Depends(api_user)):
    console = console_of(request)
    with console.sessions() as session:
        return [_out(r.incident) for r in queries.board(session, page, console.web.board_page).rows]


@router.get("/incidents/{incident_id}", response_model=IncidentOut, summary="事件详情")
def get_incident(request: Request, incident_id: int, who: Principal = Depends(api_user)):
    with console_of(request).sessions() as session:
        inc = session.get(Incident, incident_id)
        if inc is None:
            raise HTTPException(404, f"事件 #{incident_id} 不存在")
        return _out(inc)


def _act(request: Request, who: Principal, incident_id: int, action: str, **params) -> ActionOut:
    console = console_of(request)
    try:
        done = acting.perform(console, who, who.name, incident_id, action, **params)
    except Forbidden as e:
        raise HTTPException(403, str(e)) from None
    except ActionError as e:
        raise HTTPException(404 if isinstance(e, NoSuchIncident) else 409, str(e)) from None
    with console.sessions() as session:
        return ActionOut(message=done.message, incident=_out(session.get(Incident, done.incident_id)))


@router.post("/incidents/{incident_id}/ack", response_model=ActionOut, summary="确认收到")
def ack(request: Request, incident_id: int, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "ack")


@router.post("/incidents/{incident_id}/met", response_model=ActionOut, summary="登记某一时限已完成回应")
def met(request: Request, incident_id: int, body: MetIn, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "met", clock=body.clock, evidence=body.evidence, note=body.note)


@router.post("/incidents/{incident_id}/confirm", response_model=ActionOut, summary="采纳官方渠道的发布作为回应")
def confirm(request: Request, incident_id: int, post: int | None = None, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "confirm", posts=str(post) if post is not None else "")


@router.post("/incidents/{incident_id}/close", response_model=ActionOut, summary="关闭事件")
def close(request: Request, incident_id: int, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "close")


@router.post("/incidents/{incident_id}/false-positive", response_model=ActionOut, summary="标记为误报")
def false_positive(request: Request, incident_id: int, body: NoteIn, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "false_positive", note=body.note)


@router.post("/incidents/{incident_id}/regrade", response_model=ActionOut, summary="调整级别并重算时限")
def regrade(request: Request, incident_id: int, body: RegradeIn, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "regrade", level=body.level)


@router.post("/incidents/{incident_id}/merge", response_model=ActionOut, summary="把另一事件并入本事件")
def merge(request: Request, incident_id: int, body: MergeIn, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "merge", other=body.other)


@router.post("/incidents/{incident_id}/split", response_model=ActionOut, summary="拆出帖文成为新事件")
def split(request: Request, incident_id: int, body: SplitIn, who: Principal = Depends(api_user)):
    return _act(request, who, incident_id, "split", posts=" ".join(body.posts))
