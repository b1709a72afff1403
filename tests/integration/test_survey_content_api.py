"""A survey's content through the API: the whole document (JSON, YAML), single questions, and
imports of QSF files of several shapes."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from cxloop.bootstrap import Container
from tests.conftest import reference_samples
from tests.integration.survey_helpers import all_types, make_survey, quick_person, share
from tests.integration.test_auth_api import assert_error

QSF = Path(__file__).resolve().parents[1] / "fixtures" / "qsf"

# fixture file -> questions imported per type (tests/unit/test_qsf_import.py checks the details)
QSF_SHAPES = {
    "mc_single_answer.qsf": {"single_choice": 4},
    "mc_multiple_answer.qsf": {"multiple_choice": 3},
    "nps.qsf": {"nps": 1},
    "matrix_likert.qsf": {"matrix": 4},
    "text_entry.qsf": {"text_entry": 7},
    "slider.qsf": {"rating": 2},
    "descriptive.qsf": {"descriptive": 2},
    "unsupported.qsf": {},
    "display_logic.qsf": {
        "single_choice": 2, "multiple_choice": 1, "matrix": 1, "text_entry": 16, "rating": 1,
        "nps": 1,
    },
}  # fmt: skip


def content_path(survey_id: str, rest: str = "/content") -> str:
    return f"/api/v1/surveys/{survey_id}{rest}"


def test_content_round_trips_as_json_and_yaml_with_versions(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, status="draft")
    url = content_path(survey_id)
    got = client.get(url, headers=alice.headers)
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    assert got.json() == all_types()
    as_yaml = client.get(url, params={"format": "yaml"}, headers=alice.headers)
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert "qid: QID9" in as_yaml.text
    edited = as_yaml.text.replace("Rate the agent", "Rate our agent")
    put = client.put(
        url, content=edited,
        headers=alice.headers | {"content-type": "application/yaml", "if-match": '"1"'},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == '"2"' and "Rate our agent" in put.text
    stale = client.put(url, json=all_types(), headers=alice.headers | {"if-match": '"1"'})
    assert assert_error(stale, 409)["code"] == "content_changed"
    assert_error(client.put(url, json=all_types(), headers=alice.headers | {"if-match": "x"}), 422)
    assert client.get(url, headers=alice.headers).json()["questions"][1]["text"] == "Rate our agent"


def test_invalid_content_lists_every_problem_with_its_path(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, status="draft")
    url = content_path(survey_id)
    document = all_types()
    document["questions"][0]["type"] = "slider"
    document["questions"][2]["choices"][1]["id"] = "1"
    document["questions"][9]["show_if"]["field"] = "QID77"
    error = assert_error(client.put(url, json=document, headers=alice.headers), 422)
    assert error["code"] == "invalid_content"
    paths = {p["path"] for p in error["details"]}
    assert {"questions[0]", "questions[2].choices[1].id"} <= paths
    assert any(p["path"].startswith("questions[9].show_if") for p in error["details"])
    assert all(set(p) == {"path", "message"} for p in error["details"])
    bad_json = client.put(url, content=b"{", headers=alice.headers)
    assert_error(bad_json, 400, "malformed_json")
    bad_yaml = client.put(
        url, content=b"a: [", headers=alice.headers | {"content-type": "text/yaml"}
    )
    assert_error(bad_yaml, 400, "malformed_yaml")
    assert_error(client.put(url, json=[1, 2], headers=alice.headers), 422, "invalid_content")
    nested = b"[" * 100_000 + b"]" * 100_000
    assert_error(client.put(url, content=nested, headers=alice.headers), 400)
    aliases = b"a: &a [1]\nb: *a\n"
    as_yaml = alice.headers | {"content-type": "application/yaml"}
    assert_error(client.put(url, content=aliases, headers=as_yaml), 400)
    assert client.get(url, headers=alice.headers).headers["etag"] == '"1"'  # nothing changed


def test_single_questions_can_be_added_read_replaced_and_deleted(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, status="draft")
    questions = content_path(survey_id, "/questions")
    listed = client.get(questions, headers=alice.headers).json()
    assert [q["qid"] for q in listed["items"]] == [f"QID{n}" for n in range(1, 11)]
    added = client.post(questions, json={"type": "nps", "text": "Again?"}, headers=alice.headers)
    assert added.status_code == 201, added.text
    assert added.json() == {"qid": "QID11", "type": "nps", "text": "Again?", "page": 3}
    intro = {"type": "descriptive", "text": "Intro"}
    before = client.post(questions, params={"before": "QID5"}, json=intro, headers=alice.headers)
    assert before.json()["qid"] == "QID12" and before.json()["page"] == 2
    order = [q["qid"] for q in client.get(questions, headers=alice.headers).json()["items"]]
    assert order.index("QID12") == order.index("QID5") - 1
    one = f"{questions}/QID2"
    assert client.get(one, headers=alice.headers).json()["scale_max"] == 5
    replaced = client.put(one, json={"type": "rating", "text": "Stars", "scale_max": 7},
                          headers=alice.headers)  # fmt: skip
    assert replaced.status_code == 200 and replaced.json()["qid"] == "QID2"
    assert client.get(one, headers=alice.headers).json()["text"] == "Stars"
    mismatch = client.put(one, json={"qid": "QID3", "type": "nps"}, headers=alice.headers)
    assert_error(mismatch, 422, "qid_mismatch")
    unknown_type = client.put(one, json={"type": "hotspot"}, headers=alice.headers)
    assert "unknown question type" in assert_error(unknown_type, 422)["message"]
    # QID10's display logic uses QID1: deleting QID1 would break it
    in_use = assert_error(client.delete(f"{questions}/QID1", headers=alice.headers), 422)
    assert "QID1 does not exist" in in_use["message"]
    assert client.delete(f"{questions}/QID8", headers=alice.headers).status_code == 204
    assert_error(client.get(f"{questions}/QID8", headers=alice.headers), 404)
    assert_error(client.delete(f"{questions}/QID8", headers=alice.headers), 404)
    assert_error(client.post(questions, json=[1], headers=alice.headers), 422)
    assert_error(client.post(questions, params={"before": "QID99"}, json={"type": "nps"},
                             headers=alice.headers), 404)  # fmt: skip


def test_viewers_read_the_content_and_only_editors_change_it(
    client: TestClient, container: Container
) -> None:
    alice, bob, carol = (
        quick_person(container, f"{n}@example.com") for n in ("alice", "bob", "carol")
    )
    survey_id = make_survey(client, alice, status="draft")
    share(client, alice, survey_id, bob, "viewer")
    url = content_path(survey_id)
    assert client.get(url, headers=bob.headers).status_code == 200
    assert_error(client.put(url, json=all_types(), headers=bob.headers), 403)
    assert_error(client.post(content_path(survey_id, "/questions"), json={"type": "nps"},
                             headers=bob.headers), 403)  # fmt: skip
    for request in (
        lambda: client.get(url, headers=carol.headers),
        lambda: client.put(url, json=all_types(), headers=carol.headers),
        lambda: client.get(content_path(survey_id, "/questions/QID1"), headers=carol.headers),
        lambda: client.post(content_path(survey_id, "/import"),
                            files={"file": ("a.json", b"{}")}, headers=carol.headers),
    ):  # fmt: skip
        assert_error(request(), 404)


def test_qsf_files_of_several_shapes_import_with_a_report(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, {"format_version": 1}, status="draft")
    url = content_path(survey_id, "/import")
    files = sorted(QSF.glob("*.qsf")) + reference_samples("qualtrics/qsf", "*.qsf")
    for file in files:
        reply = client.post(url, files={"file": (file.name, file.read_bytes())},
                            headers=alice.headers)  # fmt: skip
        assert reply.status_code == 200, (file.name, reply.text)
        report = reply.json()
        if file.name in QSF_SHAPES:
            assert report["imported"] == QSF_SHAPES[file.name], file.name
        assert report["format"] == "qsf" and report["imported_total"] == sum(
            report["imported"].values()
        )
        content = client.get(content_path(survey_id), headers=alice.headers).json()
        assert len(content.get("questions", [])) == report["imported_total"]
    unsupported_file = {"file": ("u.qsf", (QSF / "unsupported.qsf").read_bytes())}
    unsupported = client.post(url, files=unsupported_file, headers=alice.headers).json()
    skipped = {s["element"]: s for s in unsupported["skipped"]}
    assert skipped["QID1"]["reason"] == "side-by-side questions are not supported"
    assert skipped["QID1"]["kind"].startswith("SBS")
    flow = client.post(url, files={"file": ("f.qsf", (QSF / "flow_and_pages.qsf").read_bytes())},
                       headers=alice.headers).json()  # fmt: skip
    assert flow["pages"] == 6 and flow["embedded_data_fields"] == 3
    yaml_doc = client.get(content_path(survey_id), params={"format": "yaml"},
                          headers=alice.headers).content  # fmt: skip
    as_yaml = client.post(url, files={"file": ("mine.yaml", yaml_doc)}, headers=alice.headers)
    assert as_yaml.status_code == 200 and as_yaml.json()["format"] == "yaml"
    as_json = client.post(url, files={"file": ("mine.json", json.dumps(all_types()).encode())},
                          headers=alice.headers)  # fmt: skip
    assert as_json.json()["imported"]["text_entry"] == 4 and as_json.json()["pages"] == 3


def test_garbage_files_are_refused_and_nothing_changes(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    survey_id = make_survey(client, alice, status="draft")
    url = content_path(survey_id, "/import")
    garbage = {
        "not-json.qsf": b"\x89PNG\r\n\x1a\n not a survey",
        "list.qsf": b"[1, 2, 3]",
        "wrong-shape.qsf": json.dumps({"SurveyEntry": "x", "SurveyElements": {"a": 1}}).encode(),
        "deep.qsf": b"[" * 100_000 + b"]" * 100_000,
        "empty.qsf": b"",
        "bad.json": b'{"format_version": 1, "questions": [{"qid": "Q1"}]}',
        "bad.yaml": b"questions: [",
    }
    for name, data in garbage.items():
        reply = client.post(url, files={"file": (name, data)}, headers=alice.headers)
        error = assert_error(reply, 422)
        assert error["code"] in ("invalid_qsf", "invalid_content"), (name, error)
    unknown = client.post(url, files={"file": ("survey.docx", b"PK")}, headers=alice.headers)
    assert_error(unknown, 422, "unknown_format")
    huge = b'{"SurveyEntry": {}, "SurveyElements": [' + b" " * (11 * 1024 * 1024) + b"]}"
    assert_error(client.post(url, files={"file": ("huge.qsf", huge)}, headers=alice.headers), 413)
    assert_error(client.post(url, headers=alice.headers), 422)  # no file at all
    assert client.get(content_path(survey_id), headers=alice.headers).headers["etag"] == '"1"'
