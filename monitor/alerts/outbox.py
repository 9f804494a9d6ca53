"""The outbox's deliver stage (cf. Alertmanager's notify; the log it reads is alerts/log.py):

  deliver: claim a due outbox row, send it, record the attempt; on failure retry with
           back-off until delivered or given up; group what waits for a digest; fall back
           to another address when a target refuses.

A row is claimed (state 'sending') before it is sent. If the process dies during the send
the row is retried after a lease: an alert may then arrive twice, never not at all. If only
the record of a send fails (the database is locked or full), the Delivery stage keeps it and
records it before sending anything else: while the process lives, nothing is sent twice.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor import secrets
from monitor.alerts.channels import Channels, is_permanent
from monitor.alerts.log import Alert, fire
from monitor.clock import Clock, backoff, show, show_due, time_left
from monitor.config import AlertsConfig
from monitor.store.faults import is_transient
from monitor.store.models import DeliveryAttempt, Notification, Outbox, ResponseClock

log = logging.getLogger(__name__)

SENDING_LEASE = timedelta(minutes=5)
SEND_WORKERS = 8  # targets sent to at once


def retry_delay(attempts: int, cfg: AlertsConfig) -> timedelta:
    return backoff(cfg.retry_base, attempts, cfg.retry_max)


@dataclass
class _Unrecorded:
    """A send whose outcome could not be written yet (the database was locked or full)."""

    outbox_ids: list[int]
    ok: bool
    error: str | None
    title: str
    state_ok: str


class Delivery:
    """The deliver stage of one process. What was sent but could not be recorded is kept
    here and recorded before anything else is sent: while the process lives, a failed
    record never turns into a second send (those rows are never claimed again)."""

    def __init__(self, sessions: sessionmaker[Session], channels: Channels, clock: Clock, cfg: AlertsConfig,
                 ops_tags: tuple[str, ...] = (), links=None):
        self.sessions, self.channels, self.clock, self.cfg, self.ops_tags = sessions, channels, clock, cfg, ops_tags
        self.links = links  # monitor.alerts.links.Links: each recipient's own one-tap link goes in at send
        self.unrecorded: list[_Unrecorded] = []
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """At shutdown: no new sends; those under way end within their socket timeouts."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def flush(self) -> None:
        """Record what waits to be recorded; raises while the database still refuses."""
        while self.unrecorded:
            item = self.unrecorded[0]
            _record(self.sessions, self.channels, self.clock, self.cfg, item.outbox_ids, item.ok, item.error,
                    item.title, self.ops_tags, item.state_ok)
            self.unrecorded.pop(0)

    def _recorded(self, ids: list[int], ok: bool, error: str | None, title: str, state_ok: str = "sent") -> None:
        try:
            _record(self.sessions, self.channels, self.clock, self.cfg, ids, ok, error, title, self.ops_tags, state_ok)
        except Exception as e:
            if not is_transient(e):
                raise
            self.unrecorded.append(_Unrecorded(ids, ok, error, title, state_ok))
            raise

    def deliver_due(self, limit: int = 100, stop: threading.Event | None = None) -> int:
        """Send what is due now; returns how many alerts were delivered. `stop` is looked at
        between sends, so a shutdown never waits behind a long queue."""
        self.flush()
        now = self.clock.now()
        waiting = {i for item in self.unrecorded for i in item.outbox_ids}
        with self.sessions() as session:
            due = session.execute(
                select(Outbox.id, Outbox.state, Outbox.target, Notification.held_until.is_not(None).label("fold"), Notification.title,
                       Notification.kind, Notification.severity)
                .join(Notification, Notification.id == Outbox.notification_id)
                .where(
                    or_(
                        (Outbox.state == "pending") & (Outbox.next_attempt_at <= now),
                        (Outbox.state == "sending") & (Outbox.next_attempt_at <= now - SENDING_LEASE),
                    )
                )
                .order_by(_urgency(), Outbox.next_attempt_at, Outbox.id)  # never behind a queue of reminders
                .limit(limit)
            ).all()
        due = [r for r in due if r.id not in waiting]
        by_target: dict[str, list] = {}
        for row in due:
            by_target.setdefault(row.target, []).append(row)
        if len(by_target) <= 1:
            return sum(self._deliver_target(target, rows, stop) for target, rows in by_target.items())
        # Fan out: each target on its own worker, so a slow or silent one holds up no other;
        # each send is bounded by the channels' socket timeouts ([alerts] send_timeout).
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=SEND_WORKERS, thread_name_prefix="deliver")
        futures = [self._pool.submit(self._deliver_target, target, rows, stop) for target, rows in by_target.items()]
        return sum(f.result() for f in futures)

    def _deliver_target(self, target: str, rows, stop: threading.Event | None) -> int:
        """One target's due rows, the most urgent first: 特别重大 alone, then digests, then the rest."""
        # 特别重大 is never folded into a storm digest: it pages on its own, before anything else.
        delivered = self._deliver_each([r for r in rows if not r.fold and _top_level(r)], stop)
        if stop is not None and stop.is_set():
            return delivered
        # over the alert budget, or repeats: a digest however few
        opened = [r for r in rows if r.fold and r.kind == "opened"]
        if opened:
            delivered += self._deliver_digest(target, opened, "新舆情事件汇总", "起新事件（合并发送）")
        repeats = [r for r in rows if r.fold and r.kind != "opened"]
        if repeats:
            delivered += self._deliver_digest(target, repeats, "提醒与升级汇总", "条时限提醒与升级（合并发送）")
        batch = [r for r in rows if not r.fold and not _top_level(r)]
        if self.cfg.storm_threshold and len(batch) >= self.cfg.storm_threshold:
            return delivered + self._deliver_digest(target, batch)
        return delivered + self._deliver_each(batch, stop)

    def _deliver_each(self, rows, stop: threading.Event | None) -> int:
        """Each row on its own, in order, until a shutdown asks to stop."""
        delivered = 0
        for row in rows:
            if stop is not None and stop.is_set():
                break
            delivered += self._deliver_one(row.id, row.state)
        return delivered

    def _deliver_one(self, outbox_id: int, state: str) -> int:
        now = self.clock.now()
        with self.sessions() as session:
            if not _claim(session, outbox_id, state, now):
                session.rollback()
                return 0
            session.commit()
            row = session.get(Outbox, outbox_id)
            note = session.get(Notification, row.notification_id)
            title, body, markdown = note.title, note.body, note.body_md
            if self.links is not None:
                body, markdown = (self.links.fill(t, outbox_id, note.incident_id) for t in (body, markdown))
        ok, error = self.channels.send(row.target, title, body, markdown=markdown)
        self._recorded([outbox_id], ok, error, title)
        return 1 if ok else 0

    def _clock_notes(self, outbox_ids: list[int], now: datetime) -> dict[int, str]:
        """Each digest line's clock and what is left of it now (the title names incident and
        level), in one query for the whole digest."""
        with self.sessions() as session:
            found = session.execute(
                select(Outbox.id, Notification.clock, ResponseClock.due_at, ResponseClock.met_at)
                .join(Notification, Notification.id == Outbox.notification_id)
                .join(ResponseClock, (ResponseClock.incident_id == Notification.incident_id) & (ResponseClock.name == Notification.clock))
                .where(Outbox.id.in_(outbox_ids))
            ).all()
        return {outbox_id: f"（{clock}：{show_due(due)} 截止，{'已完成' if met is not None else time_left(due, now)}）"
                for outbox_id, clock, due, met in found}

    def _deliver_digest(self, target: str, rows, name: str = "告警汇总", unit: str = "条告警") -> int:
        """Many alerts due at once for one target: one message listing them all."""
        now = self.clock.now()
        claimed = []
        with self.sessions() as session:
            for row in rows:
                if _claim(session, row.id, row.state, now):
                    claimed.append(row)
            session.commit()
        if not claimed:
            return 0
        notes = self._clock_notes([row.id for row in claimed], now)
        lines = [f"{i}. {row.title}{notes.get(row.id, '')}" for i, row in enumerate(claimed, start=1)]
        title = f"【{name}】{len(claimed)} {unit}（{show(now)}）"
        body = "\n".join([*lines, "", "逐条详情：monitor alerts list；处置：monitor incidents list"])
        ok, error = self.channels.send(target, title, body)
        self._recorded([r.id for r in claimed], ok, error, title, state_ok="digest")
        return len(claimed) if ok else 0


