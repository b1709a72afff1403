"""The emulator's pages: records list, editing a record (closing a Case), the outbound queue."""

from __future__ import annotations

import re
from typing import Any

from .conftest import Api, Listener


def test_index_lists_orgs_objects_and_counts(client: Any) -> None:
    page = client.get("/__emulator__/ui")
    assert page.status_code == 200
    assert "Acme Corp" in page.text and "00D5g00000SfEmUEAV" in page.text
    assert 'href="/__emulator__/ui/acme/Case"' in page.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/__emulator__/ui"


def test_closing_a_case_from_the_page_fires_the_outbound_rule(
    client: Any, admin: Api, listener: Listener
) -> None:
    client.patch(
        "/__emulator__/outbound/rules/Case_Closed_Survey",
        json={"active": True, "endpoint_url": listener.url},
    )
    case_id = admin.query("SELECT Id FROM Case").json()["records"][0]["Id"]
    listing = client.get("/__emulator__/ui/acme/Case")
    assert case_id in listing.text
    form = client.get(f"/__emulator__/ui/acme/Case/{case_id}")
    assert form.status_code == 200 and '<select id="f-Status" name="Status">' in form.text
    fields = dict(re.findall(r'name="([A-Za-z_]+)" value="([^"]*)"', form.text))
    fields["Status"] = "Closed"
    saved = client.post(
        f"/__emulator__/ui/acme/Case/{case_id}", data=fields, follow_redirects=False
    )
    assert saved.status_code == 303
    assert admin.get(f"/sobjects/Case/{case_id}").json()["Status"] == "Closed"
    listener.wait_for(1)
    queue = client.get("/__emulator__/ui/outbound")
    assert case_id in queue.text and "Case_Closed_Survey" in queue.text


def test_a_bad_edit_shows_salesforce_error(client: Any, admin: Api) -> None:
    contact_id = admin.query("SELECT Id FROM Contact").json()["records"][0]["Id"]
    page = client.post(
        f"/__emulator__/ui/acme/Contact/{contact_id}", data={"LastName": "", "Email": "nope"}
    )
    assert page.status_code == 400
    assert "REQUIRED_FIELD_MISSING" in page.text


def test_unknown_pages_are_404(client: Any) -> None:
    assert client.get("/__emulator__/ui/nope/Case").status_code == 404
    assert client.get("/__emulator__/ui/acme/Case/500000000000001AAA").status_code == 404
