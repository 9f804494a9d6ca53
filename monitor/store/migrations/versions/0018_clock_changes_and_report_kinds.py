"""clock changes (reports read clocks as they stood at a period's end), report kinds
(weekly, monthly, quarterly and annual runs, each once per scheduled time), and the
evidence notification (an official channel's release proposed as an incident's answer)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _report_runs(unique: tuple[str, ...]) -> sa.Table:
    """report_runs as SQLite's copy-and-move rebuilds it: its unique key was unnamed, so it
    cannot be dropped by name, and the table is described here instead of reflected."""
    return sa.Table(
        "report_runs", sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        *([sa.Column("kind", sa.String(20), nullable=False, server_default="weekly")] if "kind" in unique else []),
        sa.Column("scheduled_at", sa.DateTime(), nullable=False),
        sa.Column("period", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("sent_targets", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed', 'skipped')", name="ck_report_runs_state"),
        sa.UniqueConstraint(*unique, name="uq_report_runs_" + "_".join(unique)),
    )


NOTIFICATION_KINDS = ('opened', 'reminder', 'escalation', 'progress', 'suggest', 'reply', 'handoff',
                      'source_failing', 'source_quiet', 'source_recovered', 'channel_failing', 'database_outage')


def _notification_kinds(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("ck_notifications_kind", type_="check")
        batch.create_check_constraint("ck_notifications_kind", "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")")


def upgrade() -> None:
    _notification_kinds(NOTIFICATION_KINDS + ("evidence",))
    # Reports count a period's posts per source from the index alone, and find its board messages.
    op.drop_index("ix_posts_fetched_at", table_name="posts")
    op.create_index("ix_posts_fetched_source", "posts", ["fetched_at", "source_id"])
    op.create_index("ix_posts_board", "posts", ["fetched_at"], sqlite_where=sa.text("replied IS NOT NULL"),
                    postgresql_where=sa.text("replied IS NOT NULL"))
    # The polling engine reads the due sources as a range of next_poll_at on every dispatch.
    op.create_index("ix_sources_next_poll", "sources", ["next_poll_at"])
    op.create_table(
        "clock_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clock_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("met_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["clock_id"], ["response_clocks.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_clock_changes_clock_id", "clock_changes", ["clock_id"])
    op.create_index("ix_clock_changes_incident_id", "clock_changes", ["incident_id"])
    # Clocks from before: their state now, from the incident's opening (a met time later than
    # a period's end still reads as not met then).
    op.execute(
        "INSERT INTO clock_changes (clock_id, incident_id, at, active, started_at, due_at, met_at) "
        "SELECT c.id, c.incident_id, i.opened_at, c.active, c.started_at, c.due_at, c.met_at "
        "FROM response_clocks c JOIN incidents i ON i.id = c.incident_id"
    )

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("report_runs", copy_from=_report_runs(("scheduled_at",)), recreate="always") as batch:
            batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="weekly"))
            batch.drop_constraint("uq_report_runs_scheduled_at", type_="unique")
            batch.create_unique_constraint("uq_report_runs_kind_scheduled_at", ["kind", "scheduled_at"])
    else:
        for uc in sa.inspect(bind).get_unique_constraints("report_runs"):
            if uc["column_names"] == ["scheduled_at"]:
                op.drop_constraint(uc["name"], "report_runs", type_="unique")
        op.add_column("report_runs", sa.Column("kind", sa.String(20), nullable=False, server_default="weekly"))
        op.create_unique_constraint("uq_report_runs_kind_scheduled_at", "report_runs", ["kind", "scheduled_at"])


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE notification_id IN (SELECT id FROM notifications WHERE kind = 'evidence')")
    op.execute("DELETE FROM notifications WHERE kind = 'evidence'")
    _notification_kinds(NOTIFICATION_KINDS)
    bind = op.get_bind()
    op.execute("DELETE FROM report_runs WHERE kind <> 'weekly'")
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("report_runs", copy_from=_report_runs(("kind", "scheduled_at")), recreate="always") as batch:
            batch.drop_constraint("uq_report_runs_kind_scheduled_at", type_="unique")
            batch.drop_column("kind")
            batch.create_unique_constraint("uq_report_runs_scheduled_at", ["scheduled_at"])
    else:
        op.drop_constraint("uq_report_runs_kind_scheduled_at", "report_runs", type_="unique")
        op.drop_column("report_runs", "kind")
        op.create_unique_constraint("uq_report_runs_scheduled_at", "report_runs", ["scheduled_at"])
    op.drop_index("ix_sources_next_poll", table_name="sources")
    op.drop_index("ix_posts_board", table_name="posts")
    op.drop_index("ix_posts_fetched_source", table_name="posts")
    op.create_index("ix_posts_fetched_at", "posts", ["fetched_at"])
    op.drop_index("ix_clock_changes_incident_id", table_name="clock_changes")
    op.drop_index("ix_clock_changes_clock_id", table_name="clock_changes")
    op.drop_table("clock_changes")
