"""the ledger: runs, task runs, attempts, org throttles

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import create_indexes, foreign_key, id_column, primary_key, timestamp, unique

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_throttles",
        sa.Column("org_id", sa.String(length=18), nullable=False),
        timestamp("until"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        primary_key("org_throttles", "org_id"),
    )
    op.create_table(
        "runs",
        id_column("id"),
        id_column("survey_id"),
        id_column("workflow_id", nullable=True),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("workflow_revision", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        id_column("response_id", nullable=True),
        sa.Column("event_data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        timestamp("created_at"),
        timestamp("finished_at", nullable=True),
        foreign_key("runs", "survey_id", "surveys", ondelete="CASCADE"),
        foreign_key("runs", "workflow_id", "workflows", ondelete="SET NULL"),
        primary_key("runs", "id"),
        unique("runs", "workflow_id", "event_key"),
    )
    create_indexes(
        "runs",
        "response_id",
        "workflow_id",
        ix_runs_status_created=["status", "created_at"],
        ix_runs_survey_created=["survey_id", "created_at"],
    )

    op.create_table(
        "task_runs",
        id_column("id"),
        id_column("run_id"),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("task_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("batch_key", sa.String(length=250), nullable=False),
        id_column("connection_id", nullable=True),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        timestamp("next_attempt_at"),
        timestamp("lease_expires_at", nullable=True),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        timestamp("created_at"),
        timestamp("first_attempt_at", nullable=True),
        timestamp("finished_at", nullable=True),
        foreign_key("task_runs", "run_id", "runs", ondelete="CASCADE"),
        primary_key("task_runs", "id"),
    )
    create_indexes(
        "task_runs",
        "connection_id",
        "run_id",
        ix_task_runs_ready=["batch_key", "status", "next_attempt_at"],
        ix_task_runs_status_next=["status", "next_attempt_at"],
    )

    op.create_table(
        "task_run_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        id_column("task_run_id"),
        sa.Column("number", sa.Integer(), nullable=False),
        timestamp("started_at"),
        timestamp("finished_at"),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        foreign_key("task_run_attempts", "task_run_id", "task_runs", ondelete="CASCADE"),
        primary_key("task_run_attempts", "id"),
    )
    create_indexes("task_run_attempts", "task_run_id")


def downgrade() -> None:
    op.drop_table("task_run_attempts")
    op.drop_table("task_runs")
    op.drop_table("runs")
    op.drop_table("org_throttles")