def _urgency():
    """Sort key of a due delivery: 特别重大, then new incidents and escalations of 重大, then the
    rest (reminders, digests, system alerts) — each group oldest first."""
    return case(
        (Notification.severity == "特别重大", 0),
        ((Notification.severity == "重大") & Notification.kind.in_(("opened", "escalation")), 1),
        else_=2,
    )


def _top_level(row) -> bool:
    # rows fired before notifications.severity existed say it only in their title
    return row.severity == "特别重大" or (row.severity is None and row.title.startswith("【特别重大】"))


def deliver_due(
    sessions: sessionmaker[Session],
    channels: Channels,
    clock: Clock,
    cfg: AlertsConfig,
    limit: int = 100,
    ops_tags: tuple[str, ...] = (),
    links=None,
) -> int:
    """One delivery round with a stage of its own (tests, the CLI); the daemon keeps one."""
    return Delivery(sessions, channels, clock, cfg, ops_tags, links).deliver_due(limit)


def _claim(session: Session, outbox_id: int, state: str, now: datetime) -> bool:
    """Compare-and-set, so two instances never send the same row."""
    claimed = session.execute(
        update(Outbox)
        .where(Outbox.id == outbox_id, Outbox.state == state)
        .values(state="sending", attempts=Outbox.attempts + 1, next_attempt_at=now)
    ).rowcount
    return claimed == 1


