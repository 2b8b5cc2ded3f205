"""sites, market rules and per-site verification

Issue 13: a device's site (DeviceSited), a request's market rules (RequestRules) and, from the
oracle's report document, a per-site request's verification summary and its settlement units.
Every new column is nullable, so a mirror indexed before this revision keeps its rows (its devices
have no site, its requests no recorded rules).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=True))
        batch_op.create_index('ix_devices_site', ['site', 'address'], unique=False)

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holdout_bps', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('gate_closure', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('report_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verification', sa.Text(), nullable=True))

    op.create_table('report_sites',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('request_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('group_name', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('committed_w', sa.BigInteger(), nullable=False),
    sa.Column('paid_wh', sa.BigInteger(), nullable=False),
    sa.Column('weight_wh', sa.BigInteger(), nullable=False),
    sa.Column('devices', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('digest', 'request_id', 'site')
    )


def downgrade() -> None:
    op.drop_table('report_sites')
    with op.batch_alter_table('report_requests', schema=None) as batch_op:
        batch_op.drop_column('verification')

    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_column('gate_closure')
        batch_op.drop_column('holdout_bps')

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_site')
        batch_op.drop_column('site')
