"""bulk jobs: Bulk API 2.0 ingest jobs and the task runs they carry

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import id_column, primary_key, timestamp

revision = "0017"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.String(length=18), nullable=False),
        sa.Column("batch_key", sa.String(length=250), nullable=False),
        id_column("connection_id"),
        sa.Column("sobject", sa.String(length=80), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("external_id_field", sa.String(length=80), nullable=True),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        id_column("state"),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        timestamp("check_at"),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        timestamp("lease_expires_at", nullable=True),
        timestamp("created_at"),
        timestamp("settled_at", nullable=True),
        primary_key("bulk_jobs", "id"),
    )
    op.create_index("ix_bulk_jobs_open", "bulk_jobs", ["settled_at", "check_at"])
    with op.batch_alter_table("task_runs") as batch:
        batch.add_column(sa.Column("bulk_job_id", sa.String(length=18), nullable=True))
        batch.create_index("ix_task_runs_bulk_job_id", ["bulk_job_id"])
    with op.batch_alter_table("task_run_attempts") as batch:
        batch.add_column(sa.Column("bulk_job_id", sa.String(length=18), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_run_attempts") as batch:
        batch.drop_column("bulk_job_id")
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_index("ix_task_runs_bulk_job_id")
        batch.drop_column("bulk_job_id")
    op.drop_index("ix_bulk_jobs_open", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
