"""The escalator: which tier hears what and when (policy, recipients), the tick that fires
every step due once, and when a step waits for a digest instead of going alone. The steps
themselves are computed by the pure escalation module; the alerts package renders them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.alerts.notices import Notices
from monitor.alerts.roster import recipients
from monitor.config import MainConfig
from monitor.incidents import views
from monitor.incidents.escalation import Policy, collapse, due_steps, next_step_at
from monitor.store.models import Incident, Notification


def next_hour(now: datetime) -> datetime:
    """When an hourly digest goes: the next full hour."""
    return next_boundary(now, timedelta(hours=1))


def next_boundary(now: datetime, every: timedelta) -> datetime:
    """The first multiple of `every` after now, counted from midnight (the same in UTC and
    Beijing time for whole hours and their fractions)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((now - midnight) // every + 1) * every


class Escalator:
    def __init__(self, cfg: MainConfig, notices: Notices):
        self.cfg = cfg
        self.notices = notices
        self.tier_names = [t.name for t in cfg.tier]
        self._last_step: dict[tuple[str, int], datetime] = {}  # (rule, tier) -> a step last sent on its own

    def carry(self, before: Escalator) -> None:
        """After a reload: which rules' steps went alone lately (group_interval) still holds."""
        self._last_step = before._last_step

    def policy_for(self, severity: str) -> Policy:
        esc = self.cfg.escalation
        own = esc.severity.get(severity)

        def pick(name, default):
            value = getattr(own, name) if own is not None else None
            return default if value is None else value

        first = self.tier_names.index(own.first_tier) if own is not None and own.first_tier else 0
        # Quiet hours (README "夜间暂缓提醒"): reminders of 较大 and 一般 by default; 重大 only if its
        # policy says quiet = true; 特别重大 never, whatever the settings say.
        quiet = esc.quiet is not None and severity != "特别重大" and pick("quiet", severity not in ("特别重大", "重大"))
        return Policy(
            tuple(pick("reminders", esc.reminders)), pick("repeat_every", esc.repeat_every), len(self.cfg.tier),
            first, pick("ack_timeout", esc.ack_timeout), (esc.quiet.start, esc.quiet.end) if quiet else None,
        )

    def recipients(self, tier: int, incident: Incident, now: datetime) -> tuple[str, ...]:
        return recipients(self.cfg, tier, incident.department, now)

    def first_tier(self, incident: Incident, now: datetime) -> tuple[int, tuple[str, ...]]:
        """The tier an incident's news goes to first, and its addresses now."""
        first = self.policy_for(incident.severity).first_tier
        return first, self.recipients(first, incident, now)

    def tick(self, session: Session, now: datetime, limit: int = 500) -> int:
        """Fire every step due by now, once; returns how many alerts were sent."""
        due = session.scalars(
            select(Incident)
            .where(Incident.next_step_at.is_not(None), Incident.next_step_at <= now)
            .order_by(Incident.next_step_at)
            .limit(limit)
        ).all()
        sent = 0
        for incident in due:
            sent += self._fire_due(session, incident, now)
            self.reschedule(incident, now)
        return sent

    def _fire_due(self, session: Session, incident: Incident, now: datetime) -> int:
        clocks = views.clock_states(incident)
        steps = due_steps(views.state(incident), clocks, self.policy_for(incident.severity), now)
        if not steps:
            return 0
        logged = dict(
            session.execute(select(Notification.key, Notification.tier).where(Notification.incident_id == incident.id)).all()
        )
        called_in = max((tier for key, tier in logged.items() if ":ack:" in key), default=-1)
        send, superseded = collapse([s for s in steps if s.key not in logged], called_in)
        view = views.view(incident)
        for step in superseded:
            self.notices.step(session, view, clocks, step, self.recipients(step.tier, incident, now), now, "superseded",
                              self._fold_step(session, incident, step, now))
        for step in send:
            self.notices.step(session, view, clocks, step, self.recipients(step.tier, incident, now), now,
                              self.notices.alerting.disposition, self._fold_step(session, incident, step, now))
        return len(send)

    def opened(self, session: Session, incident: Incident, now: datetime) -> None:
        tier, tags = self.first_tier(incident, now)
        fold = self._over_budget(session, incident, now) or self._with_related(incident, now)
        self.notices.opened(session, views.view(incident), views.clock_states(incident), tier, tags, now, fold)

    def _fold_step(self, session: Session, incident: Incident, step, now: datetime) -> datetime | None:
        """When a step waits for a digest, or None to send it now. The next full hour: a repeat to
        a tier that has had this clock's escalation, and every step of an incident whose 新舆情事件
        went by digest (past the rule's budget) or that is another story of an open incident's
        event. The next group boundary: a step of a rule whose last step to this tier went on its
        own less than group_interval ago (kept in memory: after a restart the first goes alone)."""
        alerts = self.cfg.alerts
        if step.repeat and alerts.fold_repeats:
            return next_hour(now)  # the tier hears "still not answered" once an hour for all such clocks
        if alerts.new_incidents_per_hour and session.scalar(
            select(Notification.held_until).where(Notification.key == f"{incident.id}:opened")
        ) is not None:
            return next_hour(now)
        if incident.related_to is not None and alerts.group_interval:
            return next_hour(now)  # the event's own incident has had these on time
        if alerts.group_interval:
            last = self._last_step.get((incident.rule, step.tier))
            if last is not None and now - last < alerts.group_interval:
                return next_boundary(now, alerts.group_interval)
            self._last_step[(incident.rule, step.tier)] = now
        return None

    def _with_related(self, incident: Incident, now: datetime) -> datetime | None:
        """Another story of an open incident's event: its 新舆情事件 goes with the next digest
        (group_interval), its reminders and escalations with the hourly one, so one earthquake
        pages a few times an hour, not once per rumour."""
        gi = self.cfg.alerts.group_interval
        return next_boundary(now, gi) if incident.related_to is not None and gi else None

    def _over_budget(self, session: Session, incident: Incident, now: datetime) -> datetime | None:
        """When a rule opened more than [alerts] new_incidents_per_hour incidents in the last
        hour, the next full hour (its alert then goes in a digest); else None."""
        budget = self.cfg.alerts.new_incidents_per_hour
        if not budget or incident.severity == "特别重大":
            return None
        recent = session.scalar(
            select(func.count()).select_from(Incident)
            .where(Incident.rule == incident.rule, Incident.opened_at > now - timedelta(hours=1))
        )
        return None if recent <= budget else next_hour(now)

    def reschedule(self, incident: Incident, now: datetime) -> None:
        """After a tick: the next step strictly after now (everything due was just fired)."""
        nxt = next_step_at(views.state(incident), views.clock_states(incident), self.policy_for(incident.severity), now)
        incident.next_step_at = nxt
