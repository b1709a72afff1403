"""One canonical form for email addresses, for users and contacts alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxloop.domain.emails import NotAnEmail, comparable_email, normalize_email
from cxloop.errors import InvalidInput
from cxloop.services import directory, users

_local = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}[A-Za-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)
_domain = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}[A-Za-z0-9]\.(com|org|de|io)", fullmatch=True)
_addresses = st.builds(lambda a, b: f"{a}@{b}", _local, _domain)
_padding = st.sampled_from(["", " ", "\t", "  "])


@given(address=_addresses, before=_padding, after=_padding)
def test_an_address_is_trimmed_lower_cased_and_stable(
    address: str, before: str, after: str
) -> None:
    normal = normalize_email(before + address + after)
    assert normal == address.lower()
    assert normalize_email(normal) == normal
    assert normalize_email(address.upper()) == normal


@given(address=_addresses)
def test_users_and_contacts_store_the_same_form(address: str) -> None:
    shouted = f" {address.upper()} "
    assert users.normalize_email(shouted) == directory.normalize_email(shouted)
    assert comparable_email(shouted) == normalize_email(address)


@pytest.mark.parametrize(
    ("text", "flaw"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ann@example.com\nBcc: eve@example.com", "control_character"),
        ("ann\x00@example.com", "control_character"),
        ("a" * 320 + "@example.com", "too_long"),
        ("not-an-address", "invalid"),
        ("ann@", "invalid"),
    ],
)
def test_what_is_not_an_address_is_refused_with_the_reason(text: str, flaw: str) -> None:
    with pytest.raises(NotAnEmail) as refused:
        normalize_email(text)
    assert refused.value.flaw == flaw and refused.value.reason
    with pytest.raises(InvalidInput) as as_user:
        users.normalize_email(text)
    assert as_user.value.code == "bad_email"
    with pytest.raises(InvalidInput) as as_contact:
        directory.normalize_email(text)
    assert as_contact.value.code == "invalid_email"
    assert comparable_email(text) == text.strip().lower()  # a throttle key never fails
