"""Incidents in the store: assigning matched posts, officer actions, the escalation tick.

Every change is an Event row with actor and time; the timeline is the audit trail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, lazyload

from monitor.alerts.channels import Channels
from monitor.alerts.outbox import Alert, fire
from monitor.alerts.render import IncidentView, render_all, render_progress, render_reply
from monitor.alerts.templates import compile_templates
from monitor.clock import from_db, show, show_delta, to_db
from monitor.config import MainConfig
from monitor.incidents.clocks import clock_start, plan_clocks
from monitor.incidents.workdays import WorkCalendar
from monitor.alerts.roster import recipients
from monitor.incidents.escalation import ClockState, IncidentState, Policy, collapse, due_steps, next_step_at
from monitor.matching.matcher import Match, post_text
from monitor.severity import SEVERITIES, rank
from monitor.incidents.cluster import Clusterer
from monitor.incidents.heat import Heat, measure
from monitor.store.models import Clock, Event, Incident, IncidentPost, Notification, Outbox, Post, Source

log = logging.getLogger(__name__)

SYSTEM = "system"
_RECENT = "monitor.recent_incidents"  # session.info key: rule -> incident seen in this transaction
_ACTIONS_SEEN = "monitor.actions_seen"  # session.info key: officers' merges and splits looked for
_RESHAPING = ("merged", "split_out")  # officer actions that move posts between incidents


def _next_hour(now: datetime) -> datetime:
    """When an hourly digest goes: the next full hour."""
    return _next_boundary(now, timedelta(hours=1))


def _next_boundary(now: datetime, every: timedelta) -> datetime:
    """The first multiple of `every` after now, counted from midnight (the same in UTC and
    Beijing time for whole hours and their fractions)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((now - midnight) // every + 1) * every


def _drop_held_steps(session: Session, incident_id: int, clock: str | None = None) -> None:
    """Reminders and escalations waiting for the hourly digest: once answered or closed, not sent."""
    held = select(Notification.id).where(
        Notification.incident_id == incident_id, Notification.kind != "opened", Notification.held_until.is_not(None),
        *([Notification.clock == clock] if clock else []),
    )
    session.execute(
        update(Outbox).where(Outbox.notification_id.in_(held), Outbox.state == "pending").values(state="dropped")
        .execution_options(synchronize_session=False)
    )


def _round(name: str) -> tuple[str, int]:
    """("权威回应", 2) for "权威回应（第2轮）": a clock started again for a new wave of posts."""
    if name.endswith("轮）") and "（第" in name:
        base, _, number = name[:-2].rpartition("（第")
        if number.isdigit():
            return base, int(number)
    return name, 1


class ActionError(Exception):
    """An officer action that cannot be done; the message says why, in Chinese."""


@dataclass
class Alerting:
    """How fired alerts leave: through channels (daemon), or only into the log (dry run)."""

    channels: Channels | None
    dry_run: bool = False

    @property
    def disposition(self) -> str:
        return "dry_run" if self.dry_run else "sent"


class Incidents:
    def __init__(self, cfg: MainConfig, alerting: Alerting):
        self.cfg = cfg
        self.alerting = alerting
        self.tier_names = [t.name for t in cfg.tier]
        self.templates = compile_templates(cfg.template_overrides())
        self.calendar = WorkCalendar(cfg.calendar.holidays, cfg.calendar.workdays)
        self._clusterers: dict[str, Clusterer] = {}
        self._last_action = 0  # the last merge or split event the clusterers know of
        self._last_step: dict[tuple[str, int], datetime] = {}  # (rule, tier) -> a step last sent on its own

    def reconfigure(self, cfg: MainConfig, alerting: Alerting) -> None:
        """A reloaded configuration: roster, tiers, policies, clocks, templates, calendar. The
        content index is rebuilt only if how incidents are grouped changed."""
        if cfg.incidents != self.cfg.incidents:
            self._clusterers.clear()
        self.cfg, self.alerting = cfg, alerting
        self.tier_names = [t.name for t in cfg.tier]
        self.templates = compile_templates(cfg.template_overrides())
        self.calendar = WorkCalendar(cfg.calendar.holidays, cfg.calendar.workdays)

    def _text(self, title: str | None, body: str | None) -> str:
        """What clustering reads of a post: as much as matching does ([matching] max_chars)."""
        n = self.cfg.matching.max_chars or None
        return post_text((title or "")[:n], (body or "")[:n])

    def _plan(self, incident: Incident, severity: str, start: datetime):
        return plan_clocks(severity, self.cfg.clock, start, incident.rule, incident.category, self.calendar)

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

    @staticmethod
    def state(incident: Incident) -> IncidentState:
        return IncidentState(incident.id, incident.state == "closed", from_db(incident.opened_at), from_db(incident.acked_at))

    def recipients(self, tier: int, incident: Incident, now: datetime) -> tuple[str, ...]:
        return recipients(self.cfg, tier, incident.department, now)

    # ---- reading -------------------------------------------------------------------

    @staticmethod
    def clock_states(incident: Incident) -> list[ClockState]:
        return [
            ClockState(c.name, from_db(c.started_at), from_db(c.due_at), from_db(c.met_at))
            for c in incident.clocks
            if c.active
        ]

    @staticmethod
    def view(incident: Incident) -> IncidentView:
        return IncidentView(
            id=incident.id,
            rule=incident.rule,
            title=incident.title,
            severity=incident.severity,
            category=incident.category,
            department=incident.department,
            terms=tuple(incident.terms or ()),
            first_post_url=incident.first_post_url,
            post_count=incident.post_count,
            opened_at=from_db(incident.opened_at),
            acked_at=from_db(incident.acked_at),
        )

    # ---- posts ---------------------------------------------------------------------

    def place(self, session: Session, post: Post, matches: list[Match], now: datetime, joined: list[Incident]) -> None:
        """Assign a post that matched: in rule mode to the incident of every rule it matched; in
        event mode to one incident only, as an officer counts events, not rules: the incident
        it reposts into (`joined`), else the incident a matched rule's clustering finds for it
        (the most severe rule's first), else a new incident of the most severe rule it matched
        (in file order between equals). The other rules' matches stay in its explanation."""
        by_event = self.cfg.incidents.clustering == "event"
        if not by_event or joined or len(matches) < 2:
            for match in matches:
                if not (by_event and joined) or any(i.rule == match.rule.name for i in joined):
                    self.assign(session, post, match, now)
            return
        ordered = sorted(matches, key=lambda m: rank(m.rule.severity))  # stable: file order between equals
        seen_at = clock_start(from_db(post.published_at), from_db(post.fetched_at))
        described = self._clusterer(session, ordered[0].rule.name).describe(self._text(post.title, post.body))
        for match in ordered:
            found = self._found(session, self._clusterer(session, match.rule.name), post, seen_at, described)
            if found is not None:
                self.assign(session, post, match, now, described, found)
                return
        self.assign(session, post, ordered[0], now, described, None)

    def _found(self, session: Session, clusterer: Clusterer, post: Post, seen_at: datetime, described) -> Incident | None:
        about, sketch = described
        key = clusterer.find(seen_at, about, post.repost_of, sketch)
        incident = session.get(Incident, key, options=[lazyload(Incident.clocks)]) if key is not None else None
        if incident is not None and incident.state == "closed":
            clusterer.forget(key)
            return None
        return incident

    def assign(self, session: Session, post: Post, match: Match, now: datetime, described=None,
               found: Incident | None | bool = False) -> Incident | None:
        """Join the open incident of the rule seen within the window, or open one. `described`
        and `found` are what `place` already knows: the post's features and the incident the
        rule's clustering found for it (False: not asked yet)."""
        rule = match.rule
        seen_at = clock_start(from_db(post.published_at), from_db(post.fetched_at))
        if seen_at < now - self.cfg.incidents.max_post_age:
            # An old post (a first poll of a long feed, a board's archive) is stored and matched,
            # but neither pages anyone nor joins a current incident: joining would move its
            # clocks back to a long-past day and make it overdue at once.
            log.info("帖文 %s 发布于 %s，早于 %s 前，不计入事件", post.external_id, show(seen_at), show_delta(self.cfg.incidents.max_post_age))
            return None
        about = sketch = None
        if self.cfg.incidents.clustering == "event":
            clusterer = self._clusterer(session, rule.name)
            about, sketch = described or clusterer.describe(self._text(post.title, post.body))
            incident = self._found(session, clusterer, post, seen_at, (about, sketch)) if found is False else found
        else:
            incident = self._open_incident(session, rule.name, seen_at)
        placed = self._placed(session, post, rule.name) if post.repost_of else None
        if placed is not None:
            # Already in an open incident of this rule through the post it reposts: that is
            # its incident (a post is in one incident per rule), whatever clustering proposes.
            incident = placed
        if incident is not None:
            if about is not None:
                clusterer.remember(post.external_id, seen_at, about, incident.id, sketch)
            if placed is None:
                if not self._link(session, incident, post, now):
                    return incident
                incident.post_count += 1
                incident.last_post_at = max(incident.last_post_at, to_db(seen_at))
                self._event(session, incident, now, SYSTEM, "post_added", post=post.id, terms=match.terms)
            incident.terms = list(dict.fromkeys([*incident.terms, *match.terms]))
            if to_db(seen_at) < incident.started_at:
                self._move_start(session, incident, seen_at, now, post)
            self._new_wave(session, incident, post, seen_at, now)
            if self.cfg.heat:
                self._check_heat(session, incident, now)
            return incident

        incident = Incident(
            rule=rule.name,
            related_to=self._related(session, clusterer, seen_at, about) if about is not None else None,
            title=(post.title or post.body)[:200] or rule.name,
            severity=rule.severity,
            category=rule.category,
            department=rule.department,
            state="open",
            started_at=to_db(seen_at),
            opened_at=to_db(now),
            last_post_at=to_db(seen_at),
            terms=list(match.terms),
            first_post_url=post.url,
            post_count=1,
        )
        session.add(incident)
        session.flush()
        session.info.setdefault(_RECENT, {})[rule.name] = incident
        self._link(session, incident, post, now)
        if about is not None:
            clusterer.remember(post.external_id, seen_at, about, incident.id, sketch)
        for plan in self._plan(incident, incident.severity, seen_at):
            session.add(
                Clock(incident_id=incident.id, name=plan.name, started_at=to_db(plan.started_at), due_at=to_db(plan.due_at))
            )
        session.flush()
        session.refresh(incident, ["clocks"])
        self._event(session, incident, now, SYSTEM, "opened", post=post.id, rule=rule.name, severity=rule.severity)
        if self.cfg.alerts.notify_on_open:
            self._fire_opened(session, incident, now)
        self._changed(incident, now)
        log.info("新建事件 #%d【%s】%s", incident.id, incident.severity, incident.title)
        return incident

    @staticmethod
    def _related(session: Session, clusterer: Clusterer, seen_at: datetime, about) -> int | None:
        """The open incident whose event a new incident is another story of (its root, if that
        one is itself related), or None."""
        key = clusterer.related(seen_at, about)
        other = session.get(Incident, key) if key is not None else None
        if other is None or other.state == "closed":
            return None
        return other.related_to or other.id

    @staticmethod
    def _placed(session: Session, post: Post, rule: str) -> Incident | None:
        return session.scalars(
            select(Incident).join(IncidentPost, IncidentPost.incident_id == Incident.id)
            .where(IncidentPost.post_id == post.id, Incident.rule == rule, Incident.state != "closed")
        ).first()

    def _new_wave(self, session: Session, incident: Incident, post: Post, seen_at: datetime, now: datetime) -> None:
        """A post joining an incident whose clocks are all answered is news: the duty tier
        hears of it (once per incident and hour), and with `[incidents] new_wave = "reopen"`
        the answered clocks start a new round from this post."""
        active = [c for c in incident.clocks if c.active]
        if not active or any(c.met_at is None for c in active):
            return
        wave = now.replace(minute=0, second=0, microsecond=0)
        reopened: list[str] = []
        if self.cfg.incidents.new_wave == "reopen":
            number = max(_round(c.name)[1] for c in incident.clocks) + 1
            plans = {p.name: p for p in self._plan(incident, incident.severity, seen_at)}
            for base in dict.fromkeys(_round(c.name)[0] for c in active):
                if base in plans:
                    name = f"{base}（第{number}轮）"
                    session.add(Clock(incident_id=incident.id, name=name, started_at=to_db(seen_at), due_at=to_db(plans[base].due_at)))
                    reopened.append(name)
            session.flush()
            session.refresh(incident, ["clocks"])
            self._event(session, incident, now, SYSTEM, "reopened", post=post.id, clocks=reopened)
            self._changed(incident, now)
        first = self.policy_for(incident.severity).first_tier
        title, body = render_progress(self.view(incident), self.clock_states(incident), (post.title or post.body or "")[:80],
                                      post.url, reopened)
        alert = Alert(f"{incident.id}:progress:{wave.isoformat()}", incident.id, None, "progress", first,
                      self.recipients(first, incident, now), now, title, body, severity=incident.severity)
        fire(session, alert, now, self.alerting.channels, self.alerting.disposition)

    def heat(self, session: Session, incident: Incident, now: datetime) -> Heat:
        rows = session.execute(
            select(Post.published_at, Post.fetched_at, Source.name, Post.author)
            .join(IncidentPost, IncidentPost.post_id == Post.id)
            .join(Source, Source.id == Post.source_id)
            .where(IncidentPost.incident_id == incident.id)
        ).all()
        return measure([(clock_start(from_db(p), from_db(f)), s, a) for p, f, s, a in rows], now)

    def _check_heat(self, session: Session, incident: Incident, now: datetime) -> None:
        """Thresholds in [[heat]]: raise the severity, or suggest it once, with the reason."""
        heat = self.heat(session, incident, now)
        for rule in sorted(self.cfg.heat, key=lambda r: rank(r.raise_to)):
            if rank(rule.raise_to) >= rank(incident.severity):
                continue  # already this severe or more
            hit = ((rule.posts_per_hour is None or heat.last_hour >= rule.posts_per_hour)
                   and (rule.sources is None or heat.sources >= rule.sources)
                   and (rule.authors is None or heat.authors >= rule.authors))
            if not hit:
                continue
            reason = heat.describe()
            if rule.action == "raise":
                self.regrade(session, incident.id, rule.raise_to, "system:热度", now)
                self._event(session, incident, now, "system:热度", "heat", raised_to=rule.raise_to, reason=reason)
            else:
                key = f"{incident.id}:heat:suggest-{rule.raise_to}"
                title = f"【{incident.severity}】事件 #{incident.id} 热度上升，建议调整为「{rule.raise_to}」"
                body = (f"事件：#{incident.id} {incident.rule}：{incident.title}\n热度：{reason}\n"
                        f"如同意：monitor incidents regrade {incident.id} {rule.raise_to}")
                first = self.policy_for(incident.severity).first_tier
                alert = Alert(key, incident.id, None, "suggest", first, self.recipients(first, incident, now), now, title, body,
                              severity=incident.severity)
                if fire(session, alert, now, self.alerting.channels, self.alerting.disposition) is not None:
                    self._event(session, incident, now, "system:热度", "heat", suggested=rule.raise_to, reason=reason)
            return

    @staticmethod
    def _link(session: Session, incident: Incident, post: Post, now: datetime) -> bool:
        """Put a post into an incident once; False if it is there already."""
        if session.get(IncidentPost, (incident.id, post.id)) is not None:
            return False
        session.add(IncidentPost(incident_id=incident.id, post_id=post.id, added_at=to_db(now)))
        session.flush()
        return True

    def join_original(self, session: Session, post: Post, now: datetime) -> list[Incident]:
        """A repost joins the open incidents of the post it reposts, whatever its own text
        says: most reposts are a few characters ("无语", "[蜡烛]")."""
        joined = []
        incident_ids = session.scalars(
            select(IncidentPost.incident_id)
            .join(Post, Post.id == IncidentPost.post_id)
            .where(Post.source_id == post.source_id, Post.external_id == post.repost_of)
        ).all()
        for incident_id in incident_ids:
            incident = session.get(Incident, incident_id)
            if incident.state == "closed" or not self._link(session, incident, post, now):
                continue
            incident.post_count += 1
            incident.last_post_at = max(incident.last_post_at, post.fetched_at)
            self._event(session, incident, now, SYSTEM, "post_added", post=post.id, via="repost", repost_of=post.repost_of)
            joined.append(incident)
        return joined

    def merge(self, session: Session, keep_id: int, other_id: int, actor: str, now: datetime) -> Incident:
        """One real event seen as two incidents: other's posts move into keep; other closes."""
        if keep_id == other_id:
            raise ActionError("不能把事件合并到它自己")
        keep, other = self.get(session, keep_id), self.get(session, other_id)
        moved = 0
        for link in session.scalars(select(IncidentPost).where(IncidentPost.incident_id == other.id)).all():
            post = session.get(Post, link.post_id)
            if self._link(session, keep, post, now):
                moved += 1
        keep.post_count += moved
        keep.terms = list(dict.fromkeys([*keep.terms, *other.terms]))
        keep.last_post_at = max(keep.last_post_at, other.last_post_at)
        if other.started_at < keep.started_at:
            self._move_start(session, keep, from_db(other.started_at), now, None)
        carried = self._carry_record(keep, other)
        other.state, other.closed_at, other.merged_into = "closed", to_db(now), keep.id
        self._event(session, keep, now, actor, "merged", other=other.id, posts=moved, **carried)
        self._event(session, other, now, actor, "merged_into", into=keep.id)
        self._changed(keep, now)
        self._changed(other, now)
        return keep

    @staticmethod
    def _carry_record(keep: Incident, other: Incident) -> dict:
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
        chosen = [(link, post) for link, post in links if post.external_id in post_refs or str(post.id) in post_refs]
        missing = set(post_refs) - {p.external_id for _l, p in chosen} - {str(p.id) for _l, p in chosen}
        if missing:
            raise ActionError(f"事件 #{incident_id} 中没有帖文：{'、'.join(sorted(missing))}")
        if len(chosen) == len(links):
            raise ActionError("不能把全部帖文拆出：那是同一个事件")
        posts = [p for _l, p in chosen]
        seen = min(clock_start(from_db(p.published_at), from_db(p.fetched_at)) for p in posts)
        first = min(posts, key=lambda p: clock_start(from_db(p.published_at), from_db(p.fetched_at)))
        new = Incident(
            rule=source.rule, title=(first.title or first.body)[:200] or source.rule, severity=source.severity,
            category=source.category, department=source.department, state="open", started_at=to_db(seen),
            opened_at=to_db(now), last_post_at=max(p.fetched_at for p in posts), terms=list(source.terms),
            first_post_url=first.url, post_count=len(posts),
        )
        session.add(new)
        session.flush()
        for link, post in chosen:
            session.delete(link)
            session.add(IncidentPost(incident_id=new.id, post_id=post.id, added_at=to_db(now)))
        source.post_count -= len(posts)
        self._recompute_first(session, source, [p for l, p in links if (l, p) not in chosen], now, actor)
        for plan in self._plan(new, new.severity, seen):
            session.add(Clock(incident_id=new.id, name=plan.name, started_at=to_db(plan.started_at), due_at=to_db(plan.due_at)))
        session.flush()
        session.refresh(new, ["clocks"])
        self._event(session, source, now, actor, "split_out", into=new.id, posts=[p.id for p in posts])
        self._event(session, new, now, actor, "split_from", source=source.id, posts=[p.id for p in posts])
        self._changed(new, now)
        return new

    def _recompute_first(self, session: Session, incident: Incident, remaining: list[Post], now: datetime, actor: str) -> None:
        """After posts leave: the title, link and start come from the first post that stayed;
        clocks not yet answered count from it."""
        first = min(remaining, key=lambda p: (clock_start(from_db(p.published_at), from_db(p.fetched_at)), p.id))
        incident.title = (first.title or first.body)[:200] or incident.rule
        incident.first_post_url = first.url
        incident.last_post_at = max(to_db(clock_start(from_db(p.published_at), from_db(p.fetched_at))) for p in remaining)
        start = clock_start(from_db(first.published_at), from_db(first.fetched_at))
        if to_db(start) != incident.started_at:
            self._move_start(session, incident, start, now, first, actor)
        self._changed(incident, now)

    def _move_start(self, session: Session, incident: Incident, start: datetime, now: datetime, post: Post | None,
                    actor: str = SYSTEM) -> None:
        """The incident now starts at `start` (a post found later but published earlier, or its
        first post split out): clocks not yet answered count from there."""
        before = from_db(incident.started_at)
        incident.started_at = to_db(start)
        plans = {p.name: p for p in self._plan(incident, incident.severity, start)}
        for clock in incident.clocks:
            if clock.active and clock.met_at is None and clock.name in plans:
                clock.started_at, clock.due_at = to_db(start), to_db(plans[clock.name].due_at)
        self._event(session, incident, now, actor, "start_moved", post=post.id if post is not None else None,
                    before=before.isoformat(), after=start.isoformat())
        self._changed(incident, now)

    def _notice_actions(self, session: Session) -> None:
        """Officers merge and split from the CLI, another process than the daemon's: once per
        transaction, the rules whose incidents they reshaped drop their event index, which is
        then rebuilt from the store as it now is."""
        if session.info.get(_ACTIONS_SEEN):
            return
        session.info[_ACTIONS_SEEN] = True
        rows = session.execute(
            select(Event.id, Incident.rule)
            .join(Incident, Incident.id == Event.incident_id)
            .where(Event.kind.in_(_RESHAPING), Event.id > self._last_action)
        ).all()
        for event_id, rule in rows:
            self._clusterers.pop(rule, None)
            self._last_action = max(self._last_action, event_id)

    def _clusterer(self, session: Session, rule: str) -> Clusterer:
        """The rule's event index, rebuilt from the store the first time it is needed."""
        self._notice_actions(session)
        clusterer = self._clusterers.get(rule)
        if clusterer is None:
            inc = self.cfg.incidents
            clusterer = Clusterer(inc.window, inc.cluster_threshold, near_dup=inc.near_duplicate or None,
                                  named_threshold=inc.cluster_threshold_named)
            rows = session.execute(
                select(Post.external_id, Post.title, Post.body, Post.published_at, Post.fetched_at, IncidentPost.incident_id)
                .join(IncidentPost, IncidentPost.post_id == Post.id)
                .join(Incident, Incident.id == IncidentPost.incident_id)
                .where(Incident.rule == rule, Incident.state != "closed")
                .order_by(Post.id)
            ).all()
            for external_id, title, body, published, fetched, incident_id in rows:
                when = clock_start(from_db(published), from_db(fetched))
                about, sketch = clusterer.describe(self._text(title, body))
                clusterer.remember(external_id, when, about, incident_id, sketch)
            self._clusterers[rule] = clusterer
        return clusterer

    def _open_incident(self, session: Session, rule: str, seen_at: datetime) -> Incident | None:
        """The open incident of this rule with a post within the window of seen_at.

        A batch of posts about one event asks this again and again: the last answer per rule
        is kept for the session (one transaction), and the store is asked only when it fails.
        """
        window = self.cfg.incidents.window
        earliest, latest = to_db(seen_at - window), to_db(seen_at + window)
        recent = session.info.setdefault(_RECENT, {})
        cached = recent.get(rule)
        # Within the window on both sides: a post much older than the incident's first post
        # is another event, not a reason to move its clocks back.
        if cached is not None and cached.state != "closed" and cached.last_post_at >= earliest and cached.started_at <= latest:
            return cached
        incident = session.scalars(
            select(Incident)
            .options(lazyload(Incident.clocks))
            .where(Incident.rule == rule, Incident.state != "closed", Incident.last_post_at >= earliest,
                   Incident.started_at <= latest)
            .order_by(Incident.last_post_at.desc())
            .limit(1)
        ).first()
        if incident is not None:
            recent[rule] = incident
        return incident

    # ---- escalation ----------------------------------------------------------------

    def tick(self, session: Session, now: datetime, limit: int = 500) -> int:
        """Fire every step due by now, once; returns how many alerts were sent."""
        due = session.scalars(
            select(Incident)
            .where(Incident.next_step_at.is_not(None), Incident.next_step_at <= to_db(now))
            .order_by(Incident.next_step_at)
            .limit(limit)
        ).all()
        sent = 0
        for incident in due:
            sent += self._fire_due(session, incident, now)
            self._reschedule(incident, now)
        return sent

    def _fire_due(self, session: Session, incident: Incident, now: datetime) -> int:
        clocks = self.clock_states(incident)
        steps = due_steps(self.state(incident), clocks, self.policy_for(incident.severity), now)
        if not steps:
            return 0
        logged = dict(
            session.execute(select(Notification.key, Notification.tier).where(Notification.incident_id == incident.id)).all()
        )
        called_in = max((tier for key, tier in logged.items() if ":ack:" in key), default=-1)
        send, superseded = collapse([s for s in steps if s.key not in logged], called_in)
        view = self.view(incident)
        for step in superseded:
            self._fire_step(session, incident, view, clocks, step, now, "superseded")
        for step in send:
            self._fire_step(session, incident, view, clocks, step, now, self.alerting.disposition)
        return len(send)

    def _fire_step(self, session, incident: Incident, view: IncidentView, clocks, step, now: datetime, disposition: str) -> None:
        tier = self.cfg.tier[step.tier]
        title, body, markdown = render_all(step.kind, view, clocks, now, step, tier.name, self.templates)
        tags = self.recipients(step.tier, incident, now)
        alert = Alert(step.key, view.id, step.clock, step.kind, step.tier, tags, step.at, title, body, markdown, incident.severity)
        channels = self.alerting.channels if disposition == "sent" else None
        fire(session, alert, now, channels, disposition, fold_until=self._fold_step(session, incident, step, now))

    def _fire_opened(self, session: Session, incident: Incident, now: datetime) -> None:
        first = self.policy_for(incident.severity).first_tier
        clocks = self.clock_states(incident)
        title, body, markdown = render_all("opened", self.view(incident), clocks, now, templates=self.templates)
        alert = Alert(f"{incident.id}:opened", incident.id, None, "opened", first, self.recipients(first, incident, now), now, title, body,
                      markdown, incident.severity)
        fold = self._over_budget(session, incident, now) or self._with_related(incident, now)
        fire(session, alert, now, self.alerting.channels, self.alerting.disposition, fold_until=fold)

    def _fold_step(self, session: Session, incident: Incident, step, now: datetime) -> datetime | None:
        """When a step waits for a digest, or None to send it now. The next full hour: a repeat to
        a tier that has had this clock's escalation, and every step of an incident whose 新舆情事件
        went by digest (past the rule's budget) or that is another story of an open incident's
        event. The next group boundary: a step of a rule whose last step to this tier went on its
        own less than group_interval ago (kept in memory: after a restart the first goes alone)."""
        alerts = self.cfg.alerts
        if step.repeat and alerts.fold_repeats:
            return _next_hour(now)  # the tier hears "still not answered" once an hour for all such clocks
        if alerts.new_incidents_per_hour and session.scalar(
            select(Notification.held_until).where(Notification.key == f"{incident.id}:opened")
        ) is not None:
            return _next_hour(now)
        if incident.related_to is not None and alerts.group_interval:
            return _next_hour(now)  # the event's own incident has had these on time
        if alerts.group_interval:
            last = self._last_step.get((incident.rule, step.tier))
            if last is not None and now - last < alerts.group_interval:
                return _next_boundary(now, alerts.group_interval)
            self._last_step[(incident.rule, step.tier)] = now
        return None

    def _with_related(self, incident: Incident, now: datetime) -> datetime | None:
        """Another story of an open incident's event: its 新舆情事件 goes with the next digest
        (group_interval), its reminders and escalations with the hourly one, so one earthquake
        pages a few times an hour, not once per rumour."""
        gi = self.cfg.alerts.group_interval
        return _next_boundary(now, gi) if incident.related_to is not None and gi else None

    def _over_budget(self, session: Session, incident: Incident, now: datetime) -> datetime | None:
        """When a rule opened more than [alerts] new_incidents_per_hour incidents in the last
        hour, the next full hour (its alert then goes in a digest); else None."""
        budget = self.cfg.alerts.new_incidents_per_hour
        if not budget or incident.severity == "特别重大":
            return None
        recent = session.scalar(
            select(func.count()).select_from(Incident)
            .where(Incident.rule == incident.rule, Incident.opened_at > to_db(now - timedelta(hours=1)))
        )
        return None if recent <= budget else _next_hour(now)

    def _reschedule(self, incident: Incident, now: datetime) -> None:
        """After a tick: the next step strictly after now (everything due was just fired)."""
        nxt = next_step_at(self.state(incident), self.clock_states(incident), self.policy_for(incident.severity), now)
        incident.next_step_at = to_db(nxt)

    @staticmethod
    def _changed(incident: Incident, now: datetime) -> None:
        """After a change (opened, met, regraded, closed): let the next tick look at it now;
        steps already due, such as those of an old first post, are then fired there."""
        incident.next_step_at = to_db(now)

    # ---- officer actions -----------------------------------------------------------

    def get(self, session: Session, incident_id: int) -> Incident:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise ActionError(f"事件 #{incident_id} 不存在")
        return incident

    def ack(self, session: Session, incident_id: int, actor: str, now: datetime) -> Incident:
        incident = self.get(session, incident_id)
        if incident.state == "closed":
            raise ActionError(f"事件 #{incident_id} 已关闭")
        if incident.acked_at is not None:
            raise ActionError(f"事件 #{incident_id} 已于 {show(from_db(incident.acked_at))} 由 {incident.acked_by} 确认")
        incident.acked_at, incident.acked_by, incident.state = to_db(now), actor, "acknowledged"
        self._event(session, incident, now, actor, "acknowledged")
        return incident

    def met(self, session: Session, incident_id: int, clock_name: str, actor: str, now: datetime, evidence: str | None) -> Incident:
        incident = self.get(session, incident_id)
        clock = next((c for c in incident.clocks if c.name == clock_name and c.active), None)
        if clock is None:
            names = "、".join(c.name for c in incident.clocks if c.active)
            raise ActionError(f"事件 #{incident_id} 没有时限「{clock_name}」（现有：{names}）")
        if clock.met_at is not None:
            raise ActionError(f"事件 #{incident_id} 的「{clock_name}」已于 {show(from_db(clock.met_at))} 登记完成")
        clock.met_at, clock.met_by, clock.evidence = to_db(now), actor, evidence
        on_time = now <= from_db(clock.due_at)
        self._event(session, incident, now, actor, "clock_met", clock=clock_name, evidence=evidence, on_time=on_time)
        self._changed(incident, now)
        _drop_held_steps(session, incident.id, clock_name)
        return incident

    def close(self, session: Session, incident_id: int, actor: str, now: datetime) -> Incident:
        incident = self.get(session, incident_id)
        if incident.state == "closed":
            raise ActionError(f"事件 #{incident_id} 已关闭")
        incident.state, incident.closed_at = "closed", to_db(now)
        open_clocks = [c.name for c in incident.clocks if c.active and c.met_at is None]
        self._event(session, incident, now, actor, "closed", open_clocks=open_clocks)
        self._changed(incident, now)
        _drop_held_steps(session, incident.id)
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
        start = now if self.cfg.incidents.regrade_clocks_from == "regrade" else from_db(incident.started_at)
        plans = {p.name: p for p in self._plan(incident, level, start)}
        existing = {c.name: c for c in incident.clocks}
        for name, clock in existing.items():
            clock.active = name in plans
        for name, plan in plans.items():
            if name not in existing:
                session.add(Clock(incident_id=incident.id, name=name, started_at=to_db(plan.started_at), due_at=to_db(plan.due_at)))
        session.flush()
        session.refresh(incident, ["clocks"])
        after = [{"name": c.name, "due_at": from_db(c.due_at).isoformat(), "met_at": from_db(c.met_at).isoformat() if c.met_at else None}
                 for c in incident.clocks if c.active]
        self._event(session, incident, now, actor, "regraded", before=before, after=level, clocks=after)
        self._changed(incident, now)
        return incident

    def reply_seen(self, session: Session, incident_id: int, post: Post, now: datetime) -> None:
        """A board shows an official reply to one of the incident's posts: evidence."""
        incident = self.get(session, incident_id)
        replied_at = min(from_db(post.reply_at) or now, now)
        self._event(session, incident, now, SYSTEM, "reply_seen", post=post.id, status=post.reply_status,
                    reply_at=replied_at.isoformat(), text=(post.reply_text or "")[:300], url=post.url)
        clock_name = self.cfg.incidents.reply_meets
        clock = next((c for c in incident.clocks if c.name == clock_name and c.active and c.met_at is None), None)
        if clock is not None and incident.state != "closed":
            evidence = post.url or f"留言板答复（{post.reply_status or '已答复'}）"
            self.met(session, incident_id, clock_name, "system:留言板答复", replied_at, evidence)
            return
        if incident.state == "closed":
            return
        first = self.policy_for(incident.severity).first_tier
        pending = [c.name for c in self.clock_states(incident) if c.met_at is None]
        title, body = render_reply(self.view(incident), post.title or post.body[:60], post.reply_status, post.reply_text,
                                   post.url, replied_at, pending)
        alert = Alert(f"{incident.id}:reply:{post.id}", incident.id, None, "reply", first, self.recipients(first, incident, now), now, title, body,
                      severity=incident.severity)
        fire(session, alert, now, self.alerting.channels, self.alerting.disposition)

    @staticmethod
    def _event(session: Session, incident: Incident, now: datetime, actor: str, kind: str, **data) -> None:
        session.add(Event(incident_id=incident.id, at=to_db(now), actor=actor, kind=kind, data=data))
        if kind in _RESHAPING:
            session.info.pop(_ACTIONS_SEEN, None)  # the next post in this transaction looks again
