"""Making the weekly report: collect → charts → files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from monitor.config import MainConfig
from monitor.reports.charts import make_charts
from monitor.reports.collect import collect
from monitor.reports.model import Report
from monitor.reports.period import Period
from monitor.reports.render import write_all


def make_report(
    sessions: sessionmaker[Session], cfg: MainConfig, period: Period, now: datetime, formats: list[str], out: Path
) -> tuple[Report, list[Path]]:
    with sessions() as session:
        report = collect(session, cfg, period, now)
    if {"xlsx", "docx", "html"} & set(formats):
        make_charts(report)
    return report, write_all(report, out, formats)
