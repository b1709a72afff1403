"""The demo's seed data is YAML in the package, and each file is a valid document."""

from __future__ import annotations

from importlib.resources import files

from cxloop.demo import seed
from cxloop.domain.survey_content import SurveyContent
from cxloop.domain.workflow import parse_document


def test_seed_files_ship_inside_the_package() -> None:
    folder = files("cxloop.demo").joinpath("seed")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    assert names == ["demo.yaml", "outbound_workflow.yaml", "response_workflow.yaml", "survey.yaml"]


def test_seeded_survey_and_workflows_are_valid_documents() -> None:
    content = SurveyContent.from_document(seed.SURVEY_CONTENT)
    assert [q.qid for q in content.questions] == sorted(seed.ANSWERS)
    for document in (seed.outbound_workflow(), seed.response_workflow()):
        parsed = parse_document(document)
        # every task and event uses the connection the demo links
        named = {getattr(part, "connection", None) for part in (parsed.event, *parsed.tasks)}
        assert named - {None, ""} <= {seed.CONNECTION}


def test_each_call_returns_a_fresh_document() -> None:
    first = seed.outbound_workflow()
    first["name"] = "changed"
    assert seed.outbound_workflow()["name"] != "changed"
