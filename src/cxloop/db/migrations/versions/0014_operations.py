"""operations: idempotency keys of submissions, process heartbeats, the key check

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db.ddl import foreign_key, id_column, primary_key, timestamp

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        id_column("user_id"),
        id_column("survey_id"),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        id_column("response_id"),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=True),
        timestamp("created_at"),
        timestamp("expires_at"),
        foreign_key("idempotency_keys", "user_id", "users", ondelete="CASCADE"),
        foreign_key("idempotency_keys", "survey_id", "surveys", ondelete="CASCADE"),
        primary_key("idempotency_keys", "user_id", "survey_id", "key"),
    )  # fmt: skip
    op.create_index(
        op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"], unique=False
    )
    op.create_table(
        "process_heartbeats",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        timestamp("started_at"),
        timestamp("beat_at"),
        primary_key("process_heartbeats", "id"),
    )
    op.create_index(
        op.f("ix_process_heartbeats_role"), "process_heartbeats", ["role"], unique=False
    )
    op.create_table(
        "key_checks",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        timestamp("created_at"),
        primary_key("key_checks", "id"),
    )


def downgrade() -> None:
    op.drop_table("key_checks")
    op.drop_index(op.f("ix_process_heartbeats_role"), table_name="process_heartbeats")
    op.drop_table("process_heartbeats")
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
