"""admin page indexes: the Workflows tab's 24-hour counts and the survey lists' response counts
read an index only
"""

from __future__ import annotations

from alembic import op

revision = "0015"
# The head of this branch's base; the coordinator re-chains migrations when merging.
down_revision = "0014"


def upgrade() -> None:
    # The Workflows tab counts each workflow's runs and failures of the last 24 hours and finds
    # its last run's status: with the workflow and status in the index, both read the index
    # only (on PostgreSQL the (survey_id, created_at) index made it fetch every run of the day,
    # ~175 ms at 100,000 runs).
    op.create_index(
        "ix_runs_survey_window", "runs", ["survey_id", "created_at", "workflow_id", "status"]
    )
    # The survey list and the Responses tab count a survey's incomplete responses: a range of
    # this index instead of reading every response row.
    op.create_index("ix_responses_survey_finished", "responses", ["survey_id", "finished"])


def downgrade() -> None:
    op.drop_index("ix_responses_survey_finished", table_name="responses")
    op.drop_index("ix_runs_survey_window", table_name="runs")
