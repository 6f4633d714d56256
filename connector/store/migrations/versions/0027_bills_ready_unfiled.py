"""a partial index of the READY bills not yet in a file, by tenant and id: a file's claim and the sweeper's
look read those bills only, not the NULL range of batch_id (every bill not yet in a file, with its dead
versions), which PostgreSQL intersected with the (tenant, state) index while a first sync had no
statistics.

Revision ID: 0027
Revises: 0026
"""

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

READY_UNFILED = sa.text("state = 'READY' AND batch_id IS NULL")


def upgrade() -> None:
    op.create_index('ix_bills_ready_unfiled', 'bills', ['tenant_id', 'id'], unique=False,
                    postgresql_where=READY_UNFILED, sqlite_where=READY_UNFILED)


def downgrade() -> None:
    op.drop_index('ix_bills_ready_unfiled', table_name='bills')
