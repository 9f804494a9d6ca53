"""clocks → response_clocks (a table named for what it holds, beside the time protocol Clock);
state and kind columns checked by the database (CHECK constraints on the values the code writes)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 05:00:00
"""

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# (table, column, constraint, values): kept here, not imported, so the migration stays as written.
CHECKED = [
    ('sources', 'kind', 'ck_sources_kind', ('feed', 'json', 'html', 'replay')),
    ('sources', 'health_state', 'ck_sources_health_state', ('ok', 'failing', 'quiet')),
    ('incidents', 'state', 'ck_incidents_state', ('open', 'acknowledged', 'closed')),
    ('notifications', 'kind', 'ck_notifications_kind',
     ('opened', 'reminder', 'escalation', 'progress', 'suggest', 'reply', 'handoff',
      'source_failing', 'source_quiet', 'source_recovered', 'channel_failing', 'database_outage')),
    ('notifications', 'disposition', 'ck_notifications_disposition', ('sent', 'superseded', 'dry_run')),
    ('outbox', 'state', 'ck_outbox_state', ('pending', 'sending', 'sent', 'failed', 'digest', 'dropped')),
    ('report_runs', 'state', 'ck_report_runs_state', ('pending', 'sent', 'failed', 'skipped')),
]


def _rename_clocks(old: str, new: str) -> None:
    op.rename_table(old, new)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'ALTER TABLE {new} RENAME CONSTRAINT uq_{old}_incident_name TO uq_{new}_incident_name')
    else:  # SQLite keeps a constraint's name with the table: rebuild it under the new one
        with op.batch_alter_table(new, recreate='always') as batch_op:
            batch_op.drop_constraint(f'uq_{old}_incident_name', type_='unique')
            batch_op.create_unique_constraint(f'uq_{new}_incident_name', ['incident_id', 'name'])


def upgrade() -> None:
    _rename_clocks('clocks', 'response_clocks')
    for table in dict.fromkeys(t for t, *_ in CHECKED):
        with op.batch_alter_table(table) as batch_op:
            for t, column, name, values in CHECKED:
                if t == table:
                    allowed = ', '.join(f"'{v}'" for v in values)
                    batch_op.create_check_constraint(name, f'{column} IN ({allowed})')


def downgrade() -> None:
    for table in dict.fromkeys(t for t, *_ in CHECKED):
        with op.batch_alter_table(table) as batch_op:
            for t, _column, name, _values in CHECKED:
                if t == table:
                    batch_op.drop_constraint(name, type_='check')
    _rename_clocks('response_clocks', 'clocks')
