"""incidents.related_to: an incident opened as another story of an open incident's event; its
alerts go in that rule's digests

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 02:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('related_to', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_column('related_to')
