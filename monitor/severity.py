"""The four grades of 突发事件 used by the plans, most severe first."""

from __future__ import annotations

from typing import Literal

Severity = Literal["特别重大", "重大", "较大", "一般"]
SEVERITIES: tuple[str, ...] = ("特别重大", "重大", "较大", "一般")


def rank(severity: str) -> int:
    """0 for 特别重大 … 3 for 一般; lower is more severe."""
    return SEVERITIES.index(severity)
