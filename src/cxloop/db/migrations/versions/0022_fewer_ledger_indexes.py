"""fewer ledger indexes: each index of runs and task runs is written on every change of a row

A run is written about twice and a task run three times in its life (inserted, claimed,
finished), and each write of a row adds an entry to every index of its table (the status,
which most indexes hold, changes every time). Three indexes that other indexes already serve
go, and the Bulk job index keeps only the rows a job holds:

- `ix_runs_workflow_id`: the unique constraint's index (workflow_id, event_key) starts with it.
- `ix_runs_survey_created` (survey_id, created_at): the prefix of `ix_runs_survey_window`; the
  run history's walks by survey read that one the same way (docs/performance.md).
- `ix_task_runs_ready` (batch_key, status, next_attempt_at): every query of ready rows reads
  the partial index `ix_task_runs_ready_queue` (0019).
- `ix_task_runs_bulk_job_id`: partial, `bulk_job_id IS NOT NULL`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"

IN_BULK_JOB_WHERE = "bulk_job_id IS NOT NULL"


def upgrade() -> None:
    op.drop_index("ix_runs_workflow_id", table_name="runs")
    op.drop_index("ix_runs_survey_created", table_name="runs")
    op.drop_index("ix_task_runs_ready", table_name="task_runs")
    op.drop_index("ix_task_runs_bulk_job_id", table_name="task_runs")
    op.create_index(
        "ix_task_runs_bulk_job_id",
        "task_runs",
        ["bulk_job_id"],
        postgresql_where=sa.text(IN_BULK_JOB_WHERE),
        sqlite_where=sa.text(IN_BULK_JOB_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_task_runs_bulk_job_id", table_name="task_runs")
    op.create_index("ix_task_runs_bulk_job_id", "task_runs", ["bulk_job_id"])
    op.create_index("ix_task_runs_ready", "task_runs", ["batch_key", "status", "next_attempt_at"])
    op.create_index("ix_runs_survey_created", "runs", ["survey_id", "created_at"])
    op.create_index("ix_runs_workflow_id", "runs", ["workflow_id"])
