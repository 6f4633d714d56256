"""stampli templates per tenant and sidecars

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sidecar', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('template')

    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('sidecar')

