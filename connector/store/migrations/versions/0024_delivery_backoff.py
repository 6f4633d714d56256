"""a batch's delivery backoff gets a column of its own (`backoff_until`), apart from `next_attempt_at`
(when the sweeper looks again, which a master-data file that waits for an earlier one also sets): a lease
is refused until the backoff is over, so a second message for the batch (the broker redelivering, the
sweeper) cannot try it again early. Batches backing off at the upgrade are not guarded until their next
failure.

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches') as batch:
        batch.add_column(sa.Column('backoff_until', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('batches') as batch:
        batch.drop_column('backoff_until')
