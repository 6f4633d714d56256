"""versioned mapping sets

Revision ID: 0004
Revises: 0003
"""

import json

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mapping_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'version', name='uq_mapping_sets_tenant_version')
    )
    with op.batch_alter_table('mapping_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mapping_sets_tenant_id'), ['tenant_id'], unique=False)

    _carry_gl_maps_and_statuses_into_mapping_sets()
    op.drop_table('gl_mappings')
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mapping_version', sa.Integer(), nullable=True))

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('eligible_statuses')



def _carry_gl_maps_and_statuses_into_mapping_sets() -> None:
    """Each tenant's GL rows and eligible statuses become its mapping set version 1."""
    connection = op.get_bind()
    tenants = connection.execute(sa.text("SELECT id, eligible_statuses FROM tenants")).all()
    for tenant_id, statuses in tenants:
        rows = connection.execute(sa.text("SELECT xero_account_code, stampli_gl_code FROM gl_mappings "
                                          "WHERE tenant_id = :t"), {"t": tenant_id}).all()
        if isinstance(statuses, str):
            statuses = json.loads(statuses)
        data = {"settings": {"eligible_statuses": statuses or ["AUTHORISED"]}, "gl": dict(rows),
                "tracking": [], "vendors": {}}
        insert = sa.text(
            "INSERT INTO mapping_sets (tenant_id, version, data, created_at, created_by) "
            "VALUES (:t, 1, :d, CURRENT_TIMESTAMP, 'migration')"
        ).bindparams(sa.bindparam("d", type_=sa.JSON))
        connection.execute(insert, {"t": tenant_id, "d": data})


def downgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eligible_statuses', sa.JSON(), nullable=False, server_default='["AUTHORISED"]'))

    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_column('mapping_version')

    op.create_table('gl_mappings',
    sa.Column('tenant_id', sa.VARCHAR(length=64), nullable=False),
    sa.Column('xero_account_code', sa.VARCHAR(length=20), nullable=False),
    sa.Column('stampli_gl_code', sa.VARCHAR(length=100), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'xero_account_code')
    )
    with op.batch_alter_table('mapping_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mapping_sets_tenant_id'))

    op.drop_table('mapping_sets')
