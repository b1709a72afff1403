"""server-side web sessions, throttle counters, and the browser binding of OAuth attempts

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "throttle_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_throttle_counters")),
    )
    with op.batch_alter_table("throttle_counters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_throttle_counters_updated_at"), ["updated_at"], unique=False
        )

    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bootstrap_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("bootstrap_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_oauth_attempts_bootstrap_hash"), ["bootstrap_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_oauth_attempts_bootstrap_hash"), type_="unique")
        batch_op.drop_column("browser_hash")
        batch_op.drop_column("bootstrap_expires_at")
        batch_op.drop_column("bootstrap_hash")
    with op.batch_alter_table("throttle_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_throttle_counters_updated_at"))
    op.drop_table("throttle_counters")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))
    op.drop_table("web_sessions")
