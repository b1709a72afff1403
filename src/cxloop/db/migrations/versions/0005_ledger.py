"""the ledger: runs, task runs, attempts, org throttles

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_throttles",
        sa.Column("org_id", sa.String(length=18), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_throttles")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("survey_id", sa.String(length=20), nullable=False),
        sa.Column("workflow_id", sa.String(length=20), nullable=True),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("workflow_revision", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("response_id", sa.String(length=20), nullable=True),
        sa.Column("event_data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_runs_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_runs_workflow_id_workflows"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("workflow_id", "event_key", name=op.f("uq_runs_workflow_id")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_response_id"), ["response_id"], unique=False)
        batch_op.create_index("ix_runs_status_created", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_runs_survey_created", ["survey_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_workflow_id"), ["workflow_id"], unique=False)

    op.create_table(
        "task_runs",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.String(length=20), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("task_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("batch_key", sa.String(length=250), nullable=False),
        sa.Column("connection_id", sa.String(length=20), nullable=True),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_task_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_runs")),
    )
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_task_runs_connection_id"), ["connection_id"], unique=False
        )
        batch_op.create_index(
            "ix_task_runs_ready", ["batch_key", "status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_task_runs_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            "ix_task_runs_status_next", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "task_run_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_run_id", sa.String(length=20), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_run_id"],
            ["task_runs.id"],
            name=op.f("fk_task_run_attempts_task_run_id_task_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run_attempts")),
    )
    with op.batch_alter_table("task_run_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_task_run_attempts_task_run_id"), ["task_run_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("task_run_attempts")
    op.drop_table("task_runs")
    op.drop_table("runs")
    op.drop_table("org_throttles")
