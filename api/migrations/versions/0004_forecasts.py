"""site forecasts

Issue 14: each site meter's latest signed day-ahead flexibility forecast (api.forecasts), the input
of a zone's supply curve. Off-chain data: one row per site, replaced by a higher sequence.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('site_forecasts',
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('zone', sa.BigInteger(), nullable=False),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('end', sa.BigInteger(), nullable=False),
    sa.Column('hours', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('offers', sa.Text(), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('site')
    )
    op.create_index('ix_site_forecasts_zone', 'site_forecasts', ['zone', 'start', 'end'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_site_forecasts_zone', table_name='site_forecasts')
    op.drop_table('site_forecasts')
