"""The reports on cron schedules (the weekly one, and monthly, quarterly and annual ones where
configured), each made and sent exactly once per kind and scheduled time.

Like escalation steps, a run is a row with a unique key (its scheduled time): a run missed
while the daemon was down is made at start; one that fails is retried with back-off and,
when given up, reported to the duty tier. Targets that already have the report are not
sent it again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor import secrets
from monitor.alerts.channels import Channels
from monitor.clock import Clock, backoff, show
from monitor.config import Config
from monitor.cron import latest_fire
from monitor.reports.period import FLAGS, NAMES, last_complete, parse
from monitor.reports.weekly import make_report
from monitor.store.models import ReportRun

log = logging.getLogger(__name__)


# How far back the first look goes: one period, so the latest past run is found and marked
# skipped, and the next one is made (a shorter look would skip a year's first annual report).
LOOK_BACK = {"weekly": timedelta(days=32), "monthly": timedelta(days=32), "quarterly": timedelta(days=93),
             "annual": timedelta(days=367)}


def last_fire_at(cron: str, now: datetime, since: datetime) -> datetime | None:
    """The latest scheduled time in (since, now], or None."""
    return latest_fire(cron, now, since)


class Reporter:
    def __init__(self, cfg: Config, sessions: sessionmaker[Session], channels: Channels | None, clock: Clock):
        self.cfg = cfg
        self.report_cfg = cfg.main.report
        self.sessions = sessions
        self.channels = channels
        self.clock = clock

    @property
    def out_root(self) -> Path:
        configured = self.report_cfg.out_dir
        return self.cfg.resolve(configured) if configured else self.cfg.state_dir / "reports"

    def run_due(self) -> int:
        """Schedule what fell due and work the pending runs; returns how many were sent."""
        self._schedule(self.clock.now())
        sent = 0
        now = self.clock.now()
        with self.sessions() as session:
            due = session.scalars(
                select(ReportRun.id).where(ReportRun.state == "pending", ReportRun.next_attempt_at <= now).order_by(ReportRun.scheduled_at)
            ).all()
        for run_id in due:
            sent += self._attempt(run_id)
        return sent

    def _schedule(self, now: datetime) -> None:
        for kind, cron in self.report_cfg.schedules().items():
            self._schedule_kind(kind, cron, now)

    def _schedule_kind(self, kind: str, cron: str, now: datetime) -> None:
        with self.sessions.begin() as session:
            latest = session.scalar(select(func.max(ReportRun.scheduled_at)).where(ReportRun.kind == kind))
            fire = last_fire_at(cron, now, latest or now - LOOK_BACK[kind])
            if fire is None:
                return
            # The first time this installation looks, a past run is not made up for.
            state = "pending" if latest is not None else "skipped"
            period = last_complete(kind, fire)
            try:
                with session.begin_nested():
                    session.add(ReportRun(
                        kind=kind, scheduled_at=fire, period=period.label, state=state, attempts=0,
                        next_attempt_at=fire, sent_targets=[], files=[],
                        last_error="监测系统在此之后才开始运行" if state == "skipped" else None,
                    ))
            except IntegrityError:
                return  # another instance scheduled it
        if state == "pending":
            log.info("%s %s 到期（计划 %s）", period.name, period.label, show(fire))

    def _attempt(self, run_id: int) -> int:
        now = self.clock.now()
        with self.sessions.begin() as session:
            run = session.get(ReportRun, run_id)
            run.attempts += 1
            kind, label, sent_before, attempts, scheduled = run.kind, run.period, list(run.sent_targets), run.attempts, run.scheduled_at
        name = NAMES[kind]
        error = None
        sent = list(sent_before)
        files: list[Path] = []
        try:
            period = parse(kind, label)
            report, files = make_report(self.sessions, self.cfg.main, period, now, list(self.report_cfg.formats), self.out_root / label)
            attachments = [p for p in files if p.suffix in (".xlsx", ".docx", ".html", ".csv")]
            title = f"{period.name}（{label}，{period.title}）"
            body = "\n".join(report.headline + ["", "附件：" + "、".join(p.name for p in attachments)])
            targets = {t.id: t for tag in self.report_cfg.tags for t in (self.channels.targets(tag) if self.channels else [])}
            if not targets:
                raise RuntimeError(f"标签 {self.report_cfg.tags} 没有任何发送目标")
            failures = []
            for target_id, target in targets.items():
                if target_id in sent:
                    continue
                ok, why = self.channels.send(target_id, title, body, attachments)
                if ok:
                    sent.append(target_id)
                    log.info("%s %s 已发送至 %s", name, label, target.display)
                else:
                    failures.append(f"{target.display}：{why}")
            if failures:
                error = "；".join(failures)
        except Exception as e:  # any failure is retried; the next attempt starts afresh
            log.exception("生成或发送%s %s 失败", name, label)
            error = f"{type(e).__name__}: {e}"

        with self.sessions.begin() as session:
            run = session.get(ReportRun, run_id)
            run.sent_targets, run.files = sent, [str(p) for p in files]
            if error is None:
                run.state, run.finished_at, run.last_error = "sent", now, None
                return 1
            run.last_error = secrets.redact(error)
            if now - scheduled >= self.report_cfg.give_up_after:
                run.state, run.finished_at = "failed", now
                log.error("%s %s 放弃发送（已尝试 %d 次）：%s", name, label, attempts, run.last_error)
                self._report_failure(kind, label, attempts, run.last_error)
            else:
                run.next_attempt_at = (now + backoff(self.report_cfg.retry_base, attempts, timedelta(hours=1)))
                log.warning("%s %s 第 %d 次发送失败，将重试：%s", name, label, attempts, run.last_error)
        return 0

    def _report_failure(self, kind: str, label: str, attempts: int, error: str) -> None:
        """Tell the duty tier: the leaders did not get their report."""
        if self.channels is None:
            return
        flag = FLAGS[kind]
        title = f"{NAMES[kind]}发送失败：{label}"
        body = (f"舆情回应{NAMES[kind]} {label} 已尝试 {attempts} 次仍未发送成功。\n最后错误：{error}\n"
                f"可手动生成：monitor report {kind} --{flag} {label}")
        for tag in self.cfg.main.tier[0].tags:
            for target in self.channels.targets(tag):
                self.channels.send(target.id, title, body)
