"""supplier documents: what Xero lists as each bill's attachments, and each attachment fetched (bytes, sha256)

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attachment_listings',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('listed', sa.JSON(), nullable=False),
    sa.Column('listed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'invoice_id')
    )
    op.create_table('attachments',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('attachment_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.String(length=1000), nullable=False),
    sa.Column('mime_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('fetched_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'attachment_id')
    )
    op.create_index('ix_attachments_tenant_invoice', 'attachments', ['tenant_id', 'invoice_id'])


def downgrade() -> None:
    op.drop_index('ix_attachments_tenant_invoice', table_name='attachments')
    op.drop_table('attachments')
    op.drop_table('attachment_listings')
