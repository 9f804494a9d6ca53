"""notifications.severity: the incident's level when the alert fired, so delivery can send the
most urgent first and keep 特别重大 out of digests whatever a template makes of the title

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:10:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('severity', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('severity')
