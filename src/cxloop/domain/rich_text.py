"""Rich text in survey texts: the safe subset of HTML a respondent page shows.

Question texts imported from the reference product are HTML: the words researchers stressed
(bold, italic, underline), paragraphs, lists, now and then an image. ``rich_html()`` keeps that
subset and nothing else, sanitised with nh3 (the Ammonia sanitiser, maintained, not a filter of
our own): no scripts, no event attributes, no styles, links only to web addresses. Line breaks in
the HTML source are just spaces, as in a browser; ``<br>`` stays a break.

Images are kept when their host is one the installation allows (a setting that also goes into
the pages' CSP ``img-src``); any other image is shown as its alt text, so nothing is silently
lost and no page loads from a host nobody approved.

``inline=True`` gives what may sit in a question's legend or a choice's label (phrasing only):
paragraphs and list items become line breaks.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from types import MappingProxyType
from urllib.parse import urlsplit

import nh3

_INLINE_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "br", "span", "sup", "sub", "img", "a", "mark"}
)
_BLOCK_TAGS = _INLINE_TAGS | {"p", "div", "ul", "ol", "li", "h2", "h3", "h4", "blockquote"}
_ATTRIBUTES = MappingProxyType(
    {"img": frozenset({"src", "alt", "width", "height"}), "a": frozenset({"href"})}
)
_OPENING = re.compile(r"<(?:p|div|li|ul|ol|h[1-6]|blockquote|tr)\b[^>]*>", re.IGNORECASE)
_CLOSING = re.compile(r"</(?:p|div|li|ul|ol|h[1-6]|blockquote|tr)\s*>", re.IGNORECASE)
_MARKUP = re.compile(r"<[A-Za-z/!]")
_IMAGE_WITHOUT_SOURCE = re.compile(r"<img(?![^>]*\ssrc=)([^>]*)>")
_ALT = re.compile(r'\salt="([^"]*)"')
_BREAKS = re.compile(r"(?:\s*<br>\s*){2,}")


def rich_html(text: str, image_hosts: Iterable[str] = (), *, inline: bool = False) -> str:
    """The safe HTML of a survey text (see the module docstring). Never raises."""
    if not isinstance(text, str) or not text:
        return ""
    hosts = {host.lower() for host in image_hosts}

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            parts = urlsplit(value)
            allowed = parts.scheme == "https" and (parts.hostname or "").lower() in hosts
            return value if allowed else None
        return value

    if not looks_like_html(text):
        text = text_to_html(text)
    source = _CLOSING.sub("", _OPENING.sub("<br>", text)) if inline else text
    try:
        cleaned = nh3.clean(
            source,
            tags=_INLINE_TAGS if inline else _BLOCK_TAGS,
            attributes=dict(_ATTRIBUTES),  # nh3 takes only a dict
            attribute_filter=keep,
            url_schemes={"https", "http", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )
    except Exception:  # nh3 is robust; an odd value must still never break a page
        return ""
    cleaned = _IMAGE_WITHOUT_SOURCE.sub(_alt_text, cleaned)
    if inline:
        cleaned = _BREAKS.sub("<br>", cleaned.strip())
        cleaned = re.sub(r"^(?:\s*<br>)+|(?:<br>\s*)+$", "", cleaned)
    return cleaned.strip()


def looks_like_html(text: str) -> bool:
    """Whether a survey text is HTML (imported) rather than plain text (written in cxloop)."""
    return isinstance(text, str) and bool(_MARKUP.search(text))


def text_to_html(text: str) -> str:
    """Plain text as HTML: escaped, its line breaks kept (they are meant in plain text)."""
    escaped = html.escape(text, quote=False)
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")


def _alt_text(match: re.Match[str]) -> str:
    alt = _ALT.search(match[1])
    text = alt[1] if alt and alt[1].strip() else "image not shown"
    return f'<span class="image-alt">[{text}]</span>'
