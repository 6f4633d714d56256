"""initial ledger

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bill_transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('from_state', sa.String(length=32), nullable=True),
    sa.Column('to_state', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('version', sa.BigInteger(), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('bill_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bill_transitions_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bill_transitions_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('sftp_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('import_dir', sa.String(length=1000), nullable=False),
    sa.Column('host_key', sa.Text(), nullable=False),
    sa.Column('password_enc', sa.LargeBinary(), nullable=True),
    sa.Column('private_key_enc', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('xero_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('client_id', sa.String(length=200), nullable=False),
    sa.Column('client_secret_enc', sa.LargeBinary(), nullable=True),
    sa.Column('refresh_token_enc', sa.LargeBinary(), nullable=True),
    sa.Column('access_token_enc', sa.LargeBinary(), nullable=True),
    sa.Column('access_expires_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('refreshing_until', sa.DateTime(), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('tenants',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('short_name', sa.String(length=40), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('sftp_target_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('poll_interval_seconds', sa.Integer(), nullable=False),
    sa.Column('next_poll_at', sa.DateTime(), nullable=True),
    sa.Column('parked_until', sa.DateTime(), nullable=True),
    sa.Column('last_polled_at', sa.DateTime(), nullable=True),
    sa.Column('max_bills_per_file', sa.Integer(), nullable=False),
    sa.Column('eligible_statuses', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['grant_id'], ['xero_grants.id'], ),
    sa.ForeignKeyConstraint(['sftp_target_id'], ['sftp_targets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bill_count', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('staged_path', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('tenant_id', 'sequence', name='uq_batches_tenant_sequence')
    )
    op.create_table('gl_mappings',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('xero_account_code', sa.String(length=20), nullable=False),
    sa.Column('stampli_gl_code', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'xero_account_code')
    )
    op.create_table('purchase_orders',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('purchase_order_id', sa.String(length=64), nullable=False),
    sa.Column('number', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=20), nullable=True),
    sa.Column('contact_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'purchase_order_id')
    )
    with op.batch_alter_table('purchase_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_purchase_orders_key'), ['key'], unique=False)

    op.create_table('watermarks',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('value', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id', 'endpoint')
    )
    op.create_table('bills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_number', sa.String(length=255), nullable=True),
    sa.Column('xero_status', sa.String(length=32), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('mapped_version', sa.BigInteger(), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('state_changed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'invoice_id', name='uq_bills_tenant_invoice')
    )
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bills_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('ix_bills_tenant_state', ['tenant_id', 'state'], unique=False)

    op.create_table('delivery_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('error_class', sa.String(length=100), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('remote_size', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_attempts_batch_id'), ['batch_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_attempts_batch_id'))

    op.drop_table('delivery_attempts')
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_index('ix_bills_tenant_state')
        batch_op.drop_index(batch_op.f('ix_bills_batch_id'))

    op.drop_table('bills')
    op.drop_table('watermarks')
    with op.batch_alter_table('purchase_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purchase_orders_key'))

    op.drop_table('purchase_orders')
    op.drop_table('gl_mappings')
    op.drop_table('batches')
    op.drop_table('tenants')
    op.drop_table('xero_grants')
    op.drop_table('sftp_targets')
    with op.batch_alter_table('bill_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bill_transitions_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_bill_transitions_invoice_id'))

    op.drop_table('bill_transitions')
