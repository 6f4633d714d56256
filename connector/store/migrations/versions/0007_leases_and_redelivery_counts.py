"""leases and redelivery counts: poll leases, map attempts, sent marks, broker epochs

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('poll_lease_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('poll_runs', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('poll_parked_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('map_sent_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('map_started_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('map_runs', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('abandoned_attempts', sa.Integer(), nullable=False, server_default='0'))
    op.create_table('broker_epochs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.String(length=64), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('epoch')
    )


def downgrade() -> None:
    op.drop_table('broker_epochs')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('abandoned_attempts')
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_column('map_runs')
        batch_op.drop_column('map_started_at')
        batch_op.drop_column('map_sent_at')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('poll_parked_reason')
        batch_op.drop_column('poll_runs')
        batch_op.drop_column('poll_lease_until')
