"""Configuration: TOML files validated at start, errors that name file, line and key.

Two files by contract: the main config (`config/monitor.toml`) and the watchword rules
(`[[rule]]` tables, in their own file). Relative paths inside a file are relative to that
file's folder. Secrets never live here in clear if the operator does not want them to:
the database URL can come from an environment variable or a file (systemd credentials).

A package: `base` (errors, models, Duration), one module per part of the main file
(`sources`, `incidents`, `alerting`, `main`), `rules` (the watchword files), `loading`
(reading, validating, locating errors with `locate`).
"""

from __future__ import annotations

from monitor.config.alerting import Tier, DEFAULT_TIERS, WEEKDAYS, Person, Shift, QuietHours, SeverityPolicy, EscalationConfig, AlertsConfig, TemplateTexts
from monitor.config.base import ConfigError, repeated, Duration, MaybeDuration
from monitor.config.incidents import ClockRule, HeatRule, CalendarConfig, DEFAULT_CLOCKS, IncidentConfig, MatchingConfig
from monitor.config.loading import Config, resolve_database_url, expand_rule_paths, load_rules, load
from monitor.config.main import DatabaseConfig, DaemonConfig, ReportConfig, RetentionConfig, DemoConfig, MainConfig
from monitor.config.rules import Boundary, TermEntry, FieldCounts, TermLike, NearSpec, WatchRule, RuleFile
from monitor.config.web import MetricsConfig, Permissions, WebConfig
from monitor.config.sources import HostPoliteness, HttpConfig, FieldMap, SourceConfig, SourceFile, HealthConfig

__all__ = [
    "Permissions",
    "WebConfig",
    "MetricsConfig",
    "RetentionConfig",
    "ConfigError",
    "repeated",
    "Duration",
    "MaybeDuration",
    "HostPoliteness",
    "HttpConfig",
    "FieldMap",
    "SourceConfig",
    "SourceFile",
    "HealthConfig",
    "ClockRule",
    "HeatRule",
    "CalendarConfig",
    "DEFAULT_CLOCKS",
    "IncidentConfig",
    "MatchingConfig",
    "Tier",
    "DEFAULT_TIERS",
    "WEEKDAYS",
    "Person",
    "Shift",
    "QuietHours",
    "SeverityPolicy",
    "EscalationConfig",
    "AlertsConfig",
    "TemplateTexts",
    "Boundary",
    "TermEntry",
    "FieldCounts",
    "TermLike",
    "NearSpec",
    "WatchRule",
    "RuleFile",
    "DatabaseConfig",
    "DaemonConfig",
    "ReportConfig",
    "DemoConfig",
    "MainConfig",
    "Config",
    "resolve_database_url",
    "expand_rule_paths",
    "load_rules",
    "load",
]
