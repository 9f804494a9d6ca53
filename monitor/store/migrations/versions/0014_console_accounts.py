"""Console accounts (users, API tokens), one-tap links already used, and 误报 on incidents

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

ROLES = ('值班员', '科室负责人', '分管领导', '管理员')


def upgrade() -> None:
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(100), nullable=False, unique=True),
        sa.Column('role', sa.Enum(*ROLES, name='ck_users_role', native_enum=False, create_constraint=True, length=20),
                  nullable=False),
        sa.Column('department', sa.String(200), nullable=False),
        sa.Column('password_hash', sa.Text(), nullable=False),
        sa.Column('disabled', sa.Boolean(), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_login_at', sa.DateTime(), nullable=True),
    )
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id'), nullable=False, index=True),
        sa.Column('digest', sa.String(64), nullable=False, unique=True),
        sa.Column('label', sa.String(200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked', sa.Boolean(), nullable=False),
    )
    op.create_table(
        'used_links',
        sa.Column('outbox_id', sa.Integer(), primary_key=True),
        sa.Column('used_at', sa.DateTime(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
    )
    with op.batch_alter_table('incidents') as batch_op:
        batch_op.add_column(sa.Column('false_positive', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('incidents') as batch_op:
        batch_op.drop_column('false_positive')
    op.drop_table('used_links')
    op.drop_table('api_tokens')
    op.drop_table('users')
