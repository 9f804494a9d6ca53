"""The notification log and the outbox, as small stages (cf. Alertmanager's notify):

  fire:    insert the step's key into the log (unique: a step fires once, across restarts
           and across instances) and, in the same transaction, one outbox row per target;
  deliver: claim a due outbox row, send it, record the attempt; on failure retry with
           back-off until delivered or given up.

A row is claimed (state 'sending') before it is sent. If the process dies during the send
the row is retried after a lease: an alert may then arrive twice, never not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor import secrets
from monitor.alerts.channels import Channels
from monitor.clock import Clock, backoff, from_db, to_db
from monitor.config import AlertsConfig
from monitor.store.models import DeliveryAttempt, Notification, Outbox

log = logging.getLogger(__name__)

SENDING_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Alert:
    key: str
    incident_id: int
    clock: str | None
    kind: str  # opened | reminder | escalation
    tier: int
    tags: tuple[str, ...]
    scheduled_at: datetime
    title: str
    body: str


def fire(
    session: Session,
    alert: Alert,
    now: datetime,
    channels: Channels | None,
    disposition: str = "sent",
) -> Notification | None:
    """Log the alert and queue its deliveries; None if its key was logged before."""
    row = Notification(
        key=alert.key,
        incident_id=alert.incident_id,
        clock=alert.clock,
        kind=alert.kind,
        tier=alert.tier,
        tags=list(alert.tags),
        scheduled_at=to_db(alert.scheduled_at),
        fired_at=to_db(now),
        disposition=disposition,
        title=alert.title,
        body=alert.body,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    if disposition == "sent" and channels is not None:
        seen: set[str] = set()
        for tag in alert.tags:
            for target in channels.targets(tag):
                if target.id in seen:
                    continue
                seen.add(target.id)
                session.add(
                    Outbox(
                        notification_id=row.id,
                        target=target.id,
                        target_display=target.display,
                        tag=tag,
                        state="pending",
                        created_at=to_db(now),
                        next_attempt_at=to_db(now),
                    )
                )
        if not seen:
            log.error("告警 %s 没有任何投递目标（标签 %s 在告警通道配置中不存在）", alert.key, ",".join(alert.tags))
    return row


def retry_delay(attempts: int, cfg: AlertsConfig) -> timedelta:
    return backoff(cfg.retry_base, attempts, cfg.retry_max)


def deliver_due(
    sessions: sessionmaker[Session],
    channels: Channels,
    clock: Clock,
    cfg: AlertsConfig,
    limit: int = 100,
) -> int:
    """Send what is due now; returns how many were delivered."""
    now = clock.now()
    with sessions() as session:
        due = session.execute(
            select(Outbox.id, Outbox.state)
            .where(
                or_(
                    (Outbox.state == "pending") & (Outbox.next_attempt_at <= to_db(now)),
                    (Outbox.state == "sending") & (Outbox.next_attempt_at <= to_db(now - SENDING_LEASE)),
                )
            )
            .order_by(Outbox.next_attempt_at, Outbox.id)
            .limit(limit)
        ).all()
    delivered = 0
    for outbox_id, state in due:
        delivered += _deliver_one(sessions, channels, clock, cfg, outbox_id, state)
    return delivered


def _deliver_one(sessions, channels: Channels, clock: Clock, cfg: AlertsConfig, outbox_id: int, state: str) -> int:
    now = clock.now()
    with sessions() as session:
        # Claim: compare-and-set, so two instances never send the same row.
        claimed = session.execute(
            update(Outbox)
            .where(Outbox.id == outbox_id, Outbox.state == state)
            .values(state="sending", attempts=Outbox.attempts + 1, next_attempt_at=to_db(now))
        ).rowcount
        session.commit()
        if claimed != 1:
            return 0
        row = session.get(Outbox, outbox_id)
        note = session.get(Notification, row.notification_id)
        title, body, attempts, created_at = note.title, note.body, row.attempts, from_db(row.created_at)

    ok, error = channels.send(row.target, title, body)

    now = clock.now()
    with sessions() as session:
        session.add(DeliveryAttempt(outbox_id=outbox_id, at=to_db(now), ok=ok, error=error))
        values: dict = {"last_error": error}
        if ok:
            values.update(state="sent", sent_at=to_db(now))
            log.info("告警已送达 %s：%s", row.target_display, title)
        elif now - created_at >= cfg.give_up_after:
            values.update(state="failed")
            log.error("告警投递放弃（已尝试 %d 次）%s：%s；最后错误：%s", attempts, row.target_display, title, error)
        else:
            values.update(state="pending", next_attempt_at=to_db(now + retry_delay(attempts, cfg)))
            log.warning("告警投递失败（第 %d 次，将重试）%s：%s", attempts, row.target_display, secrets.redact(error or ""))
        session.execute(update(Outbox).where(Outbox.id == outbox_id).values(**values))
        session.commit()
    return 1 if ok else 0
