"""capability records

Issue 13 deliverable 5 (proof of flexibility): each tested site's capability record (tested W,
passed, tested at) from the verified report documents that settled capability tests, served at
/v1/sites/{address}/capability and, the latest, on a site meter's DeviceOut. Documents fetched
before this revision have no rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('capability_records',
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('request_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
    sa.Column('tested_w', sa.BigInteger(), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('tested_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('digest', 'request_id', 'site')
    )
    op.create_index('ix_capability_records_site', 'capability_records', ['site', 'tested_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_capability_records_site', table_name='capability_records')
    op.drop_table('capability_records')
