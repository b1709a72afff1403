import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from cxloop import security
from cxloop.errors import InvalidInput


@pytest.mark.parametrize(
    "password", ["", "   ", "short", "password123", "aaaaaaaaaaaa", "x" * 2000]
)
def test_weak_passwords_are_refused_with_a_reason(password: str) -> None:
    with pytest.raises(InvalidInput) as info:
        security.check_password_strength(password)
    assert info.value.code == "weak_password"
    assert info.value.message


@pytest.mark.parametrize(
    "password",
    ["Password1!", "P@ssw0rd2024", "Welcome123!", "qwertyuiop", "Qwerty123456", "Summer2024!",
     "iloveyou12", "letmein!!!!1", "Football#2023", "1q2w3e4r5t"],
)  # fmt: skip
def test_common_passwords_are_refused_even_dressed_up(password: str) -> None:
    with pytest.raises(InvalidInput) as info:
        security.check_password_strength(password)
    assert info.value.code == "weak_password" and "common passwords" in info.value.message


@pytest.mark.parametrize(
    "password",
    ["a long enough passphrase", "correct horse battery", "Tr0ub4dor&3xx", "bench passphrase 1"],
)
def test_uncommon_passwords_are_accepted(password: str) -> None:
    security.check_password_strength(password)


def test_the_common_password_list_comes_from_a_package() -> None:
    common = security.common_passwords()
    assert len(common) >= 10_000 and "password" in common and "dragon" in common


def test_password_hash_verifies_only_the_right_password() -> None:
    digest = security.hash_password("correct horse battery")
    assert digest.startswith("$argon2id$")
    assert security.verify_password(digest, "correct horse battery")
    assert not security.verify_password(digest, "correct horse batterY")
    assert not security.verify_password(None, "anything at all")
    assert not security.verify_password("not-a-hash", "anything at all")


def test_api_tokens_are_random_and_stored_as_hashes() -> None:
    first, second = security.new_api_token(), security.new_api_token()
    assert first != second and first.startswith("cxl_") and len(first) >= 40
    assert security.hash_api_token(first) != first
    assert len(security.hash_api_token(first)) == 64


def test_secret_box_rotation_keeps_old_ciphertexts_readable() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old_box = security.SecretBox([old_key])
    ciphertext = old_box.encrypt("refresh-token-value")
    rotated_box = security.SecretBox([new_key, old_key])
    assert rotated_box.decrypt(ciphertext) == "refresh-token-value"
    rotated = rotated_box.rotate(ciphertext)
    assert security.SecretBox([new_key]).decrypt(rotated) == "refresh-token-value"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        security.SecretBox([new_key]).decrypt(ciphertext)


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=300))
def test_secret_box_round_trips_any_text(plaintext: str) -> None:
    box = security.SecretBox([Fernet.generate_key().decode()])
    ciphertext = box.encrypt(plaintext)
    assert box.decrypt(ciphertext) == plaintext
