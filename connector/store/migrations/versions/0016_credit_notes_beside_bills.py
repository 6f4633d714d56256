"""credit notes beside bills: each row of bills is a bill or a supplier credit note (document_type)

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bills') as batch_op:
        batch_op.add_column(sa.Column('document_type', sa.String(length=16), nullable=False,
                                      server_default='BILL'))


def downgrade() -> None:
    with op.batch_alter_table('bills') as batch_op:
        batch_op.drop_column('document_type')
