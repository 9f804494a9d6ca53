"""Tables. Every incident change is an Event row (the audit trail).

Times are stored as UTC without a zone and read back as aware UTC datetimes (`UTCDateTime`):
code never converts by hand, and a naive time never meets an aware one in Python."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """A DateTime column holding UTC: aware datetimes in, aware UTC datetimes out. A naive value
    given to it is taken as UTC already (what SQL functions and old rows hand back)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite through a raw expression
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# The values a state or kind column may hold, checked by the database too (a CHECK constraint;
# plain strings in Python, so `incident.state == "closed"` reads as before).
INCIDENT_STATES = ("open", "acknowledged", "closed")
OUTBOX_STATES = ("pending", "sending", "sent", "failed", "digest", "dropped")
DISPOSITIONS = ("sent", "superseded", "dry_run")
NOTIFICATION_KINDS = ("opened", "reminder", "escalation", "progress", "suggest", "reply", "handoff",
                      "source_failing", "source_quiet", "source_recovered", "channel_failing", "database_outage",
                      "evidence")  # evidence: an official channel's release proposed as an incident's answer
SOURCE_KINDS = ("feed", "json", "html", "replay")  # replay: posts read by `monitor replay`
HEALTH_STATES = ("ok", "failing", "quiet")
REPORT_STATES = ("pending", "sent", "failed", "skipped")  # skipped: due before the monitor first ran
ROLES = ("值班员", "科室负责人", "分管领导", "管理员")


def choice(name: str, values: tuple[str, ...]) -> Enum:
    return Enum(*values, name=name, native_enum=False, create_constraint=True, length=20, validate_strings=True)


class Base(DeclarativeBase):
    pass


