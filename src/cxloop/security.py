"""Passwords, API tokens and the encryption of secrets at rest."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cxloop.errors import InvalidInput

API_TOKEN_PREFIX = "cxl_"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

# How stored passwords are hashed: argon2id with RFC 9106's second recommended option (64 MiB of
# memory, 3 passes, 4 lanes), a 16-byte salt and a 32-byte hash. Weaker settings make a stolen
# database cheaper to crack; tests/unit/test_password_hasher.py holds these exact values.
PASSWORD_HASH_TYPE = Type.ID
PASSWORD_HASH_TIME_COST = 3
PASSWORD_HASH_MEMORY_KIB = 65536
PASSWORD_HASH_PARALLELISM = 4
PASSWORD_HASH_LEN = 32
PASSWORD_SALT_LEN = 16


def production_password_hasher() -> PasswordHasher:
    """The argon2id hasher passwords are stored with (the parameters above)."""
    return PasswordHasher(
        time_cost=PASSWORD_HASH_TIME_COST,
        memory_cost=PASSWORD_HASH_MEMORY_KIB,
        parallelism=PASSWORD_HASH_PARALLELISM,
        hash_len=PASSWORD_HASH_LEN,
        salt_len=PASSWORD_SALT_LEN,
        type=PASSWORD_HASH_TYPE,
    )


# Replaced by a cheap hasher in tests/conftest.py only: the suite makes hundreds of users.
_hasher = production_password_hasher()

# Common substitutions ("p@ssw0rd"): undone before looking a password up in the list.
_UNLEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                         "$": "s", "!": "i"})  # fmt: skip
_EDGES = re.compile(r"^[^a-z]+|[^a-z]+$")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of leaked sets, as zxcvbn ships them (MIT licence).

    Loaded once, on the first password set (about 40 ms); an immutable constant, not a cache.
    """
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def _is_common(password: str) -> bool:
    """Whether the password is a common one, also once capitals, digits and symbols added at
    either end, and l33t substitutions, are taken away ("Password1!", "P@ssw0rd2024")."""
    common = common_passwords()
    lowered = password.lower()
    trimmed = _EDGES.sub("", lowered)  # before undoing l33t: "p@ssw0rd1!" -> "p@ssw0rd"
    candidates = {lowered, lowered.translate(_UNLEET), trimmed, trimmed.translate(_UNLEET)}
    candidates.add(_EDGES.sub("", lowered.translate(_UNLEET)))
    return any(len(c) >= 4 and c in common for c in candidates)


def check_password_strength(password: str) -> None:
    """Refuse a password that is empty, short, too long, one of the common ones (or one dressed
    up with capitals, digits and symbols), or a few characters repeated."""
    if not password or not password.strip():
        raise InvalidInput("The password is empty.", code="weak_password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters.",
            code="weak_password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"The password is too long: at most {MAX_PASSWORD_LENGTH} characters.",
            code="weak_password",
        )
    if len(set(password)) < 4:
        raise InvalidInput(
            "The password is too easy to guess (a few characters repeated): pick a longer, "
            "less regular one.",
            code="weak_password",
        )
    if _is_common(password):
        raise InvalidInput(
            "The password is on the list of the most common passwords (with capitals, digits "
            "or symbols added, it is still guessed early): pick one nobody else would, such as "
            "a few unrelated words.",
            code="weak_password",
        )


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; False for a user without a password."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    """A fresh bearer token: `cxl_` + 43 URL-safe characters (256 bits)."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    """What is stored for a token. A plain SHA-256 suffices: tokens carry 256 random bits."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class SecretBox:
    """Encrypts secrets at rest with MultiFernet: the first key encrypts, all keys decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "a stored secret cannot be decrypted with the configured encryption keys"
            ) from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt `ciphertext` with the first (newest) key."""
        return self._fernet.rotate(ciphertext.encode()).decode()


# --- opt-out links: the contact id signed with the secret key, so they work without login


def opt_out_token(secret_key: str, contact_id: str) -> str:
    """The token of a contact's opt-out link: the contact id and its signature."""
    return f"{contact_id}.{_opt_out_signature(secret_key, contact_id)}"


def contact_id_of_opt_out_token(secret_key: str, token: str) -> str | None:
    """The contact id an opt-out token was made for, or None if it is not genuine."""
    contact_id, _, signature = (token or "").partition(".")
    if not contact_id or len(token) > 200:
        return None
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged token may hold
    # any), and an exception here would turn a bad link into a server error.
    expected = _opt_out_signature(secret_key, contact_id).encode()
    if not hmac.compare_digest(signature.encode("utf-8", "surrogatepass"), expected):
        return None
    return contact_id


def _opt_out_signature(secret_key: str, contact_id: str) -> str:
    message = f"opt-out:{contact_id}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256)
    return digest.hexdigest()[:32]
