"""Rich text on the respondent's pages: the safe subset of HTML kept (issue 17)."""

from __future__ import annotations

from cxloop.domain.rich_text import rich_html
from cxloop.web.middleware import SecurityHeadersMiddleware

CONSENT = """<div><strong>Please read</strong> the information
below carefully.</div>
<ul><li>Taking part is <u>voluntary</u>.</li><li>You may stop at <em>any</em> time.</li></ul>
<img src="https://images.example.org/logo.png" alt="University logo" onerror="alert(1)">
<img src="https://tracker.example.net/pixel.gif" alt="Lab banner">
<script>alert(1)</script><p style="color: red" onclick="steal()">Thank you.</p>"""


def test_bold_italic_underline_paragraphs_and_lists_are_kept() -> None:
    shown = rich_html(CONSENT, ["images.example.org"])
    assert "<strong>Please read</strong>" in shown
    assert "<ul><li>Taking part is <u>voluntary</u>.</li><li>You may stop at <em>any</em>" in shown
    assert "<p>Thank you.</p>" in shown
    assert "script" not in shown and "onclick" not in shown and "style=" not in shown


def test_images_show_only_from_allowed_hosts_and_otherwise_as_their_alt_text() -> None:
    shown = rich_html(CONSENT, ["images.example.org"])
    assert '<img src="https://images.example.org/logo.png" alt="University logo">' in shown
    assert "tracker.example.net" not in shown
    assert '<span class="image-alt">[Lab banner]</span>' in shown
    nothing_allowed = rich_html(CONSENT)
    assert "<img" not in nothing_allowed and "[University logo]" in nothing_allowed
    assert "img-src 'self' data: https://images.example.org;" in survey_page_csp(
        ["images.example.org"]
    )
    assert "script-src 'self';" in survey_page_csp([])


def survey_page_csp(image_hosts: list[str]) -> str:
    """The Content-Security-Policy of a survey page, as the app's middleware sends it."""
    headers = SecurityHeadersMiddleware(
        None,
        frame_ancestors=[],
        https=False,
        survey_image_hosts=image_hosts,  # type: ignore[arg-type]
    ).headers_for("/s/SV_x")
    return dict(headers)[b"content-security-policy"].decode()


def test_source_line_breaks_are_not_hard_breaks_in_html_but_are_in_plain_text() -> None:
    inline = rich_html(CONSENT, inline=True)
    assert "<strong>Please read</strong> the information\nbelow carefully." in inline
    assert "carefully.<br>Taking part" in inline  # a list item starts a new line in a legend
    assert "<ul>" not in inline and "<p>" not in inline
    assert rich_html("Line one\nLine 2 < 3") == "Line one<br>Line 2 &lt; 3"
