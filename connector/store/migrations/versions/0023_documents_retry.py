"""bills held for a document Xero failed to serve are tried again on a backoff: the failures in a row
and when the next try is due, indexed for the poll's upkeep (its tenant's bills due, one range). Bills
already held for a document are due at once (their next poll tries them, as before).

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bills') as batch:
        batch.add_column(sa.Column('documents_failures', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('documents_retry_at', sa.DateTime(), nullable=True))
    op.create_index('ix_bills_documents_retry', 'bills', ['tenant_id', 'documents_retry_at'], unique=False)
    op.execute("UPDATE bills SET documents_retry_at = '2000-01-01 00:00:00' "
               "WHERE state = 'HELD' AND CAST(reasons AS TEXT) LIKE '%\"attachment_unavailable\"%'")


def downgrade() -> None:
    op.drop_index('ix_bills_documents_retry', table_name='bills')
    with op.batch_alter_table('bills') as batch:
        batch.drop_column('documents_retry_at')
        batch.drop_column('documents_failures')
