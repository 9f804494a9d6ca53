"""What a person reads about an incident: its state, its timeline's entries, stored times in
Beijing time. The CLI and the console print the same words."""

from __future__ import annotations

import re
from datetime import datetime

from monitor.clock import show

STATES = {"open": "待处置", "acknowledged": "已确认", "closed": "已关闭"}

EVENT_NAMES = {
    "opened": "新建事件",
    "post_added": "新增帖文",
    "acknowledged": "确认收到",
    "clock_met": "登记回应",
    "closed": "关闭",
    "false_positive": "标记为误报",
    "regraded": "调整级别",
    "start_moved": "起算时间调整（发现更早的帖文，或拆出了首条帖文）",
    "merged": "其他事件并入本事件",
    "merged_into": "已并入其他事件",
    "reopened": "新一轮舆情，重新计时",
    "split_out": "拆出帖文",
    "split_from": "由拆分产生",
    "reply_seen": "留言板官方答复",
    "evidence_proposed": "官方渠道发布（拟作为回应）",
    "heat": "热度",
}


def state_name(inc) -> str:
    if inc.merged_into:
        return f"已并入 #{inc.merged_into}"
    if inc.false_positive:
        return "误报"
    return STATES.get(inc.state, inc.state)


_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def beijing(value):
    """A timeline entry's data with its stored (UTC) times as a person reads them."""
    if isinstance(value, dict):
        return {k: beijing(v) for k, v in value.items()}
    if isinstance(value, list):
        return [beijing(v) for v in value]
    if isinstance(value, str) and _ISO.match(value):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
        return show(at) if at.tzinfo is not None else value  # stored times carry their offset
    return value