def _record(sessions, channels, clock, cfg: AlertsConfig, outbox_ids: list[int], ok: bool, error: str | None,
            title: str, ops_tags=(), state_ok: str = "sent") -> None:
    now = clock.now()
    with sessions() as session:
        for outbox_id in outbox_ids:
            row = session.get(Outbox, outbox_id)
            session.add(DeliveryAttempt(outbox_id=outbox_id, at=now, ok=ok, error=error))
            row.last_error = error
            if ok:
                row.state, row.sent_at = state_ok, now
            elif is_permanent(error):
                row.state = "failed"  # the same token fails the same way tomorrow: no retries
                log.error("告警投递失败且不再重试 %s：%s；%s", row.target_display, title, error)
                if cfg.fallback_tags:
                    _fall_back(session, channels, row, now, cfg)
            elif now - row.created_at >= cfg.give_up_after:
                row.state = "failed"
                log.error("告警投递放弃（已尝试 %d 次）%s：%s；最后错误：%s", row.attempts, row.target_display, title, error)
            else:
                row.state, row.next_attempt_at = "pending", now + retry_delay(row.attempts, cfg)
                log.warning("告警投递失败（第 %d 次，将重试）%s：%s", row.attempts, row.target_display, secrets.redact(error or ""))
                if row.attempts == cfg.fallback_after and cfg.fallback_tags:
                    _fall_back(session, channels, row, now, cfg)
        if ok:
            log.info("告警已送达 %s：%s", session.get(Outbox, outbox_ids[0]).target_display, title)
        session.flush()
        if not ok and ops_tags:
            first = session.get(Outbox, outbox_ids[0])
            if is_permanent(error):
                _channel_rejected(session, channels, first, now, ops_tags)
            else:
                _channel_failing(session, channels, first, now, cfg, ops_tags)
        session.commit()


def _fall_back(session: Session, channels: Channels, row: Outbox, now: datetime, cfg: AlertsConfig) -> None:
    """The channel keeps failing (or refuses): the same alert also goes to the fallback targets,
    once each — unless another address of the same person or tier already has it."""
    siblings = set(session.scalars(
        select(Outbox.state).where(Outbox.notification_id == row.notification_id, Outbox.tag == row.tag, Outbox.id != row.id)
    ))
    if siblings & {"sent", "digest"}:
        log.info("%s 失败，但同一告警已由 %s 的其他地址送达，不启用备用地址", row.target_display, row.tag)
        return
    if siblings & {"pending", "sending"}:
        return  # another address may still get it; if it fails too, its own failure falls back
    for tag in cfg.fallback_tags:
        for target in channels.targets(tag):
            exists = session.scalar(
                select(Outbox.id).where(Outbox.notification_id == row.notification_id, Outbox.target == target.id)
            )
            if exists is None:
                session.add(Outbox(notification_id=row.notification_id, target=target.id, target_display=target.display,
                                   tag=tag, state="pending", created_at=now, next_attempt_at=now))
                log.warning("%s 连续失败 %d 次，改发备用目标 %s", row.target_display, row.attempts, target.display)


def _channel_rejected(session: Session, channels: Channels, row: Outbox, now: datetime, ops_tags) -> None:
    """A target that refuses (bad token or URL): ops hear at once, once a day per target."""
    title = f"【告警通道异常】{row.target_display} 拒绝接收（令牌或地址无效）"
    body = (f"通道：{row.target_display}（标签 {row.tag}）\n时间：{show(now)}\n错误：{row.last_error or '—'}\n"
            "这类错误不会自行恢复，发往该地址的告警不再重试：请更正 apprise 配置中的地址或令牌。受影响的告警：monitor alerts list --failed")
    key = f"channel:{row.target[:16]}:rejected:{show(now)[:10]}"
    fire(session, Alert(key, None, None, "channel_failing", 0, tuple(ops_tags), now, title, body), now, channels)


def _channel_failing(session: Session, channels: Channels, row: Outbox, now: datetime, cfg: AlertsConfig, ops_tags) -> None:
    """`channel_failures` failed attempts in a row on one target: one ops alert per episode."""
    recent = session.execute(
        select(DeliveryAttempt.ok, DeliveryAttempt.at)
        .join(Outbox, Outbox.id == DeliveryAttempt.outbox_id)
        .where(Outbox.target == row.target)
        .order_by(DeliveryAttempt.id.desc())
        .limit(cfg.channel_failures + 1000)
    ).all()
    streak = []
    for attempt_ok, at in recent:
        if attempt_ok:
            break
        streak.append(at)
    if len(streak) < cfg.channel_failures:
        return
    since = streak[-1]
    title = f"【告警通道异常】{row.target_display} 已连续 {len(streak)} 次发送失败"
    body = (f"通道：{row.target_display}（标签 {row.tag}）\n首次失败：{show(since)}\n最近错误：{row.last_error or '—'}\n"
            f"受影响的告警：monitor alerts list --failed")
    key = f"channel:{row.target[:16]}:failing:{since.isoformat()}"
    fire(session, Alert(key, None, None, "channel_failing", 0, tuple(ops_tags), now, title, body), now, channels)
