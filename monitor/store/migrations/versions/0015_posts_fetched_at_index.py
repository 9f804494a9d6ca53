"""posts.fetched_at index, for retention

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_posts_fetched_at", "posts", ["fetched_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_posts_fetched_at", table_name="posts")
