"""map backlog and per-bill indexes: a per-tenant count of bills still to map, kept by every state change,
replaces counting the tenant's DISCOVERED bills on every mapping; every per-bill lookup of mapping gets an
index that starts with the tenant

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('map_backlog',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('to_map', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    op.execute("INSERT INTO map_backlog (tenant_id, to_map) "
               "SELECT tenant_id, count(*) FROM bills WHERE state = 'DISCOVERED' GROUP BY tenant_id")
    op.create_index('ix_purchase_orders_tenant_key', 'purchase_orders', ['tenant_id', 'key'], unique=False)
    op.create_index('ix_bill_po_links_tenant_po', 'bill_po_links', ['tenant_id', 'purchase_order_id'], unique=False)
    op.create_index('ix_accounts_tenant_code', 'accounts', ['tenant_id', 'code'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_accounts_tenant_code', table_name='accounts')
    op.drop_index('ix_bill_po_links_tenant_po', table_name='bill_po_links')
    op.drop_index('ix_purchase_orders_tenant_key', table_name='purchase_orders')
    op.drop_table('map_backlog')
