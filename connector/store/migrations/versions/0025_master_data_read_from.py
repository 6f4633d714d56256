"""master-data kinds remember when their last finished assemble began reading the ledger: every record
stored before then is in a committed file, so a full-files ask may send the bills READY before it while
the tenant's bills still map.

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('master_data_settings') as batch:
        batch.add_column(sa.Column('read_from', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('master_data_settings') as batch:
        batch.drop_column('read_from')
