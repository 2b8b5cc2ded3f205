"""request allocations

Issue 14: a request's clearing result, from FlexMarket's AllocationPosted event: the accepted watts,
the uniform clearing (and availability) price and the allocation's Merkle root, and the availability
ceiling of a request that pays availability (RequestAvailability). Nullable: a request has none until the
oracles post it after gate closure, and a mirror indexed before this revision keeps its rows. And the
oracles' allocation documents that matched the posted root (`allocation_documents`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepted_w', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('clearing_price', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))
        batch_op.add_column(sa.Column('allocation_root', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True))
        batch_op.add_column(sa.Column('availability_price_per_kwh', sqlmodel.sql.sqltypes.AutoString(length=80),
                                      nullable=True))
        batch_op.add_column(sa.Column('availability_price', sqlmodel.sql.sqltypes.AutoString(length=80),
                                      nullable=True))

    op.create_table('allocation_documents',
    sa.Column('request_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('signer', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('fetched_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('request_id', 'root')
    )


def downgrade() -> None:
    op.drop_table('allocation_documents')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_column('availability_price')
        batch_op.drop_column('availability_price_per_kwh')
        batch_op.drop_column('allocation_root')
        batch_op.drop_column('clearing_price')
        batch_op.drop_column('accepted_w')
