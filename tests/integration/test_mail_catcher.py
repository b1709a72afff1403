"""The built-in mail catcher: real SMTP in, the JSON API and the web view out."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

from cxloop.mail.catcher import Mailbox, MailCatcher, linkify
from cxloop.mail.sender import build_message, send
from cxloop.settings import Settings


@pytest.fixture(scope="module")
def catcher() -> Iterator[MailCatcher]:
    with MailCatcher(capacity=3) as running:
        yield running


@pytest.fixture(autouse=True)
def empty(catcher: MailCatcher) -> None:
    catcher.mailbox.clear()


def mail(
    subject: str, text: str, to: str = "ann@example.com", html: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "cxloop <cxloop@localhost>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def deliver(catcher: MailCatcher, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", catcher.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


def test_a_mail_sent_by_smtp_shows_in_the_json_and_the_pages(catcher: MailCatcher) -> None:
    deliver(
        catcher,
        mail("How did we do on case 00001001?", "Answer: http://127.0.0.1:8000/s/S_1?t=abc&x=1."),
    )
    [caught] = httpx.get(f"{catcher.web_url}/api/messages").json()
    assert caught["to"] == "ann@example.com"
    assert caught["envelope_to"] == ["ann@example.com"]
    assert caught["subject"] == "How did we do on case 00001001?"
    assert caught["links"] == ["http://127.0.0.1:8000/s/S_1?t=abc&x=1"]
    assert caught["html"] is None
    listing = httpx.get(f"{catcher.web_url}/")
    assert listing.status_code == 200
    assert "How did we do on case 00001001?" in listing.text
    assert f'href="/messages/{caught["number"]}"' in listing.text
    shown = httpx.get(f"{catcher.web_url}/messages/{caught['number']}")
    assert shown.status_code == 200
    # the link is clickable, its & escaped inside the attribute; the full stop is left out
    assert '<a href="http://127.0.0.1:8000/s/S_1?t=abc&amp;x=1" rel="noopener noreferrer"' in (
        shown.text
    )
    assert httpx.get(f"{catcher.web_url}/api/messages/{caught['number']}").json() == caught
    assert httpx.get(f"{catcher.web_url}/api/messages/999").status_code == 404


def test_cxloops_own_sender_reaches_the_catcher(catcher: MailCatcher) -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=catcher.smtp_port, data_dir="/tmp/x")
    message = build_message(
        settings, to=["bob@example.com"], subject="Ünïcode\r\nBcc: evil@example.com", body="Hi"
    )
    send(settings, message)
    found = catcher.mailbox.wait_for(lambda m: "bob@example.com" in m.to, timeout=5)
    assert found is not None
    assert found.subject == "Ünïcode Bcc: evil@example.com"
    assert found.envelope_to == ["bob@example.com"]


def test_a_hostile_subject_and_html_part_stay_inert(catcher: MailCatcher) -> None:
    hostile = '<script>alert("subject")</script><img src=x onerror=alert(1)>'
    deliver(
        catcher,
        mail(
            hostile,
            'javascript:alert(1) <b>bold</b> http://x.example/"><script>alert(2)</script>',
            html='<p>Hi</p><script>alert("html")</script><a href="javascript:alert(3)">x</a>',
        ),
    )
    [caught] = catcher.mailbox.messages()
    for page in (f"{catcher.web_url}/", f"{catcher.web_url}/messages/{caught.number}"):
        reply = httpx.get(page)
        assert "<script>" not in reply.text and "<img" not in reply.text
        assert "&lt;script&gt;alert(&quot;subject&quot;)&lt;/script&gt;" in reply.text
        assert "default-src 'none'" in reply.headers["content-security-policy"]
        assert reply.headers["x-content-type-options"] == "nosniff"
    shown = httpx.get(f"{catcher.web_url}/messages/{caught.number}").text
    # the HTML part only inside a sandboxed frame, as an escaped attribute
    assert '<iframe sandbox="" ' in shown
    assert 'srcdoc="&lt;p&gt;Hi&lt;/p&gt;&lt;script&gt;alert(&quot;html&quot;)' in shown
    # only http(s) links are made clickable, and a link ends where markup would begin
    assert 'href="javascript:' not in shown
    assert '<a href="http://x.example/" rel="noopener noreferrer"' in shown


def test_the_mailbox_keeps_only_the_newest(catcher: MailCatcher) -> None:
    for n in range(5):
        deliver(catcher, mail(f"mail {n}", "x"))
    assert [m.subject for m in catcher.mailbox.messages()] == ["mail 2", "mail 3", "mail 4"]
    assert httpx.delete(f"{catcher.web_url}/api/messages").status_code == 204
    assert httpx.get(f"{catcher.web_url}/api/messages").json() == []


def test_wait_for_wakes_up_when_a_mail_arrives() -> None:
    mailbox = Mailbox()
    later = threading.Timer(0.1, lambda: mailbox.add(b"Subject: late\r\n\r\nbody", "a@x", ["b@y"]))
    later.start()
    found = mailbox.wait_for(lambda m: m.subject == "late", timeout=5)
    assert found is not None and found.text.strip() == "body"
    assert mailbox.wait_for(lambda m: m.subject == "never", timeout=0.05) is None


def test_linkify_escapes_everything_but_the_links() -> None:
    assert linkify("a <b> https://e.com/x?a=1&b=2). c") == (
        'a &lt;b&gt; <a href="https://e.com/x?a=1&amp;b=2" rel="noopener noreferrer" '
        'target="_blank">https://e.com/x?a=1&amp;b=2</a>). c'
    )


def test_the_mailbox_is_bounded_in_bytes_too() -> None:
    mailbox = Mailbox(capacity=100, max_total_bytes=250)
    for n in range(5):
        mailbox.add(f"Subject: {n}\r\n\r\n".encode() + b"x" * 100)
    assert [m.subject for m in mailbox.messages()] == ["3", "4"]
