"""The notification log: `fire` inserts an alert's key (unique: a step fires once, across
restarts and across instances) and, in the same transaction, one outbox row per target.
What was logged is what delivery (outbox.py) sends, exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.alerts.channels import Channels
from monitor.store.models import Notification, Outbox

log = logging.getLogger(__name__)


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
    markdown: str | None = None  # for channels that render it
    severity: str | None = None  # the incident's level; None for alerts about the system


def fire(
    session: Session,
    alert: Alert,
    now: datetime,
    channels: Channels | None,
    disposition: str = "sent",
    fold_until: datetime | None = None,
) -> Notification | None:
    """Log the alert and queue its deliveries; None if its key was logged before.
    With `fold_until`, the deliveries wait until then and go out inside a digest."""
    row = Notification(
        key=alert.key,
        incident_id=alert.incident_id,
        clock=alert.clock,
        kind=alert.kind,
        tier=alert.tier,
        tags=list(alert.tags),
        scheduled_at=alert.scheduled_at,
        fired_at=now,
        disposition=disposition,
        title=alert.title,
        body=alert.body,
        body_md=alert.markdown,
        held_until=fold_until,
        severity=alert.severity,
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
                        created_at=now,
                        next_attempt_at=fold_until or now,
                    )
                )
        if not seen:
            log.error("告警 %s 没有任何投递目标（标签 %s 在告警通道配置中不存在）", alert.key, ",".join(alert.tags))
    return row
