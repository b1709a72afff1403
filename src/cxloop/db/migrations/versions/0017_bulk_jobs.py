"""bulk jobs: Bulk API 2.0 ingest jobs and the task runs they carry"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0017"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0016"


def upgrade() -> None:
    ddl.create_table(
        "bulk_jobs",
        ddl.string("id", 18),
        ddl.string("batch_key", 250),
        ddl.id_column("connection_id"),
        ddl.string("sobject", 80),
        ddl.string("operation", 16),
        ddl.string("external_id_field", 80, nullable=True),
        ddl.json("columns"),
        ddl.integer("record_count"),
        ddl.id_column("state"),
        ddl.text("error_message"),
        ddl.integer("checks"),
        ddl.timestamp("check_at"),
        ddl.string("claimed_by", 80, nullable=True),
        ddl.timestamp("lease_expires_at", nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("settled_at", nullable=True),
    )
    op.create_index("ix_bulk_jobs_open", "bulk_jobs", ["settled_at", "check_at"])
    with op.batch_alter_table("task_runs") as batch:
        batch.add_column(ddl.string("bulk_job_id", 18, nullable=True))
        batch.create_index("ix_task_runs_bulk_job_id", ["bulk_job_id"])
    with op.batch_alter_table("task_run_attempts") as batch:
        batch.add_column(ddl.string("bulk_job_id", 18, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_run_attempts") as batch:
        batch.drop_column("bulk_job_id")
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_index("ix_task_runs_bulk_job_id")
        batch.drop_column("bulk_job_id")
    op.drop_index("ix_bulk_jobs_open", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
