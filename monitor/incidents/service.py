"""The incident service: the parts of the incident package wired together for one
configuration, and swapped together when it is reloaded.

  lifecycle  posts into incidents (lifecycle.py)
  actions    what officers do: the one layer the CLI, replay and the console call (actions.py)
  escalator  policy, the tick, when steps wait for digests (escalator.py)
  views      plain values read from incident rows (views.py)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from monitor.alerts.notices import Alerting, Notices
from monitor.config import MainConfig
from monitor.incidents import views
from monitor.incidents.actions import Actions
from monitor.incidents.escalator import Escalator
from monitor.incidents.heat import Heat
from monitor.incidents.lifecycle import Lifecycle
from monitor.incidents.record import SYSTEM, ActionError, Planner, preload_links, write_links
from monitor.store.models import Incident, Post

__all__ = ["SYSTEM", "ActionError", "Alerting", "Incidents"]


class Incidents:
    clock_states = staticmethod(views.clock_states)
    view = staticmethod(views.view)
    state = staticmethod(views.state)

    def __init__(self, cfg: MainConfig, alerting: Alerting):
        self.cfg, self.alerting = cfg, alerting
        planner = Planner(cfg)
        self.escalator = Escalator(cfg, Notices(cfg, alerting))
        self.actions = Actions(cfg, planner)
        self.lifecycle = Lifecycle(cfg, planner, self.escalator, self.actions)

    def reconfigure(self, cfg: MainConfig, alerting: Alerting) -> None:
        """A reloaded configuration: roster, tiers, policies, clocks, templates, calendar. The
        content index is kept unless how incidents are grouped changed."""
        lifecycle, escalator, same_grouping = self.lifecycle, self.escalator, cfg.incidents == self.cfg.incidents
        self.__init__(cfg, alerting)
        self.escalator.carry(escalator)
        self.lifecycle.carry(lifecycle, index=same_grouping)

    # The pipeline's entry points.
    begin_batch = staticmethod(preload_links)  # a batch's posts, before any is placed
    end_batch = staticmethod(write_links)  # after the last is placed

    def place(self, session: Session, post: Post, matches, now: datetime, joined: list[Incident]) -> None:
        self.lifecycle.place(session, post, matches, now, joined)

    def join_original(self, session: Session, post: Post, now: datetime) -> list[Incident]:
        return self.lifecycle.join_original(session, post, now)

    def official(self, session: Session, post: Post, matches, source: str, now: datetime) -> None:
        self.lifecycle.official(session, post, matches, source, now)

    def reply_seen(self, session: Session, incident_id: int, post: Post, now: datetime) -> None:
        self.lifecycle.reply_seen(session, incident_id, post, now)

    def tick(self, session: Session, now: datetime, limit: int = 500) -> int:
        return self.escalator.tick(session, now, limit)

    def heat(self, session: Session, incident: Incident, now: datetime) -> Heat:
        return self.lifecycle.heat(session, incident, now)

    def policy_for(self, severity: str):
        return self.escalator.policy_for(severity)
