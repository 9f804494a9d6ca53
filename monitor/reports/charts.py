"""Charts with Chinese labels (matplotlib, Agg). Without a CJK font there are no charts,
and the report says so, rather than boxes where the characters should be."""

from __future__ import annotations

import io
import logging
from functools import lru_cache

from monitor.reports.model import Chart, Report
from monitor.severity import SEVERITIES

log = logging.getLogger(__name__)

# Families that cover Simplified Chinese, most likely first on a Linux server.
CJK_FAMILIES = (
    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
    "Source Han Sans CN", "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC",
)
FONT_HINT = "未找到中文字体，本报告不含图表。安装字体后重新生成即可，例如：apt-get install fonts-wqy-microhei"
SEVERITY_COLORS = {"特别重大": "#8b0000", "重大": "#d62728", "较大": "#ff7f0e", "一般": "#1f77b4"}


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((f for f in CJK_FAMILIES if f in names), None)

    found = known()
    if found is None:
        # matplotlib's font cache predates fonts installed later: look on disk once.
        for path in font_manager.findSystemFonts():
            lowered = path.lower()
            if any(k in lowered for k in ("wqy", "notosanscjk", "noto-cjk", "sourcehan", "uming", "simhei", "msyh")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError):
                    continue
        found = known()
    return found


def _figure(font: str):
    import matplotlib.pyplot as plt

    plt.rcParams["font.sans-serif"] = [font]
    plt.rcParams["axes.unicode_minus"] = False
    return plt.subplots(figsize=(8, 4), dpi=110)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _rate_bars(font: str, title: str, labels: list[str], rates: list[float | None], horizontal: bool) -> bytes:
    fig, ax = _figure(font)
    values = [0 if r is None else r * 100 for r in rates]
    shown = ["无到期" if r is None else f"{r:.0%}" for r in rates]
    if horizontal:
        fig.set_size_inches(8, max(2.5, 0.45 * len(labels) + 1))
        bars = ax.barh(labels[::-1], values[::-1], color="#2b7bba")
        ax.set_xlim(0, 110)
        ax.set_xlabel("按时率（%）")
        for bar, text in zip(bars, shown[::-1]):
            ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=9)
    else:
        bars = ax.bar(labels, values, color="#2b7bba")
        ax.set_ylim(0, 110)
        ax.set_ylabel("按时率（%）")
        for bar, text in zip(bars, shown):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 1, text, ha="center", fontsize=9)
    ax.set_title(title)
    return _png(fig)


def make_charts(report: Report) -> None:
    font = cjk_font()
    if font is None:
        report.font_note = FONT_HINT
        log.warning(FONT_HINT)
        return
    daily = report.table("daily")
    fig, ax = _figure(font)
    days = [row[0] if isinstance(row[0], str) else row[0].strftime("%m-%d") for row in daily.rows]
    bottom = [0] * len(days)
    for i, severity in enumerate(SEVERITIES, start=1):
        counts = [row[i] for row in daily.rows]
        ax.bar(days, counts, bottom=bottom, label=severity, color=SEVERITY_COLORS[severity])
        bottom = [b + c for b, c in zip(bottom, counts)]
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{daily.title[:2]}新增舆情事件（按级别）")
    ax.set_ylabel("事件数")
    ax.legend(ncol=4, fontsize=9)
    report.charts.append(Chart("daily", f"{daily.title[:2]}新增舆情事件（按级别）", _png(fig)))

    clocks = report.table("clocks")
    report.charts.append(Chart("clocks", "各回应时限按时率", _rate_bars(
        font, "各回应时限按时率", [r[0] for r in clocks.rows], [r[7] for r in clocks.rows], horizontal=False)))
    departments = [r for r in report.table("department").rows if r[2]]
    if departments:
        report.charts.append(Chart("department", "各责任部门按时率", _rate_bars(
            font, "各责任部门按时率", [r[0] for r in departments[:20]], [r[6] for r in departments[:20]], horizontal=True)))
