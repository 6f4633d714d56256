"""master data: a batch names its kind (bills or a master-data kind), per-tenant kinds and templates, the
fingerprint last sent per record with its audit, and accounts keep Xero's record (type, class)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=32), server_default='bills', nullable=False))
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.JSON(), nullable=True))
    op.create_table('master_data_settings',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('template', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'kind')
    )
    op.create_table('master_data_records',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'kind', 'record_key')
    )
    op.create_index('ix_master_data_records_batch_id', 'master_data_records', ['batch_id'], unique=False)
    op.create_table('master_data_transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('to_state', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_master_data_transitions_tenant_id', 'master_data_transitions', ['tenant_id'], unique=False)
    op.create_index('ix_master_data_transitions_record_key', 'master_data_transitions', ['record_key'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_master_data_transitions_record_key', table_name='master_data_transitions')
    op.drop_index('ix_master_data_transitions_tenant_id', table_name='master_data_transitions')
    op.drop_table('master_data_transitions')
    op.drop_index('ix_master_data_records_batch_id', table_name='master_data_records')
    op.drop_table('master_data_records')
    op.drop_table('master_data_settings')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('payload')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_column('kind')
