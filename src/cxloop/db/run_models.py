"""Tables of the ledger: runs, task runs and their attempts.

A task run row is the truth about one effect (a Salesforce write, an email). It is written in the
same transaction as its cause, claimed by a worker with a lease, and carries its outcome. The
queue only carries batch keys and ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cxloop.db.base import Base, UTCDateTime, new_id, utcnow
from cxloop.domain.statuses import RunStatus, TaskRunStatus

RUN_STATUSES = tuple(RunStatus)
TASK_RUN_STATUSES = tuple(TaskRunStatus)
READY_STATUSES = (TaskRunStatus.PENDING, TaskRunStatus.WAITING_RETRY)
# The ready statuses as SQL, the predicate of the partial index of ready rows.
READY_WHERE = "status IN ('pending', 'waiting_retry')"
IN_BULK_JOB_WHERE = "bulk_job_id IS NOT NULL"
OPEN_STATUSES = (
    TaskRunStatus.BLOCKED,
    TaskRunStatus.PENDING,
    TaskRunStatus.RUNNING,
    TaskRunStatus.WAITING_RETRY,
    TaskRunStatus.PAUSED,
)


class Run(Base):
    """One workflow started by one event."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("RN_"))
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    # Run history outlives a deleted workflow: the id goes, the name and revision stay.
    # Looked up by the unique constraint's index (workflow_id, event_key): migration 0022.
    workflow_id: Mapped[str | None] = mapped_column(ForeignKey("workflows.id", ondelete="SET NULL"))
    workflow_name: Mapped[str] = mapped_column(String(200))
    workflow_revision: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(40))
    # What deduplicates events: ("response", R_x, "created") or the outbound notification.
    event_key: Mapped[str] = mapped_column(String(200))
    response_id: Mapped[str | None] = mapped_column(String(20), index=True)
    event_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    task_runs: Mapped[list[TaskRun]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="TaskRun.task_index"
    )

    __table_args__ = (
        UniqueConstraint("workflow_id", "event_key"),
        Index("ix_runs_status_created", "status", "created_at"),
        # The run history across all surveys (admins), newest first: migration 0011.
        Index("ix_runs_created_id", "created_at", "id"),
        # The Workflows tab's 24-hour counts and last statuses, from the index alone (0015);
        # the run history's walks by survey read it too (its prefix was an index until 0022).
        Index("ix_runs_survey_window", "survey_id", "created_at", "workflow_id", "status"),
    )


class TaskRun(Base):
    """One task of one run: its state, attempts, payload, result and error."""

    __tablename__ = "task_runs"

    id: Mapped[str] = mapped_column(String(20), primary_key=True, default=lambda: new_id("TR_"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(String(40))
    task_index: Mapped[int] = mapped_column(Integer)
    task_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # TaskRunStatus
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # Ready task runs with the same batch key go to Salesforce in one Collections call.
    batch_key: Mapped[str] = mapped_column(String(250))
    connection_id: Mapped[str | None] = mapped_column(String(20), index=True)
    depends_on: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    # When the latest attempt was claimed (the lease itself moves with each heartbeat).
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last attempt may have reached Salesforce without us seeing the answer.
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set while the task run rides in a Bulk API 2.0 ingest job (`bulk_jobs`): the job holds it
    # (claimed_by "bulk:<job id>", no lease of its own), so the sweeper never expires it; its
    # outcome clears it. The attempt keeps the job id for run history.
    bulk_job_id: Mapped[str | None] = mapped_column(String(18))
    record_id: Mapped[str | None] = mapped_column(String(18))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    run: Mapped[Run] = relationship(back_populates="task_runs")
    attempt_log: Mapped[list[TaskRunAttempt]] = relationship(
        back_populates="task_run", cascade="all, delete-orphan", order_by="TaskRunAttempt.number"
    )

    __table_args__ = (
        Index("ix_task_runs_status_next", "status", "next_attempt_at"),
        # Ready rows only, in claim order: the claim, the worker's ready summary and the
        # sweeper's overdue keys read a key's next rows from it without sorting a backlog
        # (migration 0019; the queries spell the statuses as literals so planners match it).
        Index(
            "ix_task_runs_ready_queue",
            "batch_key",
            "next_attempt_at",
            "id",
            postgresql_where=text(READY_WHERE),
            sqlite_where=text(READY_WHERE),
        ),
        # Only the rows a Bulk job holds (0022): the others, nearly all, cost no index entry.
        Index(
            "ix_task_runs_bulk_job_id",
            "bulk_job_id",
            postgresql_where=text(IN_BULK_JOB_WHERE),
            sqlite_where=text(IN_BULK_JOB_WHERE),
        ),
    )


class TaskRunAttempt(Base):
    """One try of a task run: when, what was sent, what came back."""

    __tablename__ = "task_run_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task_run_id: Mapped[str] = mapped_column(
        ForeignKey("task_runs.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))
    batch_size: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The Bulk API 2.0 ingest job that carried this attempt (None: a Collections call).
    bulk_job_id: Mapped[str | None] = mapped_column(String(18))

    task_run: Mapped[TaskRun] = relationship(back_populates="attempt_log")


class BulkJob(Base):
    """A Bulk API 2.0 ingest job cxloop created, and what it knows of it.

    The row is written, with its task runs attached (`TaskRun.bulk_job_id`), before any data
    goes to Salesforce: a worker that dies leaves a job the next one finds again. Its lease
    (`claimed_by`, `lease_expires_at`) is held by whoever works on it now (preparing the
    upload, or checking the job); between checks nobody holds it and `check_at` says when the
    next check is due (the sweeper re-sends overdue checks). `settled_at` is set once every
    task run of the job has its outcome.
    """

    __tablename__ = "bulk_jobs"

    id: Mapped[str] = mapped_column(String(18), primary_key=True)  # Salesforce's job id
    batch_key: Mapped[str] = mapped_column(String(250))
    connection_id: Mapped[str] = mapped_column(String(20))
    sobject: Mapped[str] = mapped_column(String(80))
    operation: Mapped[str] = mapped_column(String(16))
    external_id_field: Mapped[str | None] = mapped_column(String(80))
    # The CSV's header: results are matched to task runs by these columns' values.
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(20))  # Salesforce's state as last seen
    error_message: Mapped[str] = mapped_column(Text, default="")
    checks: Mapped[int] = mapped_column(Integer, default=0)
    check_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_bulk_jobs_open", "settled_at", "check_at"),)


class OrgThrottle(Base):
    """An org cxloop holds back from until `until` (API limit reached or nearly so)."""

    __tablename__ = "org_throttles"

    org_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    strikes: Mapped[int] = mapped_column(Integer, default=0)


class OutboundNotification(Base):
    """The inbox of Salesforce outbound messages: one row per notification received.

    Salesforce delivers at least once; the unique (org, notification id) makes a redelivery a
    no-op. The org id is kept in its 15-character form, as Salesforce compares ids.
    """

    __tablename__ = "outbound_notifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(15))
    notification_id: Mapped[str] = mapped_column(String(18))
    workflow_id: Mapped[str | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="SET NULL"), index=True
    )
    action_id: Mapped[str] = mapped_column(String(18), default="")
    sobject: Mapped[str] = mapped_column(String(80))
    record_id: Mapped[str | None] = mapped_column(String(18))
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("org_id", "notification_id"),)
