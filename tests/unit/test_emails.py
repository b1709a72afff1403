"""One canonical form for email addresses, for users and contacts alike."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop.domain.emails import NotAnEmail, comparable_email, normalize_email
from cxloop.errors import InvalidInput
from cxloop.services import directory, users

_word = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=10)
_local = st.builds(
    lambda a, sep, b: a + sep + b, _word, st.sampled_from(["", ".", "+", "_"]), _word
)
_domain = st.builds(
    lambda label, tld: f"{label}.{tld}",
    _word.map(lambda w: "x" + w),
    st.sampled_from(["com", "de"]),
)
_addresses = st.builds(lambda a, b: f"{a}@{b}", _local, _domain)
_padding = st.sampled_from(["", " ", "\t", "  "])


@settings(deadline=None)
@given(address=_addresses, before=_padding, after=_padding)
def test_an_address_is_trimmed_lower_cased_and_stable(
    address: str, before: str, after: str
) -> None:
    normal = normalize_email(before + address + after)
    assert normal == address.lower()
    assert normalize_email(normal) == normal
    assert normalize_email(address.upper()) == normal


@settings(deadline=None)
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
