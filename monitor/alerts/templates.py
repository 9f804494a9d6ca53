"""Alert templates (Jinja2). Chinese by default; an office may rewrite any of them in
[templates.<kind>] with title, body (plain text) and markdown (DingTalk, WeCom, Feishu).

The context carries everything an officer needs, ready to print:
  incident: id, rule, title, severity, category, department, terms (list), url,
            post_count, opened (Beijing time), acked (bool)
  clocks:   name, due, status ("剩余 2小时" / "已超时 1小时" / "已于 … 完成"), line
  step:     kind, clock, tier, overdue ("已超时 1小时" / "已到截止时间"), left, waited
  ack_command, met_command, now
  links:    incident (the console's page), ack (a one-tap link, each recipient's own);
            None when [web] base_url is not set
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, StrictUndefined, TemplateSyntaxError

KINDS = ("opened", "reminder", "escalation", "unacked")

_BODY = """事件：#{{ incident.id }} {{ incident.rule }}（{{ incident.severity }}）
首条：{{ incident.title }}
{% if incident.category or incident.department %}分类：{{ incident.category or '—' }}　责任部门：{{ incident.department or '—' }}
{% endif %}命中词：{{ incident.terms | join('、') or '—' }}
相关帖文：{{ incident.post_count }} 条　发现时间：{{ incident.opened }}
{% if incident.url %}链接：{{ incident.url }}
{% endif %}回应时限（北京时间）：
{% for c in clocks %}{{ c.line }}
{% endfor %}{% if step and step.kind == 'escalation' %}已升级至：{{ step.tier }}
{% endif %}{% if links %}{% if not incident.acked %}一键确认：{{ links.ack }}
{% endif %}查看与登记回应：{{ links.incident }}{% else %}{% if not incident.acked %}确认收到：{{ ack_command }}
{% endif %}登记回应：{{ met_command }}{% endif %}"""

_MARKDOWN = """### {{ title }}
- **事件**：#{{ incident.id }} {{ incident.rule }}（**{{ incident.severity }}**）
- **首条**：{% if incident.url %}[{{ incident.title }}]({{ incident.url }}){% else %}{{ incident.title }}{% endif %}
- **责任部门**：{{ incident.department or '—' }}　**分类**：{{ incident.category or '—' }}
- **命中词**：{{ incident.terms | join('、') or '—' }}
- **相关帖文**：{{ incident.post_count }} 条，发现于 {{ incident.opened }}

**回应时限（北京时间）**
{% for c in clocks %}
- {{ c.name }}：{{ c.due }} 截止，**{{ c.status }}**
{%- endfor %}
{% if step and step.kind == 'escalation' %}
**已升级至：{{ step.tier }}**
{% endif %}
{% if links %}{% if not incident.acked %}[**✅ 一键确认收到**]({{ links.ack }})　{% endif %}[查看与登记回应]({{ links.incident }})
{% else %}{% if not incident.acked %}> 确认收到：`{{ ack_command }}`
{% endif %}> 登记回应：`{{ met_command }}`{% endif %}"""

DEFAULTS = {
    "opened": {"title": "【{{ incident.severity }}】新舆情事件 #{{ incident.id }}：{{ incident.rule }}"},
    "reminder": {"title": "【{{ incident.severity }}】回应时限提醒 #{{ incident.id }}：{{ step.clock }}剩余 {{ step.left }}"},
    "escalation": {"title": "【{{ incident.severity }}】回应超时升级 #{{ incident.id }}：{{ step.clock }}{{ step.overdue }}"},
    "unacked": {"title": "【{{ incident.severity }}】无人确认升级 #{{ incident.id }}：{{ incident.rule }}发现 {{ step.waited }} 仍未确认"},
}

_ENV = Environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


@dataclass(frozen=True)
class Templates:
    compiled: dict  # kind -> {"title": Template, "body": Template, "markdown": Template}

    def render(self, kind: str, context: dict) -> tuple[str, str, str]:
        t = self.compiled[kind]
        title = t["title"].render(**context).strip()
        body = t["body"].render(**context).strip()
        markdown = t["markdown"].render(title=title, **context).strip()
        return title, body, markdown


def compile_templates(overrides: dict[str, dict[str, str]] | None = None) -> Templates:
    """Defaults, with an office's own texts over them. Raises ValueError naming the template."""
    compiled = {}
    for kind in KINDS:
        sources = {"title": DEFAULTS[kind]["title"], "body": _BODY, "markdown": _MARKDOWN}
        sources.update((overrides or {}).get(kind, {}))
        compiled[kind] = {}
        for part, source in sources.items():
            try:
                compiled[kind][part] = _ENV.from_string(source)
            except TemplateSyntaxError as e:
                raise ValueError(f"[templates.{kind}] {part} 模板有误（第 {e.lineno} 行）：{e.message}") from None
    return Templates(compiled)


DEFAULT_TEMPLATES = compile_templates()
