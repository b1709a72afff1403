"""Passwords, API tokens and the encryption of secrets at rest."""

from __future__ import annotations

import hashlib
import hmac
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

# A few passwords people pick first; anything in here is refused whatever its length.
_COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password12", "password123", "passw0rd", "1234567890",
        "12345678910", "qwertyuiop", "qwerty1234", "iloveyou12", "letmein123", "welcome123",
        "changeme12", "administrator", "admin12345", "salesforce", "salesforce1",
    }
)  # fmt: skip


def check_password_strength(password: str) -> None:
    """Refuse a password that is empty, short, common or one repeated character."""
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
    if password.lower() in _COMMON_PASSWORDS or len(set(password)) < 4:
        raise InvalidInput(
            "The password is too easy to guess: pick a longer, less common one.",
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
