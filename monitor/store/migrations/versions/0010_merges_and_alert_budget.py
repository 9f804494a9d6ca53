"""incidents.merged_into: a merged incident says which one it went into; notifications.held_until:
an alert over the budget, delivered then inside a digest; incidents by (rule, opened_at)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into', sa.Integer(), nullable=True))
        batch_op.create_index('ix_incidents_rule_opened', ['rule', 'opened_at'], unique=False)
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_until', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('held_until')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_rule_opened')
        batch_op.drop_column('merged_into')
