"""tokens

Issue 15: the ERC-20s the API states amounts in (api.tokens): symbol, name and decimals read from
the chain once per token, with its role (stake token, payment token). Not a chain-mirror table:
token metadata is fixed once deployed, so a reorg or a mirror reset keeps it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tokens',
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('decimals', sa.Integer(), nullable=True),
    sa.Column('stake', sa.Boolean(), nullable=False),
    sa.Column('payment', sa.Boolean(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('looked_up_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('address')
    )


def downgrade() -> None:
    op.drop_table('tokens')
