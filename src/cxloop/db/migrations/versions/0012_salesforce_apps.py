"""connected apps set at run time: the default one and one per login host"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    ddl.create_table(
        "salesforce_apps",
        ddl.string("login_host", 300),
        ddl.string("client_id", 300),
        ddl.text("client_secret"),
        ddl.string("origin", 16),
        ddl.id_column("updated_by", nullable=True),
        ddl.timestamp("updated_at"),
        key=["login_host"],
        references={"updated_by": ddl.set_null("users")},
    )


def downgrade() -> None:
    op.drop_table("salesforce_apps")
