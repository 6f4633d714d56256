"""mapping profiles: one versioned map, a template and a cadence that many tenants share

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

#: The cadence every tenant was onboarded with: one that differs was chosen for that tenant, and stays its own
#: when it joins a profile with a cadence.
ONBOARDING_INTERVAL = 900


def upgrade() -> None:
    op.create_table('mapping_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('poll_interval_seconds', sa.Integer(), nullable=True),
    sa.Column('template', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_mapping_profiles_name')
    )
    op.create_table('profile_mapping_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['profile_id'], ['mapping_profiles.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('profile_id', 'version', name='uq_profile_mapping_sets_profile_version')
    )
    with op.batch_alter_table('profile_mapping_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_profile_mapping_sets_profile_id'), ['profile_id'], unique=False)
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('profile_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('own_poll_interval', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_tenants_profile_id'), ['profile_id'], unique=False)
        batch_op.create_foreign_key('fk_tenants_profile_id', 'mapping_profiles', ['profile_id'], ['id'])
    tenants = sa.table('tenants', sa.column('own_poll_interval', sa.Boolean()),
                       sa.column('poll_interval_seconds', sa.Integer()))
    op.execute(tenants.update().where(tenants.c.poll_interval_seconds != ONBOARDING_INTERVAL)
               .values(own_poll_interval=True))
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mapping_profile_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mapping_profile_version', sa.Integer(), nullable=True))
    with op.batch_alter_table('bill_transitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mapped_with', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bill_transitions', schema=None) as batch_op:
        batch_op.drop_column('mapped_with')
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_column('mapping_profile_version')
        batch_op.drop_column('mapping_profile_id')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tenants_profile_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_tenants_profile_id'))
        batch_op.drop_column('own_poll_interval')
        batch_op.drop_column('profile_id')
    with op.batch_alter_table('profile_mapping_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_profile_mapping_sets_profile_id'))
    op.drop_table('profile_mapping_sets')
    op.drop_table('mapping_profiles')
