"""runs newest first: an index on (created_at, id) for the run history across all surveys"""

from __future__ import annotations

from alembic import op

revision = "0011"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0010"


def upgrade() -> None:
    # The run list of an admin (every survey) pages newest first by (created_at, id): without
    # this index both SQLite and PostgreSQL sort every run for each page.
    op.create_index("ix_runs_created_id", "runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_created_id", table_name="runs")
