"""reconcile_seen: the delivered bills a paged reconcile found on its pages, so those no page returned
are read back by IDs= at the run's end (a large tenant's reconcile pages its bills instead of reading
every delivered bill by IDs=, when that costs fewer calls)

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'reconcile_seen',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('invoice_id', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id', 'invoice_id'),
    )


def downgrade() -> None:
    op.drop_table('reconcile_seen')
