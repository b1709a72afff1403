"""survey content (surveys.content), responses, personal links"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cxloop.db import ddl

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    ddl.create_table(
        "responses",
        ddl.id_column("id"),
        ddl.id_column("survey_id"),
        ddl.json("values"),
        ddl.json("embedded_data"),
        ddl.timestamp("started_at"),
        ddl.timestamp("ended_at", nullable=True),
        ddl.integer("duration_s", nullable=True),
        ddl.boolean("finished"),
        ddl.string("source", 10),
        ddl.string("language", 16),
        ddl.id_column("distribution_id", nullable=True),
        ddl.id_column("contact_id", nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("updated_at"),
        references={"survey_id": ddl.cascade("surveys")},
    )
    ddl.create_indexes("responses", ix_responses_survey_created=["survey_id", "created_at", "id"])

    ddl.create_table(
        "personal_links",
        ddl.id_column("id"),
        ddl.string("token_hash", 64),
        ddl.id_column("survey_id"),
        ddl.id_column("contact_id", nullable=True),
        ddl.id_column("distribution_id", nullable=True),
        ddl.json("embedded_data"),
        ddl.timestamp("created_at"),
        ddl.timestamp("expires_at", nullable=True),
        ddl.timestamp("used_at", nullable=True),
        ddl.id_column("response_id", nullable=True),
        references={"response_id": ddl.set_null("responses"), "survey_id": ddl.cascade("surveys")},
        unique_on=[["token_hash"]],
    )
    ddl.create_indexes("personal_links", "survey_id")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.add_column(ddl.json("content", nullable=True))
        batch_op.add_column(
            sa.Column("content_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_column("content_version")
        batch_op.drop_column("content")

    op.drop_table("personal_links")
    op.drop_table("responses")
