"""salesforce describes: an sObject's describe shared by every process"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0021"
down_revision = "0020"


def upgrade() -> None:
    ddl.create_table(
        "salesforce_describes",
        ddl.string("connection_key", 255),
        ddl.string("sobject", 255),
        ddl.timestamp("fetched_at"),
        ddl.json("describe"),
        key=["connection_key", "sobject"],
    )


def downgrade() -> None:
    op.drop_table("salesforce_describes")
