"""The one door into the alerts package for incidents and sources.

They hand over facts (an incident's view and clocks, a step, a source's change) and who
should hear; this module renders them with the office's templates and writes them to the
notification log (`fire`), which delivery then sends exactly once. Nothing below the alerts
package renders a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from monitor.alerts.channels import Channels
from monitor.alerts.log import Alert, fire
from monitor.alerts.render import IncidentView, render_all, render_evidence, render_progress, render_reply, render_source_health
from monitor.alerts.templates import compile_templates
from monitor.clock import show, show_delta
from monitor.config import MainConfig
from monitor.incidents.escalation import ClockState, Step


@dataclass
class Alerting:
    """How fired alerts leave: through channels (daemon), or only into the log (dry run)."""

    channels: Channels | None
    dry_run: bool = False

    @property
    def disposition(self) -> str:
        return "dry_run" if self.dry_run else "sent"


class Notices:
    def __init__(self, cfg: MainConfig, alerting: Alerting):
        self.tier_names = [t.name for t in cfg.tier]
        self.templates = compile_templates(cfg.template_overrides())
        self.alerting = alerting
        web = cfg.web
        self.base_url = web.base_url if web is not None and web.enabled else ""

    def _fire(self, session: Session, alert: Alert, now: datetime, disposition: str | None = None,
              fold_until: datetime | None = None):
        disposition = disposition or self.alerting.disposition
        channels = self.alerting.channels if disposition == "sent" else None
        return fire(session, alert, now, channels, disposition, fold_until=fold_until)

    def opened(self, session: Session, view: IncidentView, clocks: list[ClockState], tier: int, tags, now: datetime,
               fold_until: datetime | None) -> None:
        title, body, markdown = render_all("opened", view, clocks, now, templates=self.templates, base_url=self.base_url)
        alert = Alert(f"{view.id}:opened", view.id, None, "opened", tier, tags, now, title, body, markdown, view.severity)
        self._fire(session, alert, now, fold_until=fold_until)

    def step(self, session: Session, view: IncidentView, clocks: list[ClockState], step: Step, tags, now: datetime,
             disposition: str, fold_until: datetime | None) -> None:
        """A reminder or an escalation; `disposition` "superseded" logs one a higher step replaced."""
        title, body, markdown = render_all(step.kind, view, clocks, now, step, self.tier_names[step.tier], self.templates, self.base_url)
        alert = Alert(step.key, view.id, step.clock, step.kind, step.tier, tags, step.at, title, body, markdown, view.severity)
        self._fire(session, alert, now, disposition, fold_until)

    def progress(self, session: Session, view: IncidentView, clocks: list[ClockState], post_title: str, post_url: str | None,
                 reopened: list[str], wave: datetime, tier: int, tags, now: datetime) -> None:
        """A post joined an incident whose clocks were all answered (once per incident and hour)."""
        title, body = render_progress(view, clocks, post_title, post_url, reopened)
        alert = Alert(f"{view.id}:progress:{wave.isoformat()}", view.id, None, "progress", tier, tags, now, title, body,
                      severity=view.severity)
        self._fire(session, alert, now)

    def evidence(self, session: Session, view: IncidentView, post_id: int, clock: str, source: str, post_title: str,
                 url: str | None, published: datetime, tier: int, tags, now: datetime) -> None:
        """An official channel's release proposed as the incident's answer; its one-tap link takes it."""
        title, body, markdown = render_evidence(view, clock, source, post_title, url, published, self.base_url)
        alert = Alert(f"{view.id}:evidence:{post_id}", view.id, clock, "evidence", tier, tags, now, title, body, markdown,
                      view.severity)
        self._fire(session, alert, now)

    def heat_suggestion(self, session: Session, view: IncidentView, level: str, reason: str, tier: int, tags, now: datetime) -> bool:
        """Heat suggests a higher grade, once per incident and grade; False if it was suggested before."""
        title = f"【{view.severity}】事件 #{view.id} 热度上升，建议调整为「{level}」"
        body = (f"事件：#{view.id} {view.rule}：{view.title}\n热度：{reason}\n"
                f"如同意：monitor incidents regrade {view.id} {level}")
        alert = Alert(f"{view.id}:heat:suggest-{level}", view.id, None, "suggest", tier, tags, now, title, body,
                      severity=view.severity)
        return self._fire(session, alert, now) is not None

    def reply(self, session: Session, view: IncidentView, post_id: int, post_title: str, status: str | None, text: str | None,
              url: str | None, replied_at: datetime, pending: list[str], tier: int, tags, now: datetime) -> None:
        """A board shows an official reply to one of the incident's posts."""
        title, body = render_reply(view, post_title, status, text, url, replied_at, pending)
        alert = Alert(f"{view.id}:reply:{post_id}", view.id, None, "reply", tier, tags, now, title, body, severity=view.severity)
        self._fire(session, alert, now)



def source_health(session: Session, alerting: Alerting, change, row, now: datetime, usual_gap, tags) -> str:
    """A source failing, quiet or back (`change` from sources.health.evaluate, `row` its Source
    row); returns the title, for the log."""
    title, body = render_source_health(change.kind, row.name, row.url, change.since, now, row.consecutive_failures,
                                       row.last_error, row.last_success_at, usual_gap, row.last_new_post_at)
    key = f"source:{row.name}:{change.kind}:{change.episode or change.since.isoformat()}"
    fire(session, Alert(key, None, None, f"source_{change.kind}", 0, tags, now, title, body), now,
         alerting.channels if not alerting.dry_run else None, alerting.disposition)
    return title


def database_outage(session: Session, channels, outage, tags, now: datetime) -> None:
    """An outage that lasted past [database] alert_after, told once it can be recorded (keyed
    by its start, so it is sent once)."""
    title = f"【数据库异常】数据库曾中断 {show_delta(outage.until - outage.since)}，现已恢复"
    body = (f"中断：{show(outage.since)} 至 {show(outage.until)}（北京时间）\n原因：{outage.reason}\n"
            "期间的帖文、事件与告警均已推迟处理，无数据丢失。请检查磁盘空间与数据库服务。")
    fire(session, Alert(f"database:outage:{outage.since.isoformat()}", None, None, "database_outage", 0, tags, now, title, body),
         now, channels)
