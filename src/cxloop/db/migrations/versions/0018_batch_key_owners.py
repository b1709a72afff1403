"""batch key owners and per-org batches in flight: several worker processes batch as one"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0018"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0017"


def upgrade() -> None:
    ddl.create_table(
        "batch_key_owners",
        ddl.string("batch_key", 250),
        ddl.string("worker", 80),
        ddl.timestamp("until"),
        key=["batch_key"],
    )
    ddl.create_table(
        "org_concurrency",
        ddl.string("org_id", 18),
        ddl.integer("bound"),
        ddl.timestamp("updated_at"),
        ddl.timestamp("shrunk_at", nullable=True),
        key=["org_id"],
    )
    ddl.create_table(
        "org_batches_in_flight",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        ddl.string("org_id", 18),
        ddl.string("worker", 80),
        ddl.string("batch_key", 250),
        ddl.timestamp("until"),
    )
    ddl.create_indexes("org_batches_in_flight", "org_id")


def downgrade() -> None:
    op.drop_index(op.f("ix_org_batches_in_flight_org_id"), table_name="org_batches_in_flight")
    op.drop_table("org_batches_in_flight")
    op.drop_table("org_concurrency")
    op.drop_table("batch_key_owners")
