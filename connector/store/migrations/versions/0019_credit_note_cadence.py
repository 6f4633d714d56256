"""tenants.credit_notes_read_at and credit_notes_asked_at: supplier credit notes are read on their own
cadence, and at once when a CREDITNOTE webhook asks after the last read began

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('credit_notes_read_at', sa.DateTime(), nullable=True))
    op.add_column('tenants', sa.Column('credit_notes_asked_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('credit_notes_asked_at')
        batch.drop_column('credit_notes_read_at')
