"""webhook inbox: signed Xero payloads accepted once each, and per tenant what it heard and its planned wake

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhook_inbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('first_event_sequence', sa.Integer(), nullable=True),
    sa.Column('last_event_sequence', sa.Integer(), nullable=True),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=32), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('body_sha256')
    )
    op.create_table('webhook_heard',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('known', sa.Boolean(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inbox_id'], ['webhook_inbox.id']),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhook_heard_tenant', 'webhook_heard', ['tenant_id', 'received_at'])
    op.create_table('webhook_tenants',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('wake_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
    sa.PrimaryKeyConstraint('tenant_id')
    )


def downgrade() -> None:
    op.drop_table('webhook_tenants')
    op.drop_index('ix_webhook_heard_tenant', table_name='webhook_heard')
    op.drop_table('webhook_heard')
    op.drop_table('webhook_inbox')
