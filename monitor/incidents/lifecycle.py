"""How posts become incidents: a matched post joins an incident or opens one (by rule and
window, or by content through the clusterer), a repost follows its original, an earlier post
moves the start back, heat may raise the grade, a post after an answer is a new wave, and a
board's official reply is evidence. Alerts go through the escalator to the alerts package."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload

from monitor.clock import show, show_delta
from monitor.config import MainConfig
from monitor.incidents import views
from monitor.incidents.actions import Actions
from monitor.incidents.clocks import clock_start
from monitor.incidents.cluster import Clusterer, features
from monitor.incidents.escalator import Escalator
from monitor.incidents.heat import Heat, measure
from monitor.incidents.record import (
    ACTIONS_SEEN, RESHAPING, SYSTEM, Planner, changed, event, link, new_clock, official_actor, round_of, write_links,
)
from monitor.matching.matcher import Match, post_text
from monitor.severity import rank
from monitor.store.models import Event, Incident, IncidentPost, Post, Source

log = logging.getLogger(__name__)

_RECENT = "monitor.recent_incidents"  # session.info key: rule -> incident seen in this transaction
_LINKS = "monitor.links_reposts"  # session.info key: source id -> whether it links reposts
_CAUGHT_UP = "monitor.caught_up"  # session.info key: other instances' placements looked for
# An official release that announces or reports a press conference answers the 发布会 clock.
_PRESS = re.compile(r"新闻发布会|发布会|记者会|新闻通气会|吹风会")


class Lifecycle:
    def __init__(self, cfg: MainConfig, planner: Planner, escalator: Escalator, actions: Actions):
        self.cfg = cfg
        self.planner = planner
        self.escalator = escalator
        self.actions = actions
        self._clusterers: dict[str, Clusterer] = {}
        self._last_action = 0  # the last merge or split event the clusterers know of
        self._last_placed: dict[str, int] = {}  # rule -> the last placement event its index knows of (PostgreSQL)

    def carry(self, before: Lifecycle, index: bool) -> None:
        """After a reload: the merges and splits already noticed, and the content index if
        grouping did not change (else it is rebuilt from the store when next needed)."""
        self._last_action = before._last_action
        if index:
            self._clusterers = before._clusterers
            self._last_placed = before._last_placed

    def _text(self, title: str | None, body: str | None) -> str:
        """What clustering reads of a post: as much as matching does ([matching] max_chars)."""
        n = self.cfg.matching.max_chars or None
        return post_text((title or "")[:n], (body or "")[:n])

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
        seen_at = clock_start(post.published_at, post.fetched_at)
        described = self._clusterer(session, ordered[0].rule.name).describe(self._text(post.title, post.body))
        for match in ordered:
            found = self._found(session, self._clusterer(session, match.rule.name), post, seen_at, described)
            if found is not None:
                self.assign(session, post, match, now, described, found)
                return
        self.assign(session, post, ordered[0], now, described, None)

    def _found(self, session: Session, clusterer: Clusterer, post: Post, seen_at: datetime, described) -> Incident | None:
        about, sketch = described
        original = post.repost_of is None and self._links_reposts(session, post.source_id)
        key = clusterer.find(seen_at, about, post.repost_of, sketch, original)
        incident = session.get(Incident, key, options=[lazyload(Incident.clocks)]) if key is not None else None
        if incident is not None and incident.state == "closed":
            clusterer.forget(key)
            return None
        return incident

    @staticmethod
    def _links_reposts(session: Session, source_id: int) -> bool:
        """Whether the source says which post a repost reposts (asked once per transaction:
        posts are stored, and the flag set, before they are processed)."""
        known = session.info.setdefault(_LINKS, {})
        if source_id not in known:
            known[source_id] = bool(session.scalar(select(Source.links_reposts).where(Source.id == source_id)))
        return known[source_id]

    def assign(self, session: Session, post: Post, match: Match, now: datetime, described=None,
               found: Incident | None | bool = False) -> Incident | None:
        """Join the open incident of the rule seen within the window, or open one. `described`
        and `found` are what `place` already knows: the post's features and the incident the
        rule's clustering found for it (False: not asked yet)."""
        rule = match.rule
        seen_at = clock_start(post.published_at, post.fetched_at)
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
                if not link(session, incident, post, now):
                    return incident
                incident.post_count += 1
                incident.last_post_at = max(incident.last_post_at, seen_at)
                event(session, incident, now, SYSTEM, "post_added", post=post.id, terms=match.terms)
            incident.terms = list(dict.fromkeys([*incident.terms, *match.terms]))
            if seen_at < incident.started_at:
                self.planner.move_start(session, incident, seen_at, now, post)
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
            started_at=seen_at,
            opened_at=now,
            last_post_at=seen_at,
            terms=list(match.terms),
            first_post_url=post.url,
            post_count=1,
        )
        session.add(incident)
        session.flush()
        session.info.setdefault(_RECENT, {})[rule.name] = incident
        link(session, incident, post, now)
        if about is not None:
            clusterer.remember(post.external_id, seen_at, about, incident.id, sketch)
        for plan in self.planner.plan(incident, incident.severity, seen_at):
            new_clock(session, incident.id, plan.name, plan.started_at, plan.due_at, now)
        session.flush()
        session.refresh(incident, ["clocks"])
        event(session, incident, now, SYSTEM, "opened", post=post.id, rule=rule.name, severity=rule.severity)
        if self.cfg.alerts.notify_on_open:
            self.escalator.opened(session, incident, now)
        changed(incident, now)
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
        write_links(session)
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
            number = max(round_of(c.name)[1] for c in incident.clocks) + 1
            plans = {p.name: p for p in self.planner.plan(incident, incident.severity, seen_at)}
            for base in dict.fromkeys(round_of(c.name)[0] for c in active):
                if base in plans:
                    name = f"{base}（第{number}轮）"
                    new_clock(session, incident.id, name, seen_at, plans[base].due_at, now)
                    reopened.append(name)
            session.flush()
            session.refresh(incident, ["clocks"])
            event(session, incident, now, SYSTEM, "reopened", post=post.id, clocks=reopened)
            changed(incident, now)
        tier, tags = self.escalator.first_tier(incident, now)
        self.escalator.notices.progress(session, views.view(incident), views.clock_states(incident),
                                        (post.title or post.body or "")[:80], post.url, reopened, wave, tier, tags, now)

    def heat(self, session: Session, incident: Incident, now: datetime) -> Heat:
        write_links(session)
        rows = session.execute(
            select(Post.published_at, Post.fetched_at, Source.name, Post.author)
            .join(IncidentPost, IncidentPost.post_id == Post.id)
            .join(Source, Source.id == Post.source_id)
            .where(IncidentPost.incident_id == incident.id)
        ).all()
        return measure([(clock_start(p, f), s, a) for p, f, s, a in rows], now)

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
                self.actions.regrade(session, incident.id, rule.raise_to, "system:热度", now)
                event(session, incident, now, "system:热度", "heat", raised_to=rule.raise_to, reason=reason)
            else:
                tier, tags = self.escalator.first_tier(incident, now)
                if self.escalator.notices.heat_suggestion(session, views.view(incident), rule.raise_to, reason, tier, tags, now):
                    event(session, incident, now, "system:热度", "heat", suggested=rule.raise_to, reason=reason)
            return

    def join_original(self, session: Session, post: Post, now: datetime) -> list[Incident]:
        """A repost joins the open incidents of the post it reposts, whatever its own text
        says: most reposts are a few characters ("无语", "[蜡烛]")."""
        joined = []
        write_links(session)
        incident_ids = session.scalars(
            select(IncidentPost.incident_id)
            .join(Post, Post.id == IncidentPost.post_id)
            .where(Post.source_id == post.source_id, Post.external_id == post.repost_of)
        ).all()
        for incident_id in incident_ids:
            incident = session.get(Incident, incident_id)
            if incident.state == "closed" or not link(session, incident, post, now):
                continue
            incident.post_count += 1
            incident.last_post_at = max(incident.last_post_at, post.fetched_at)
            event(session, incident, now, SYSTEM, "post_added", post=post.id, via="repost", repost_of=post.repost_of)
            joined.append(incident)
        return joined

    def reply_seen(self, session: Session, incident_id: int, post: Post, now: datetime) -> None:
        """A board shows an official reply to one of the incident's posts: evidence."""
        incident = self.actions.get(session, incident_id)
        replied_at = min(post.reply_at or now, now)
        event(session, incident, now, SYSTEM, "reply_seen", post=post.id, status=post.reply_status,
              reply_at=replied_at.isoformat(), text=(post.reply_text or "")[:300], url=post.url)
        clock_name = self.cfg.incidents.reply_meets
        clock = next((c for c in incident.clocks if c.name == clock_name and c.active and c.met_at is None), None)
        if clock is not None and incident.state != "closed":
            evidence = post.url or f"留言板答复（{post.reply_status or '已答复'}）"
            self.actions.met(session, incident_id, clock_name, "system:留言板答复", replied_at, evidence)
            return
        if incident.state == "closed":
            return
        tier, tags = self.escalator.first_tier(incident, now)
        pending = [c.name for c in views.clock_states(incident) if c.met_at is None]
        self.escalator.notices.reply(session, views.view(incident), post.id, post.title or post.body[:60], post.reply_status,
                                     post.reply_text, post.url, replied_at, pending, tier, tags, now)

    def official(self, session: Session, post: Post, matches: list[Match], source: str, now: datetime) -> None:
        """The office's own channel published something a rule matches. It never opens an
        incident: it may be the answer of one. For each rule it matched, the open incident of
        that rule which started before it and shares a place, organisation or person with it
        gets it proposed as evidence for the first clock still open (a press conference's for
        the 发布会 clock); with `[incidents] official_meets` it meets that clock by itself."""
        seen_at = clock_start(post.published_at, post.fetched_at)
        text = self._text(post.title, post.body)
        ours = features(text)
        press = bool(_PRESS.search(text))
        actor = official_actor(source)
        title = (post.title or post.body or "")[:120]
        for match in matches:
            for incident in self._answerable(session, match.rule.name, seen_at):
                clock = self._open_clock(incident, press)
                if clock is None or not self._about_the_same(session, incident, ours):
                    continue
                event(session, incident, now, actor, "evidence_proposed", post=post.id, clock=clock, url=post.url,
                      title=title, published_at=seen_at.isoformat())
                if self.cfg.incidents.official_meets:
                    self.actions.met(session, incident.id, clock, actor, min(seen_at, now), post.url or f"{source}：{title}",
                                     note=f"官方渠道发布：{title}")
                else:
                    tier, tags = self.escalator.first_tier(incident, now)
                    self.escalator.notices.evidence(session, views.view(incident), post.id, clock, source, title, post.url,
                                                    seen_at, tier, tags, now)
                log.info("官方渠道 %s 的发布《%s》%s事件 #%d 的「%s」", source, title,
                         "已完成" if self.cfg.incidents.official_meets else "拟作为", incident.id, clock)
                break  # one incident per rule: the most recently active that it answers

    @staticmethod
    def _answerable(session: Session, rule: str, seen_at: datetime) -> list[Incident]:
        return session.scalars(
            select(Incident).where(Incident.rule == rule, Incident.state != "closed", Incident.started_at <= seen_at)
            .order_by(Incident.last_post_at.desc()).limit(10)
        ).all()

    @staticmethod
    def _open_clock(incident: Incident, press: bool) -> str | None:
        waiting = [c for c in sorted(incident.clocks, key=lambda c: c.due_at) if c.active and c.met_at is None]
        fits = [c for c in waiting if ("发布会" in c.name) == press]
        return fits[0].name if fits else None

    def _about_the_same(self, session: Session, incident: Incident, ours) -> bool:
        """Shares a named place, organisation or person with the incident's posts; where
        neither names one, at least two salient words."""
        write_links(session)
        rows = session.execute(
            select(Post.title, Post.body).join(IncidentPost, IncidentPost.post_id == Post.id)
            .where(IncidentPost.incident_id == incident.id).order_by(Post.id).limit(20)
        ).all()
        theirs = features("\n".join([incident.title, *(self._text(t, b) for t, b in rows)]))
        if ours.entities or theirs.entities:
            return bool(ours.entities & theirs.entities)
        return len(ours.words & theirs.words) >= 2

    def _notice_actions(self, session: Session) -> None:
        """Officers merge and split from the CLI, another process than the daemon's: once per
        transaction, the rules whose incidents they reshaped drop their event index, which is
        then rebuilt from the store as it now is."""
        if session.info.get(ACTIONS_SEEN):
            return
        session.info[ACTIONS_SEEN] = True
        rows = session.execute(
            select(Event.id, Incident.rule)
            .join(Incident, Incident.id == Event.incident_id)
            .where(Event.kind.in_(RESHAPING), Event.id > self._last_action)
        ).all()
        for event_id, rule in rows:
            self._clusterers.pop(rule, None)
            self._last_action = max(self._last_action, event_id)

    def _catch_up(self, session: Session, rule: str, clusterer: Clusterer) -> None:
        """Instances on one PostgreSQL each keep their own event index: once per transaction
        and rule (under the rule's processing lock, so every placement of it before is
        committed), the posts the others placed since the last look join this one's index, so
        that the next post of an event another instance opened finds it instead of opening a
        second incident."""
        looked = session.info.setdefault(_CAUGHT_UP, set())
        if rule in looked or session.get_bind().dialect.name != "postgresql":
            return
        looked.add(rule)
        rows = session.execute(
            select(Event.id, Event.incident_id, Event.data).join(Incident, Incident.id == Event.incident_id)
            .where(Event.kind.in_(("opened", "post_added")), Event.id > self._last_placed.get(rule, 0), Incident.rule == rule)
            .order_by(Event.id)
        ).all()
        if not rows:
            return
        self._last_placed[rule] = rows[-1].id
        posts = {p.id: p for p in session.execute(
            select(Post.id, Post.external_id, Post.title, Post.body, Post.published_at, Post.fetched_at)
            .where(Post.id.in_([r.data.get("post") for r in rows if r.data.get("post") is not None]))
        )}
        for r in rows:
            p = posts.get(r.data.get("post"))
            if p is None or p.external_id in clusterer.of_post:
                continue  # gone, or ours
            self._index(clusterer, [(p.external_id, p.title, p.body, p.published_at, p.fetched_at, r.incident_id)])

    def _index(self, clusterer: Clusterer, rows) -> None:
        """Add posts (external id, title, body, published, fetched, incident) to an event index."""
        for external_id, title, body, published, fetched, incident_id in rows:
            about, sketch = clusterer.describe(self._text(title, body))
            clusterer.remember(external_id, clock_start(published, fetched), about, incident_id, sketch)

    def _clusterer(self, session: Session, rule: str) -> Clusterer:
        """The rule's event index, rebuilt from the store the first time it is needed."""
        self._notice_actions(session)
        clusterer = self._clusterers.get(rule)
        if clusterer is not None:
            self._catch_up(session, rule, clusterer)
            return clusterer
        inc = self.cfg.incidents
        clusterer = Clusterer(inc.window, inc.cluster_threshold, near_dup=inc.near_duplicate or None,
                              named_threshold=inc.cluster_threshold_named)
        write_links(session)
        self._last_placed[rule] = session.scalar(select(func.max(Event.id))) or 0  # the store as read below
        session.info.setdefault(_CAUGHT_UP, set()).add(rule)
        rows = session.execute(
            select(Post.external_id, Post.title, Post.body, Post.published_at, Post.fetched_at, IncidentPost.incident_id)
            .join(IncidentPost, IncidentPost.post_id == Post.id)
            .join(Incident, Incident.id == IncidentPost.incident_id)
            .where(Incident.rule == rule, Incident.state != "closed")
            .order_by(Post.id)
        ).all()
        self._index(clusterer, rows)
        self._clusterers[rule] = clusterer
        return clusterer

    def _open_incident(self, session: Session, rule: str, seen_at: datetime) -> Incident | None:
        """The open incident of this rule with a post within the window of seen_at.

        A batch of posts about one event asks this again and again: the last answer per rule
        is kept for the session (one transaction), and the store is asked only when it fails.
        """
        window = self.cfg.incidents.window
        earliest, latest = seen_at - window, seen_at + window
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
