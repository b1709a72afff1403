"""task runs remember when their current attempt was claimed: an attempt the sweeper records
for a worker that stopped answering starts then
"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0016"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0015"


def upgrade() -> None:
    # Leases are renewed by a heartbeat, so `lease_expires_at` no longer tells when a claim
    # was made; the interrupted attempt's row needs its start.
    op.add_column("task_runs", ddl.timestamp("claimed_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_column("claimed_at")
