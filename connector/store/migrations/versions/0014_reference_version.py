"""tenants.reference_version: moved by every write to a tenant's contacts or accounts, so a worker's
cached copy of them is checked with one number per bill

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('reference_version', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('reference_version')
