"""reconcile_runs: who is working on the run (lease_owner) and until when (lease_until), so a reconcile of
the tenant that arrives meanwhile (beat's daily one, a leg sent twice) does nothing instead of asking Xero
the same questions; a lease that lapsed (its worker died) lets the next reconcile go on with the run.

Revision ID: 0026
Revises: 0025
"""

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reconcile_runs') as batch:
        batch.add_column(sa.Column('lease_owner', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('lease_until', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reconcile_runs') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('lease_owner')
