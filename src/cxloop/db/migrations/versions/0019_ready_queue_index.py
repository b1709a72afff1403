"""ready queue index: the ready task runs of a batch key in claim order, a partial index"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0018"

READY_WHERE = "status IN ('pending', 'waiting_retry')"


def upgrade() -> None:
    # A backlog of a million ready rows: the claim (ORDER BY next_attempt_at, id LIMIT 200),
    # the worker's ready summary and the sweeper's overdue keys read the first rows of a key
    # from this index instead of sorting or counting every ready row of it. Only ready rows
    # are in it, so it stays as small as the backlog.
    op.create_index(
        "ix_task_runs_ready_queue",
        "task_runs",
        ["batch_key", "next_attempt_at", "id"],
        postgresql_where=sa.text(READY_WHERE),
        sqlite_where=sa.text(READY_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_task_runs_ready_queue", table_name="task_runs")
