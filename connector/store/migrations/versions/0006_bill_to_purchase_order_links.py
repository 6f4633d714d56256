"""bill to purchase order links

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bill_po_links',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=64), nullable=False),
    sa.Column('purchase_order_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'invoice_id', 'purchase_order_id')
    )
    with op.batch_alter_table('bill_po_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bill_po_links_purchase_order_id'), ['purchase_order_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('bill_po_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bill_po_links_purchase_order_id'))

    op.drop_table('bill_po_links')
