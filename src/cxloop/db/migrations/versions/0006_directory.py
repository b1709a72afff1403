"""the directory (directories, mailing lists, contacts, distributions, invitations), the
outbound-message inbox, and the workflow's encrypted outbound token"""

from __future__ import annotations

from alembic import op

from cxloop.db import ddl

revision = "0006"
down_revision = "0005"


def upgrade() -> None:

    ddl.create_table(
        "directories",
        ddl.id_column("id"),
        ddl.id_column("owner_id"),
        ddl.string("name", 100),
        ddl.integer("frequency_limit", nullable=True),
        ddl.integer("frequency_days", nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("updated_at"),
        references={"owner_id": ddl.cascade("users")},
        unique_on=[["owner_id", "name"]],
    )
    ddl.create_indexes("directories", "owner_id")

    ddl.create_table(
        "contacts",
        ddl.id_column("id"),
        ddl.id_column("directory_id"),
        ddl.string("email", 320),
        ddl.string("first_name", 100),
        ddl.string("last_name", 100),
        ddl.string("phone", 40),
        ddl.string("language", 16),
        ddl.string("external_ref", 100, nullable=True),
        ddl.json("embedded_data"),
        ddl.boolean("opted_out"),
        ddl.timestamp("opted_out_at", nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("updated_at"),
        references={"directory_id": ddl.cascade("directories")},
        unique_on=[["directory_id", "email"]],
    )
    ddl.create_indexes(
        "contacts", ix_contacts_directory_external_ref=["directory_id", "external_ref"]
    )

    ddl.create_table(
        "mailing_lists",
        ddl.id_column("id"),
        ddl.id_column("directory_id"),
        ddl.string("name", 100),
        ddl.timestamp("created_at"),
        references={"directory_id": ddl.cascade("directories")},
        unique_on=[["directory_id", "name"]],
    )
    ddl.create_table(
        "distributions",
        ddl.id_column("id"),
        ddl.id_column("survey_id"),
        ddl.id_column("directory_id"),
        ddl.id_column("mailing_list_id", nullable=True),
        ddl.id_column("task_run_id", nullable=True),
        ddl.string("subject", 998),
        ddl.text("body"),
        ddl.string("from_name", 200),
        ddl.string("from_address", 320),
        ddl.string("reply_to", 320),
        ddl.integer("link_expiry_days", nullable=True),
        ddl.id_column("created_by", nullable=True),
        ddl.timestamp("created_at"),
        references={
            "created_by": ddl.set_null("users"),
            "directory_id": ddl.cascade("directories"),
            "mailing_list_id": ddl.set_null("mailing_lists"),
            "survey_id": ddl.cascade("surveys"),
        },
        unique_on=[["task_run_id"]],
    )
    ddl.create_indexes("distributions", "survey_id")

    ddl.create_table(
        "mailing_list_members",
        ddl.id_column("mailing_list_id"),
        ddl.id_column("contact_id"),
        ddl.timestamp("added_at"),
        key=["mailing_list_id", "contact_id"],
        references={
            "contact_id": ddl.cascade("contacts"),
            "mailing_list_id": ddl.cascade("mailing_lists"),
        },
    )
    ddl.create_indexes("mailing_list_members", "contact_id")

    ddl.create_table(
        "outbound_notifications",
        ddl.serial_id(),
        ddl.string("org_id", 15),
        ddl.string("notification_id", 18),
        ddl.id_column("workflow_id", nullable=True),
        ddl.string("action_id", 18),
        ddl.string("sobject", 80),
        ddl.string("record_id", 18, nullable=True),
        ddl.json("fields"),
        ddl.timestamp("received_at"),
        references={"workflow_id": ddl.set_null("workflows")},
        unique_on=[["org_id", "notification_id"]],
    )
    ddl.create_indexes("outbound_notifications", "received_at", "workflow_id")

    ddl.create_table(
        "invitations",
        ddl.id_column("id"),
        ddl.id_column("distribution_id"),
        ddl.id_column("contact_id"),
        ddl.id_column("personal_link_id", nullable=True),
        ddl.text("link_token", nullable=True),
        ddl.string("status", 16),
        ddl.text("status_reason"),
        ddl.string("message_id", 250, nullable=True),
        ddl.timestamp("created_at"),
        ddl.timestamp("sent_at", nullable=True),
        references={
            "contact_id": ddl.cascade("contacts"),
            "distribution_id": ddl.cascade("distributions"),
            "personal_link_id": ddl.set_null("personal_links"),
        },
        unique_on=[["distribution_id", "contact_id"]],
    )
    ddl.create_indexes("invitations", ix_invitations_contact_created=["contact_id", "created_at"])
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.add_column(ddl.text("outbound_token", nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_column("outbound_token")

    op.drop_table("invitations")
    op.drop_table("outbound_notifications")
    op.drop_table("mailing_list_members")
    op.drop_table("distributions")
    op.drop_table("mailing_lists")
    op.drop_table("contacts")
    op.drop_table("directories")
