"""batch key owners and per-org batches in flight: several worker processes batch as one

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import primary_key, timestamp

revision = "0018"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_key_owners",
        sa.Column("batch_key", sa.String(length=250), nullable=False),
        sa.Column("worker", sa.String(length=80), nullable=False),
        timestamp("until"),
        primary_key("batch_key_owners", "batch_key"),
    )
    op.create_table(
        "org_concurrency",
        sa.Column("org_id", sa.String(length=18), nullable=False),
        sa.Column("bound", sa.Integer(), nullable=False),
        timestamp("updated_at"),
        timestamp("shrunk_at", nullable=True),
        primary_key("org_concurrency", "org_id"),
    )
    op.create_table(
        "org_batches_in_flight",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=18), nullable=False),
        sa.Column("worker", sa.String(length=80), nullable=False),
        sa.Column("batch_key", sa.String(length=250), nullable=False),
        timestamp("until"),
        primary_key("org_batches_in_flight", "id"),
    )
    op.create_index(
        op.f("ix_org_batches_in_flight_org_id"), "org_batches_in_flight", ["org_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_org_batches_in_flight_org_id"), table_name="org_batches_in_flight")
    op.drop_table("org_batches_in_flight")
    op.drop_table("org_concurrency")
    op.drop_table("batch_key_owners")
