"""web app views

Issue 17: what the web app's owner and network views read, kept from verified documents so that no
page parses a document per request: each settlement unit's outcome by owner (`report_units`), each
holdout group's per-interval energy (`report_series`) and each verified allocation's lines
(`allocation_units`). Documents fetched before this revision have no such rows; the routes say so.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_units',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('request_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('committed_wh', sa.BigInteger(), nullable=False),
    sa.Column('delivered_wh', sa.BigInteger(), nullable=False),
    sa.Column('owner_payout', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('eligible', sa.Boolean(), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('digest', 'request_id', 'unit')
    )
    op.create_index('ix_report_units_owner', 'report_units', ['owner', 'request_id'], unique=False)
    op.create_table('report_series',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('request_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('group_name', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('baseline_wh', sa.Text(), nullable=False),
    sa.Column('actual_wh', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('digest', 'request_id', 'group_name')
    )
    op.create_table('allocation_units',
    sa.Column('request_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('device', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('group_name', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('watts', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('request_id', 'root', 'device')
    )
    op.create_index('ix_allocation_units_site', 'allocation_units', ['site'], unique=False)
    op.create_index('ix_allocation_units_device', 'allocation_units', ['device'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_allocation_units_device', table_name='allocation_units')
    op.drop_index('ix_allocation_units_site', table_name='allocation_units')
    op.drop_table('allocation_units')
    op.drop_table('report_series')
    op.drop_index('ix_report_units_owner', table_name='report_units')
    op.drop_table('report_units')
