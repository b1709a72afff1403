"""The migration that adds response channels gives existing responses the channel they came
through: API and imports by their source, web responses by their personal link (or contact)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from cxloop.db import migrate
from cxloop.db.engine import create_database_engine

NOW = "2026-01-01 00:00:00.000000"


def test_existing_responses_get_their_channel_and_surveys_keep_their_anonymous_link(
    tmp_path: Path,
) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0006")
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO users (id, email, name, is_admin, is_active, created_at) "
                "VALUES ('UR_1', 'a@example.com', '', 1, 1, :now)"
            ),
            {"now": NOW},
        )
        db.execute(
            text(
                "INSERT INTO surveys (id, name, description, status, language, owner_id, "
                "created_at, updated_at) VALUES ('SV_1', 'S', '', 'active', 'en', 'UR_1', "
                ":now, :now)"
            ),
            {"now": NOW},
        )
        for response_id, source, contact in (
            ("R_api", "api", None),
            ("R_import", "import", None),
            ("R_open", "web", None),
            ("R_link", "web", None),
            ("R_contact", "web", "CT_1"),
        ):
            db.execute(
                text(
                    'INSERT INTO responses (id, survey_id, "values", embedded_data, started_at, '
                    "finished, source, language, contact_id, created_at, updated_at) VALUES "
                    "(:id, 'SV_1', '{}', '{}', :now, 1, :source, 'en', :contact, :now, :now)"
                ),
                {"id": response_id, "source": source, "contact": contact, "now": NOW},
            )
        db.execute(
            text(
                "INSERT INTO personal_links (id, token_hash, survey_id, embedded_data, "
                "created_at, response_id) VALUES ('PL_1', 'h', 'SV_1', '{}', :now, 'R_link')"
            ),
            {"now": NOW},
        )
    migrate.upgrade(engine)
    with engine.connect() as db:
        channels = dict(db.execute(text("SELECT id, channel FROM responses")).all())
        anonymous = db.execute(text("SELECT anonymous_link FROM surveys")).scalar_one()
    engine.dispose()
    assert channels == {
        "R_api": "api",
        "R_import": "import",
        "R_open": "anonymous_link",
        "R_link": "personal_link",
        "R_contact": "personal_link",
    }
    assert anonymous in (1, True)
