"""The report as plain tables: every output format renders the same Tables (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.reports.period import Period

# Column kinds tell renderers how to show and store a value.
TEXT, INT, PCT, CHANGE, HOURS, MINUTES, TIME, DATE = "text", "int", "pct", "change", "hours", "minutes", "time", "date"


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = TEXT
    width: int = 12  # characters, for Excel and Word


@dataclass
class Table:
    key: str  # ASCII: sheet and CSV file name
    title: str
    columns: list[Column]
    rows: list[list] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    png: bytes


@dataclass
class Report:
    period: Period
    previous: Period
    generated_at: datetime
    headline: list[str]  # the few sentences an office leader reads first
    tables: list[Table]
    charts: list[Chart] = field(default_factory=list)
    font_note: str = ""  # set when charts had no CJK font

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)
