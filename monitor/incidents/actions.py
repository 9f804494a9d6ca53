"""What officers do to incidents: acknowledge, record a clock as met, close, mark as 误报,
regrade, merge, split. The one layer the CLI, replay, the console and the API call; each action checks what
it may do (an ActionError says why not, in Chinese) and leaves an event with its actor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.clock import show, show_due
from monitor.config import MainConfig
from monitor.incidents.clocks import clock_start
from monitor.incidents.record import (
    ActionError, NoSuchIncident, Planner, changed, clock_changed, drop_held_steps, event, link, new_clock,
)
from monitor.severity import SEVERITIES
from monitor.store.models import Event, Incident, IncidentPost, Post


ACTION_NAMES = {
    "ack": "确认收到", "met": "登记回应", "confirm": "采纳官方发布", "close": "关闭", "false_positive": "标记误报",
    "regrade": "调整级别", "merge": "合并", "split": "拆分",
}


@dataclass(frozen=True)
class Done:
    incident_id: int  # where to look next (split: the new incident)
    message: str  # what the officer reads


class Actions:
    def __init__(self, cfg: MainConfig, planner: Planner):
        self.cfg = cfg
        self.planner = planner

    def do(self, session: Session, incident_id: int, action: str, actor: str, now: datetime, *, clock: str = "",
           evidence: str | None = None, note: str | None = None, level: str = "", other: int | None = None,
           posts: list[str] | None = None) -> Done:
        """One action by name, and what it says it did: the CLI and the console print the same."""
        if action == "ack":
            self.ack(session, incident_id, actor, now)
            return Done(incident_id, f"事件 #{incident_id} 已确认（{actor}，{show(now)}）")
        if action == "met":
            incident = self.met(session, incident_id, clock, actor, now, evidence, note)
            due = next(c.due_at for c in incident.clocks if c.name == clock and c.active)
            late = "超时" if now > due else "按时"
            return Done(incident_id, f"事件 #{incident_id}「{clock}」已于 {show(now)} 登记完成（{late}，截止 {show_due(due)}）")
        if action == "confirm":
            clock, evidence = self.confirm(session, incident_id, actor, now, posts[0] if posts else None)
            return Done(incident_id, f"事件 #{incident_id}「{clock}」已采纳官方发布登记完成：{evidence}")
        if action == "close":
            self.close(session, incident_id, actor, now)
            return Done(incident_id, f"事件 #{incident_id} 已于 {show(now)} 关闭")
        if action == "false_positive":
            self.false_positive(session, incident_id, actor, now, note)
            return Done(incident_id, f"事件 #{incident_id} 已标记为误报并关闭（{actor}，{show(now)}）")
        if action == "regrade":
            incident = self.regrade(session, incident_id, level, actor, now)
            dues = "".join(f"\n  · {c.name}：{show_due(c.due_at)} 截止" for c in incident.clocks if c.active)
            return Done(incident_id, f"事件 #{incident_id} 级别改为「{level}」，时限已重算：{dues}")
        if action == "merge":
            if other is None:
                raise ActionError("请写出要并入的事件编号")
            self.merge(session, incident_id, other, actor, now)
            return Done(incident_id, f"事件 #{other} 已并入 #{incident_id}（#{other} 已关闭）")
        if action == "split":
            if not posts:
                raise ActionError("请写出要拆出的帖文编号")
            new = self.split(session, incident_id, posts, actor, now)
            return Done(new.id, f"已从事件 #{incident_id} 拆出 {len(posts)} 条帖文，成为新事件 #{new.id}")
        raise ActionError(f"未知操作「{action}」")

    def get(self, session: Session, incident_id: int) -> Incident:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise NoSuchIncident(f"事件 #{incident_id} 不存在")
        return incident

    def ack(self, session: Session, incident_id: int, actor: str, now: datetime) -> Incident:
        incident = self.get(session, incident_id)
        if incident.state == "closed":
            raise ActionError(f"事件 #{incident_id} 已关闭")
        if incident.acked_at is not None:
            raise ActionError(f"事件 #{incident_id} 已于 {show(incident.acked_at)} 由 {incident.acked_by} 确认")
        incident.acked_at, incident.acked_by, incident.state = now, actor, "acknowledged"
        event(session, incident, now, actor, "acknowledged")
        return incident

    def met(self, session: Session, incident_id: int, clock_name: str, actor: str, now: datetime, evidence: str | None,
            note: str | None = None) -> Incident:
        incident = self.get(session, incident_id)
        clock = next((c for c in incident.clocks if c.name == clock_name and c.active), None)
        if clock is None:
            names = "、".join(c.name for c in incident.clocks if c.active)
            raise ActionError(f"事件 #{incident_id} 没有时限「{clock_name}」（现有：{names}）")
        if clock.met_at is not None:
            raise ActionError(f"事件 #{incident_id} 的「{clock_name}」已于 {show(clock.met_at)} 登记完成")
        clock.met_at, clock.met_by, clock.evidence = now, actor, evidence
        clock_changed(session, clock, now)
        on_time = now <= clock.due_at
        event(session, incident, now, actor, "clock_met", clock=clock_name, evidence=evidence, on_time=on_time,
              **({"note": note} if note else {}))
        changed(incident, now)
        drop_held_steps(session, incident.id, clock_name)
        return incident

    def proposals(self, session: Session, incident_id: int) -> list[Event]:
        """Official releases proposed as this incident's answer whose clock is still open, newest first."""
        incident = self.get(session, incident_id)
        waiting = {c.name for c in incident.clocks if c.active and c.met_at is None}
        events = session.scalars(
            select(Event).where(Event.incident_id == incident_id, Event.kind == "evidence_proposed").order_by(Event.id.desc())
        ).all()
        return [e for e in events if (e.data or {}).get("clock") in waiting]

    def confirm(self, session: Session, incident_id: int, actor: str, now: datetime, post: str | None = None) -> tuple[str, str]:
        """An officer takes an official channel's release as the answer it was proposed for
        (the newest, or the one of post #N): its clock is met from the release's publication."""
        found = self.proposals(session, incident_id)
        wanted = str(post).lstrip("#") if post else None
        chosen = next((e for e in found if wanted is None or str(e.data.get("post")) == wanted), None)
        if chosen is None:
            raise ActionError(f"事件 #{incident_id} 没有待采纳的官方发布" + (f"（帖文 #{wanted}）" if wanted else ""))
        data = chosen.data
        published = min(datetime.fromisoformat(data["published_at"]), now)
        evidence = data.get("url") or f"官方渠道发布：{data.get('title', '')}"
        self.met(session, incident_id, data["clock"], actor, published, evidence, note=f"采纳官方渠道发布《{data.get('title', '')}》（{show(now)} 确认）")
        return data["clock"], evidence

    def close(self, session: Session, incident_id: int, actor: str, now: datetime) -> Incident:
        incident = self.get(session, incident_id)
        if incident.state == "closed":
            raise ActionError(f"事件 #{incident_id} 已关闭")
        incident.state, incident.closed_at = "closed", now
        open_clocks = [c.name for c in incident.clocks if c.active and c.met_at is None]
        event(session, incident, now, actor, "closed", open_clocks=open_clocks)
        changed(incident, now)
        drop_held_steps(session, incident.id)
        return incident

    def false_positive(self, session: Session, incident_id: int, actor: str, now: datetime, note: str | None = None) -> Incident:
        """Not public opinion the office must answer (误报): it closes, its clocks stop, and
        reports count it apart instead of as unanswered."""
        incident = self.get(session, incident_id)
        if incident.false_positive:
            raise ActionError(f"事件 #{incident_id} 已标记为误报")
        if incident.merged_into:
            raise ActionError(f"事件 #{incident_id} 已并入 #{incident.merged_into}")
        incident.false_positive = True
        if incident.state != "closed":
            incident.state, incident.closed_at = "closed", now
        event(session, incident, now, actor, "false_positive", note=note)
        changed(incident, now)
        drop_held_steps(session, incident.id)
        return incident

    def regrade(self, session: Session, incident_id: int, level: str, actor: str, now: datetime) -> Incident:
        """Change the severity: clocks the new level has start (from the first post or from
        now, as configured), clocks it does not have stop; nothing is deleted, so going down
        keeps the history, and going back up finds the old clocks as they were."""
        if level not in SEVERITIES:
            raise ActionError(f"级别「{level}」无效，应为 {' | '.join(SEVERITIES)}")
        incident = self.get(session, incident_id)
        if incident.severity == level:
            raise ActionError(f"事件 #{incident_id} 已是「{level}」")
        before = incident.severity
        incident.severity = level
        start = now if self.cfg.incidents.regrade_clocks_from == "regrade" else incident.started_at
        plans = {p.name: p for p in self.planner.plan(incident, level, start)}
        existing = {c.name: c for c in incident.clocks}
        for name, clock in existing.items():
            if clock.active != (name in plans):
                clock.active = name in plans
                clock_changed(session, clock, now)
        for name, plan in plans.items():
            if name not in existing:
                new_clock(session, incident.id, name, plan.started_at, plan.due_at, now)
        session.flush()
        session.refresh(incident, ["clocks"])
        after = [{"name": c.name, "due_at": c.due_at.isoformat(), "met_at": c.met_at.isoformat() if c.met_at else None}
                 for c in incident.clocks if c.active]
        event(session, incident, now, actor, "regraded", before=before, after=level, clocks=after)
        changed(incident, now)
        return incident

    def merge(self, session: Session, keep_id: int, other_id: int, actor: str, now: datetime) -> Incident:
        """One real event seen as two incidents: other's posts move into keep; other closes."""
        if keep_id == other_id:
            raise ActionError("不能把事件合并到它自己")
        keep, other = self.get(session, keep_id), self.get(session, other_id)
        moved = 0
        for row in session.scalars(select(IncidentPost).where(IncidentPost.incident_id == other.id)).all():
            if link(session, keep, session.get(Post, row.post_id), now):
                moved += 1
        keep.post_count += moved
        keep.terms = list(dict.fromkeys([*keep.terms, *other.terms]))
        keep.last_post_at = max(keep.last_post_at, other.last_post_at)
        if other.started_at < keep.started_at:
            self.planner.move_start(session, keep, other.started_at, now, None)
        carried = self._carry_record(session, keep, other, now)
        other.state, other.closed_at, other.merged_into = "closed", now, keep.id
        event(session, keep, now, actor, "merged", other=other.id, posts=moved, **carried)
        event(session, other, now, actor, "merged_into", into=keep.id)
        changed(keep, now)
        changed(other, now)
        return keep

    @staticmethod
    def _carry_record(session: Session, keep: Incident, other: Incident, now: datetime) -> dict:
        """What the officers did on the merged-away incident still counts: its acknowledgement
        and the clocks it answered (with their evidence) carry over to the kept one."""
        carried: dict = {}
        if keep.acked_at is None and other.acked_at is not None:
            keep.acked_at, keep.acked_by = other.acked_at, other.acked_by
            if keep.state == "open":
                keep.state = "acknowledged"
            carried["acknowledged_by"] = other.acked_by
        theirs = {c.name: c for c in other.clocks if c.active and c.met_at is not None}
        met = []
        for clock in keep.clocks:
            source = theirs.get(clock.name)
            if clock.active and clock.met_at is None and source is not None:
                clock.met_at, clock.met_by, clock.evidence = source.met_at, source.met_by, source.evidence
                clock_changed(session, clock, now)
                met.append(clock.name)
        if met:
            carried["clocks_met"] = met
        return carried

    def split(self, session: Session, incident_id: int, post_refs: list[str], actor: str, now: datetime) -> Incident:
        """Posts that are another event: they leave for a new incident with its own clocks."""
        source = self.get(session, incident_id)
        links = session.execute(
            select(IncidentPost, Post).join(Post, Post.id == IncidentPost.post_id).where(IncidentPost.incident_id == source.id)
        ).all()
        post_refs = [r[1:] if r.startswith("#") and r[1:].isdigit() else r for r in post_refs]  # `incidents show` prints #id
        chosen = [(row, post) for row, post in links if post.external_id in post_refs or str(post.id) in post_refs]
        missing = set(post_refs) - {p.external_id for _l, p in chosen} - {str(p.id) for _l, p in chosen}
        if missing:
            raise ActionError(f"事件 #{incident_id} 中没有帖文：{'、'.join(sorted(missing))}")
        if len(chosen) == len(links):
            raise ActionError("不能把全部帖文拆出：那是同一个事件")
        posts = [p for _l, p in chosen]
        seen = min(clock_start(p.published_at, p.fetched_at) for p in posts)
        first = min(posts, key=lambda p: clock_start(p.published_at, p.fetched_at))
        new = Incident(
            rule=source.rule, title=(first.title or first.body)[:200] or source.rule, severity=source.severity,
            category=source.category, department=source.department, state="open", started_at=seen,
            opened_at=now, last_post_at=max(p.fetched_at for p in posts), terms=list(source.terms),
            first_post_url=first.url, post_count=len(posts),
        )
        session.add(new)
        session.flush()
        for row, post in chosen:
            session.delete(row)
            session.add(IncidentPost(incident_id=new.id, post_id=post.id, added_at=now))
        source.post_count -= len(posts)
        self._recompute_first(session, source, [p for r, p in links if (r, p) not in chosen], now, actor)
        for plan in self.planner.plan(new, new.severity, seen):
            new_clock(session, new.id, plan.name, plan.started_at, plan.due_at, now)
        session.flush()
        session.refresh(new, ["clocks"])
        event(session, source, now, actor, "split_out", into=new.id, posts=[p.id for p in posts])
        event(session, new, now, actor, "split_from", source=source.id, posts=[p.id for p in posts])
        changed(new, now)
        return new

    def _recompute_first(self, session: Session, incident: Incident, remaining: list[Post], now: datetime, actor: str) -> None:
        """After posts leave: the title, link and start come from the first post that stayed;
        clocks not yet answered count from it."""
        first = min(remaining, key=lambda p: (clock_start(p.published_at, p.fetched_at), p.id))
        incident.title = (first.title or first.body)[:200] or incident.rule
        incident.first_post_url = first.url
        incident.last_post_at = max(clock_start(p.published_at, p.fetched_at) for p in remaining)
        start = clock_start(first.published_at, first.fetched_at)
        if start != incident.started_at:
            self.planner.move_start(session, incident, start, now, first, actor)
        changed(incident, now)
