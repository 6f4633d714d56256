"""reconcile_runs: a tenant's reconcile under way (its phase, where it stopped, what it found so far), so a
reconcile stopped by a spent rate budget, a hand-over or a dead worker resumes instead of starting over

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'reconcile_runs',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('phase', sa.String(length=16), nullable=False),
        sa.Column('after', sa.String(length=64), nullable=False),
        sa.Column('since', sa.DateTime(), nullable=True),
        sa.Column('page', sa.Integer(), nullable=False),
        sa.Column('found', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id'),
    )


def downgrade() -> None:
    op.drop_table('reconcile_runs')
