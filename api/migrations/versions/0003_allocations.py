"""request allocations

Issue 14: a request's clearing result, from FlexMarket's AllocationPosted event: the accepted watts,
the uniform clearing price and the allocation's Merkle root. Nullable: a request has none until the
oracles post it after gate closure, and a mirror indexed before this revision keeps its rows.

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


def downgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_column('allocation_root')
        batch_op.drop_column('clearing_price')
        batch_op.drop_column('accepted_w')
