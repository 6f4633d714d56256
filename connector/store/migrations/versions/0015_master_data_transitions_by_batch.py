"""master data: its audit rows found by file (a file's end is audited for each record it carries)

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_master_data_transitions_batch_id', 'master_data_transitions', ['batch_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_master_data_transitions_batch_id', table_name='master_data_transitions')
