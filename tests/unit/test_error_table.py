"""Errors say what went wrong; one table at the web edge turns them into HTTP statuses."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import cxloop
from cxloop.errors import CxloopError, Expired, Forbidden, TooLarge
from cxloop.services.connections import LinkingFailed, LinkingRefused
from cxloop.services.personal_links import LinkExpired
from cxloop.services.salesforce_clients import ConnectionUnusable
from cxloop.services.signed_links import SignedLinkExpired, SignedLinkRefused
from cxloop.services.transfers import TransferExpired
from cxloop.services.workflows import DocumentTooLarge, MalformedDocument
from cxloop.web.errors import ERROR_STATUSES, code_for, status_for

SRC = Path(cxloop.__file__).parent
# Layers that must not know they may be called over HTTP.
INNER_LAYERS = ("services", "engine", "domain", "db", "mail", "salesforce")


def _subclasses(kind: type) -> set[type]:
    found = set(kind.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_inner_layers_speak_of_no_http_status() -> None:
    offenders = []
    for layer in INNER_LAYERS:
        for path in sorted((SRC / layer).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for word in ("http_status", "body_too_large", "HTTPException"):
                if word in text:
                    offenders.append(f"{path.relative_to(SRC)}: {word}")
            if re.search(r"\b413\b", text):
                offenders.append(f"{path.relative_to(SRC)}: 413")
    assert offenders == []


def test_no_error_kind_carries_its_own_status() -> None:
    for module in pkgutil.walk_packages(cxloop.__path__, "cxloop."):
        if module.name.startswith(("cxloop.db.migrations", "cxloop.__main__")):
            continue
        importlib.import_module(module.name)
    kinds = _subclasses(CxloopError) | {CxloopError}
    carrying = sorted(k.__qualname__ for k in kinds if "http_status" in vars(k))
    assert carrying == []
    for kind in kinds:  # every kind has a status, at least its base's
        assert any(base in ERROR_STATUSES for base in kind.__mro__), kind


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (CxloopError("x"), 400, "error"),
        (MalformedDocument("x"), 400, "malformed_document"),
        (LinkingFailed("x"), 400, "linking_failed"),
        (LinkingRefused("x"), 403, "linking_failed"),
        (SignedLinkRefused("x"), 403, "signed_link_invalid"),
        (ConnectionUnusable("x"), 409, "connection_unusable"),
        (LinkExpired("x"), 410, "link_expired"),
        (SignedLinkExpired("x"), 410, "link_expired"),
        (TransferExpired("x"), 410, "transfer_expired"),
        (DocumentTooLarge("x"), 413, "body_too_large"),
        (Forbidden("x", code="survey_forbidden"), 403, "survey_forbidden"),
    ],
)
def test_each_kind_answers_with_the_status_it_always_had(
    error: CxloopError, status: int, code: str
) -> None:
    assert (status_for(error), code_for(error)) == (status, code)


def test_kinds_say_what_went_wrong_not_how_http_says_it() -> None:
    assert isinstance(DocumentTooLarge("x"), TooLarge)
    assert DocumentTooLarge.code == "document_too_large"
    assert all(issubclass(k, Expired) for k in (LinkExpired, SignedLinkExpired, TransferExpired))
