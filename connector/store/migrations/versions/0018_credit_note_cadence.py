"""tenants.credit_notes_read_at and credit_notes_asked_at: supplier credit notes are read on their own
cadence, and at once when a CREDITNOTE webhook asks after the last read began

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('credit_notes_read_at', sa.DateTime(), nullable=True))
    op.add_column('tenants', sa.Column('credit_notes_asked_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('credit_notes_asked_at')
        batch.drop_column('credit_notes_read_at')
