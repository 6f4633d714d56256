"""bills by state and id: the sweeper reads the DISCOVERED bills a chunk at a time in id order (keyset),
each chunk one range of this index whatever the ledger's size or its statistics

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_bills_state_id', 'bills', ['state', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_bills_state_id', table_name='bills')