class Source(Base):
    __tablename__ = "sources"
    # The due sources, longest overdue first, read as a range on every dispatch.
    __table_args__ = (Index("ix_sources_next_poll", "next_poll_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(choice("ck_sources_kind", SOURCE_KINDS), default="feed")
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_new_post_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    posts_total: Mapped[int] = mapped_column(Integer, default=0)
    # Moving average of seconds between polls that brought new items: "usual" for quiet alerts.
    new_item_gap_s: Mapped[float | None] = mapped_column(Float)
    # ok | failing | quiet, and since when: one alert per episode, keyed by its start.
    health_state: Mapped[str] = mapped_column(choice("ck_sources_health_state", HEALTH_STATES), default="ok", server_default="ok")
    health_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which instance is polling it, until when (sources/poll.py: Poller.due).
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Its posts say which post they repost (Weibo's API, a replay input), so one that reposts
    # nothing is its author's own: event clustering keeps it a chain of its own (cluster.py).
    links_reposts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id", name="uq_posts_source_external"),
        Index("ix_posts_unprocessed", "processed_at"),
        # retention (the oldest first) and reports (posts per source in a period, from the index alone)
        Index("ix_posts_fetched_source", "fetched_at", "source_id"),
        # reports: board messages (posts that show a reply state) of a period
        Index("ix_posts_board", "fetched_at", sqlite_where=text("replied IS NOT NULL"), postgresql_where=text("replied IS NOT NULL")),
        Index("ix_posts_reply_pending", "replied", "reply_recorded_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    external_id: Mapped[str] = mapped_column(String(512))
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Instances on one PostgreSQL match different posts: a batch is claimed first (pipeline.py).
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once matching and incident assignment committed; NULL means still to do.
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set with processed_at when a post was set aside after max_attempts failures.
    process_error: Mapped[str | None] = mapped_column(Text)
    process_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Why the published time was not believed (far future, before 2000): the fetch time counts.
    time_note: Mapped[str | None] = mapped_column(Text)
    # Boards that show an official reply (待回复 / 已办理): the post carries it, and the reply
    # stage records it on the post's incidents; reply_recorded_at NULL means still to do.
    reply_status: Mapped[str | None] = mapped_column(String(100))
    replied: Mapped[bool | None] = mapped_column(Boolean)
    reply_text: Mapped[str | None] = mapped_column(Text)
    reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    repost_of: Mapped[str | None] = mapped_column(String(512))


class Match(Base):
    __tablename__ = "matches"
    __table_args__ = (UniqueConstraint("post_id", "rule", name="uq_matches_post_rule"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    rule: Mapped[str] = mapped_column(String(200))
    terms: Mapped[list] = mapped_column(JSON)
    severity: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(200), default="")
    department: Mapped[str] = mapped_column(String(200), default="")
    # Why it matched: term positions, rejected occurrences, exclusions and groups checked.
    explanation: Mapped[dict | None] = mapped_column(JSON)


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        # The open incident of a rule, newest first: walk this index down and stop at the first
        # that is not closed (state != 'closed' cannot use an index column).
        Index("ix_incidents_rule_last_post", "rule", "last_post_at"),
        Index("ix_incidents_next_step", "next_step_at"),
        Index("ix_incidents_rule_opened", "rule", "opened_at"),  # the alert budget counts a rule's new ones
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(200), default="")
    department: Mapped[str] = mapped_column(String(200), default="")
    # open → acknowledged → closed
    state: Mapped[str] = mapped_column(choice("ck_incidents_state", INCIDENT_STATES), default="open", index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)  # clocks count from here
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_post_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when an officer merged this incident into another: it is closed, and says where to.
    merged_into: Mapped[int | None] = mapped_column(Integer)
    # another story of the event an open incident is about (event mode): its alerts are digested
    related_to: Mapped[int | None] = mapped_column(Integer)
    false_positive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # 误报: closed, counted apart
    terms: Mapped[list] = mapped_column(JSON, default=list)
    first_post_url: Mapped[str | None] = mapped_column(Text)
    post_count: Mapped[int] = mapped_column(Integer, default=0)
    # When the escalation tick next has work for this incident: found by index, not scan.
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    clocks: Mapped[list[ResponseClock]] = relationship(
        back_populates="incident", order_by="ResponseClock.due_at", lazy="selectin"
    )


class IncidentPost(Base):
    __tablename__ = "incident_posts"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ResponseClock(Base):
    """One response deadline of an incident (发布权威信息 in 5 h, 权威回应 in 48 h, …)."""

    __tablename__ = "response_clocks"
    __table_args__ = (UniqueConstraint("incident_id", "name", name="uq_response_clocks_incident_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    name: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    met_by: Mapped[str | None] = mapped_column(String(200))
    evidence: Mapped[str | None] = mapped_column(Text)
    # A regrade can make a clock no longer apply; it is kept, not deleted, for the record.
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    incident: Mapped[Incident] = relationship(back_populates="clocks")


class ClockChange(Base):
    """A response clock as it stood from `at` on, one row per change (planned, moved, stopped
    by a regrade, met). Reports read clocks as they stood at a period's end from these, so a
    regrade or a merge made later does not rewrite a period already reported."""

    __tablename__ = "clock_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_id: Mapped[int] = mapped_column(ForeignKey("response_clocks.id"), index=True)
    incident_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    clock: Mapped[ResponseClock] = relationship()


class Event(Base):
    __tablename__ = "events"
    # The daemon asks "any merge or split since I last looked?" once per batch.
    __table_args__ = (Index("ix_events_kind_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class Notification(Base):
    """The notification log: one row per fired step; its unique key makes firing happen once."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    # NULL for alerts about the system itself (a source failing or gone quiet).
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    clock: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(choice("ck_notifications_kind", NOTIFICATION_KINDS))
    # the incident's level when fired (NULL: about the system, or fired before migration 0012)
    severity: Mapped[str | None] = mapped_column(String(20))
    tier: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list] = mapped_column(JSON)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # sent | superseded (a later step of the same clock and tier was due at once) | dry_run
    disposition: Mapped[str] = mapped_column(choice("ck_notifications_disposition", DISPOSITIONS), default="sent")
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    body_md: Mapped[str | None] = mapped_column(Text)  # markdown, for DingTalk, WeCom, Feishu
    # Over the alert budget ([alerts] new_incidents_per_hour): delivered then, inside a digest.
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Outbox(Base):
    """One delivery per (notification, target); retried until delivered or given up."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("notification_id", "target", name="uq_outbox_notification_target"),
        Index("ix_outbox_pending", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    target: Mapped[str] = mapped_column(String(64))  # sha256 of the apprise URL: no secret stored
    target_display: Mapped[str] = mapped_column(Text)  # apprise's privacy form of the URL
    tag: Mapped[str] = mapped_column(String(100))
    # pending | sending | sent | digest | failed (given up) | no_target | dropped (a held repeat, answered first)
    state: Mapped[str] = mapped_column(choice("ck_outbox_state", OUTBOX_STATES), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)


class ReportRun(Base):
    """One scheduled report: its kind and scheduled time, unique, make it run once across restarts."""

    __tablename__ = "report_runs"
    __table_args__ = (UniqueConstraint("kind", "scheduled_at", name="uq_report_runs_kind_scheduled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="weekly", server_default="weekly")  # weekly | monthly | quarterly | annual
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    period: Mapped[str] = mapped_column(String(40))
    # pending | sent | failed (given up) | skipped (before this installation ran)
    state: Mapped[str] = mapped_column(choice("ck_report_runs_state", REPORT_STATES), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_targets: Mapped[list] = mapped_column(JSON, default=list)  # who has it, so a retry skips them
    files: Mapped[list] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A console account. The password is an argon2 hash; `epoch` goes up on a reset or a
    disable, which ends every session signed with the old one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(choice("ck_users_role", ROLES))
    department: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)  # since the last success
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A per-user token for the JSON API (the office's OA system); only its sha256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class UsedLink(Base):
    """A one-tap link that has acted: its delivery's id, so a second tap changes nothing."""

    __tablename__ = "used_links"

    outbox_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    incident_id: Mapped[int] = mapped_column(Integer)
