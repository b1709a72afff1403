"""the ledger: runs, task runs, attempts, org throttles"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    ddl.create_table(
        "org_throttles",
        ddl.string("org_id", 18),
        ddl.timestamp("until"),
        ddl.text("reason"),
        ddl.integer("strikes"),
        key=["org_id"],
    )
    ddl.create_table(
        "runs",
        ddl.id_column("id"),
        ddl.id_column("survey_id"),
        ddl.id_column("workflow_id", nullable=True),
        ddl.string("workflow_name", 200),
        ddl.integer("workflow_revision"),
        ddl.string("event_type", 40),
        ddl.string("event_key", 200),
        ddl.id_column("response_id", nullable=True),
        ddl.json("event_data"),
        ddl.string("status", 16),
        ddl.timestamp("created_at"),
        ddl.timestamp("finished_at", nullable=True),
        references={"survey_id": ddl.cascade("surveys"), "workflow_id": ddl.set_null("workflows")},
        unique_on=[["workflow_id", "event_key"]],
    )
    ddl.create_indexes(
        "runs",
        "response_id",
        "workflow_id",
        ix_runs_status_created=["status", "created_at"],
        ix_runs_survey_created=["survey_id", "created_at"],
    )

    ddl.create_table(
        "task_runs",
        ddl.id_column("id"),
        ddl.id_column("run_id"),
        ddl.string("task_id", 40),
        ddl.integer("task_index"),
        ddl.string("task_type", 16),
        ddl.string("status", 16),
        ddl.text("status_reason"),
        ddl.string("batch_key", 250),
        ddl.id_column("connection_id", nullable=True),
        ddl.json("depends_on"),
        ddl.integer("attempts"),
        ddl.timestamp("next_attempt_at"),
        ddl.timestamp("lease_expires_at", nullable=True),
        ddl.string("claimed_by", 80, nullable=True),
        ddl.boolean("ambiguous"),
        ddl.string("record_id", 18, nullable=True),
        ddl.json("payload", nullable=True),
        ddl.json("result", nullable=True),
        ddl.json("error", nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("first_attempt_at", nullable=True),
        ddl.timestamp("finished_at", nullable=True),
        references={"run_id": ddl.cascade("runs")},
    )
    ddl.create_indexes(
        "task_runs",
        "connection_id",
        "run_id",
        ix_task_runs_ready=["batch_key", "status", "next_attempt_at"],
        ix_task_runs_status_next=["status", "next_attempt_at"],
    )

    ddl.create_table(
        "task_run_attempts",
        ddl.serial_id(),
        ddl.id_column("task_run_id"),
        ddl.integer("number"),
        ddl.timestamp("started_at"),
        ddl.timestamp("finished_at"),
        ddl.string("outcome", 16),
        ddl.integer("batch_size"),
        ddl.json("payload", nullable=True),
        ddl.json("reply", nullable=True),
        ddl.json("error", nullable=True),
        references={"task_run_id": ddl.cascade("task_runs")},
    )
    ddl.create_indexes("task_run_attempts", "task_run_id")


def downgrade() -> None:
    op.drop_table("task_run_attempts")
    op.drop_table("task_runs")
    op.drop_table("runs")
    op.drop_table("org_throttles")
