"""post claims: instances on one PostgreSQL match different posts

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
