"""initial mirror schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 11:08:16.461825
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('block_hashes',
    sa.Column('number', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.PrimaryKeyConstraint('number')
    )
    op.create_table('chain_events',
    sa.Column('block', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('log_index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('tx_hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('contract', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('block', 'log_index')
    )
    with op.batch_alter_table('chain_events', schema=None) as batch_op:
        batch_op.create_index('ix_chain_events_kind', ['kind', 'block', 'log_index'], unique=False)

    op.create_table('claims',
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('claimed', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.Column('updated_block', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account', 'token')
    )
    op.create_table('device_profiles',
    sa.Column('device', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('location_label', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('written_by', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('device')
    )
    op.create_table('devices',
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('kind', sa.Integer(), nullable=False),
    sa.Column('capacity_w', sa.BigInteger(), nullable=False),
    sa.Column('zone', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('registered', sa.Boolean(), nullable=False),
    sa.Column('registered_block', sa.BigInteger(), nullable=False),
    sa.Column('updated_block', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('address')
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index('ix_devices_active', ['active', 'address'], unique=False)
        batch_op.create_index('ix_devices_kind', ['kind', 'address'], unique=False)
        batch_op.create_index('ix_devices_owner', ['owner', 'address'], unique=False)
        batch_op.create_index('ix_devices_zone', ['zone', 'address'], unique=False)

    op.create_table('indexer_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('last_block', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('head_block', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('oracles',
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_block', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('address')
    )
    op.create_table('report_documents',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('rewards_root', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('leaves', sa.Integer(), nullable=False),
    sa.Column('fetched_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_table('report_requests',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('request_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('delivered_wh', sa.BigInteger(), nullable=False),
    sa.Column('payout', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('refund', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('devices', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('digest', 'request_id')
    )
    op.create_table('reports',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('previous_root', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('rewards_root', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('requests_hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('penalties_hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('emission', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('submitter', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('signers', sa.Text(), nullable=False),
    sa.Column('penalties', sa.Text(), nullable=False),
    sa.Column('request_ids', sa.Text(), nullable=False),
    sa.Column('challenge_deadline', sa.BigInteger(), nullable=False),
    sa.Column('challenger', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=True),
    sa.Column('challenge_reason', sa.Text(), nullable=True),
    sa.Column('submitted_block', sa.BigInteger(), nullable=False),
    sa.Column('submitted_tx', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('finalized_block', sa.BigInteger(), nullable=True),
    sa.Column('updated_block', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index('ix_reports_epoch', ['epoch'], unique=False)
        batch_op.create_index('ix_reports_status', ['status', 'epoch'], unique=False)

    op.create_table('requests',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('buyer', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('zone', sa.BigInteger(), nullable=False),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('end', sa.BigInteger(), nullable=False),
    sa.Column('target_w', sa.BigInteger(), nullable=False),
    sa.Column('price_per_kwh', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('payment_token', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('max_budget', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('payout', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('refund', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('report_digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
    sa.Column('opened_block', sa.BigInteger(), nullable=False),
    sa.Column('opened_tx', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('updated_block', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index('ix_requests_buyer', ['buyer', 'id'], unique=False)
        batch_op.create_index('ix_requests_status', ['status', 'id'], unique=False)
        batch_op.create_index('ix_requests_zone', ['zone', 'id'], unique=False)

    op.create_table('reward_leaves',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('amount', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('proof', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('digest', 'account', 'token')
    )
    op.create_table('sessions',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('address', sa.String(length=42), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_address'), ['address'], unique=False)

    op.create_table('siwe_nonces',
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('used', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('nonce')
    )
    op.create_table('stakes',
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('bonded', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('unbonding', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('release_at', sa.BigInteger(), nullable=False),
    sa.Column('locked', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('slashed', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('updated_block', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('account')
    )
    op.create_table('undo_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('block', sa.BigInteger(), nullable=False),
    sa.Column('table_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('previous', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('undo_log', schema=None) as batch_op:
        batch_op.create_index('ix_undo_log_block', ['block'], unique=False)

    op.create_table('zone_totals',
    sa.Column('zone', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('devices', sa.BigInteger(), nullable=False),
    sa.Column('active_devices', sa.BigInteger(), nullable=False),
    sa.Column('active_capacity_w', sa.BigInteger(), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('settled_requests', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('zone')
    )


def downgrade() -> None:
    op.drop_table('zone_totals')
    with op.batch_alter_table('undo_log', schema=None) as batch_op:
        batch_op.drop_index('ix_undo_log_block')

    op.drop_table('undo_log')
    op.drop_table('stakes')
    op.drop_table('siwe_nonces')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_address'))

    op.drop_table('sessions')
    op.drop_table('reward_leaves')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index('ix_requests_zone')
        batch_op.drop_index('ix_requests_status')
        batch_op.drop_index('ix_requests_buyer')

    op.drop_table('requests')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_status')
        batch_op.drop_index('ix_reports_epoch')

    op.drop_table('reports')
    op.drop_table('report_requests')
    op.drop_table('report_documents')
    op.drop_table('oracles')
    op.drop_table('indexer_state')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index('ix_devices_zone')
        batch_op.drop_index('ix_devices_owner')
        batch_op.drop_index('ix_devices_kind')
        batch_op.drop_index('ix_devices_active')

    op.drop_table('devices')
    op.drop_table('device_profiles')
    op.drop_table('claims')
    with op.batch_alter_table('chain_events', schema=None) as batch_op:
        batch_op.drop_index('ix_chain_events_kind')

    op.drop_table('chain_events')
    op.drop_table('block_hashes')
