"""runs newest first: an index on (created_at, id) for the run history across all surveys

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 14:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The run list of an admin (every survey) pages newest first by (created_at, id): without
    # this index both SQLite and PostgreSQL sort every run for each page.
    op.create_index("ix_runs_created_id", "runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_created_id", table_name="runs")
