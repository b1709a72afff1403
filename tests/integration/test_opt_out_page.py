"""/optout/{token}: the unsubscribe page of invitations. No login, idempotent, RFC 8058
one-click, and a forged or stale link gets a human 404 page, never an error."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cxloop import security
from cxloop.bootstrap import Container
from cxloop.services import directory
from cxloop.services.access import Actor
from tests.integration.survey_helpers import quick_person

DONE = "You will not receive further survey invitations"


def test_opt_out_page_masks_the_email_and_is_idempotent(
    client: TestClient, container: Container
) -> None:
    alice = quick_person(container, "alice@example.com")
    actor = Actor(id=alice.id, email=alice.email, is_admin=False)
    target = directory.create_directory(container.db, actor, "Customers")
    contact = directory.create_contact(
        container.db, actor, target.id, directory.ContactFields(email="jane.doe@example.com")
    )
    other = directory.create_contact(
        container.db, actor, target.id, directory.ContactFields(email="rob@example.com")
    )
    secret = container.settings.secret_key.get_secret_value()
    url = directory.opt_out_url(container.settings.base_url, secret, contact.id)
    path = "/optout/" + url.rsplit("/optout/", 1)[1]

    shown = client.get(path)
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    assert "j*******@example.com" in shown.text and "jane.doe" not in shown.text
    assert f'<form method="post" action="{path}">' in shown.text and DONE not in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert shown.headers["referrer-policy"] == "no-referrer"
    assert not directory.get_contact(container.db, actor, contact.id).opted_out  # GET is safe

    for _ in range(2):  # again and again: the same answer, no error
        done = client.post(path)
        assert done.status_code == 200 and DONE in done.text and "<form" not in done.text
    stored = directory.get_contact(container.db, actor, contact.id)
    assert stored.opted_out and stored.opted_out_at is not None
    assert DONE in client.get(path).text
    assert not directory.get_contact(container.db, actor, other.id).opted_out

    # RFC 8058 one-click, as a mail client sends it (no cookie, no CSRF token)
    other_path = f"/optout/{security.opt_out_token(secret, other.id)}"
    one_click = TestClient(client.app).post(
        other_path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    assert directory.get_contact(container.db, actor, other.id).opted_out

    # forged, tampered, foreign-key-less and absurd tokens: a 404 page that says so
    forged = security.opt_out_token("not-the-secret", contact.id)
    tampered = path.rsplit("/", 1)[1][:-1] + ("0" if not path.endswith("0") else "1")
    stale = security.opt_out_token(secret, "CT_deleted000000")
    for token in (
        forged,
        tampered,
        stale,
        "nothing",
        ".abc",
        "x" * 5000,
        "%E2%80%AE",
        "a.b.c",
        "CT_x.é",
    ):
        for method in ("GET", "POST"):
            reply = client.request(method, f"/optout/{token}")
            assert reply.status_code == 404, (method, token, reply.text[:200])
            assert "This unsubscribe link is not valid" in reply.text
            assert reply.headers["content-type"].startswith("text/html")
    directory.delete_contact(container.db, actor, contact.id)
    assert client.post(path).status_code == 404
