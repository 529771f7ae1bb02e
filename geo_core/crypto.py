"""国密 primitives: PBKDF2-HMAC-SM3 password hashes and SM3 digests of tokens.

A password hash records its own algorithm and parameters
(`pbkdf2_sm3$<iterations>$<salt b64>$<hash b64>`), so the cost can be raised later: hashes made with
fewer iterations are re-hashed at the user's next successful login (`needs_rehash`).
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

SCHEME = "pbkdf2_sm3"
SALT_BYTES = 16
KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SM3(), length=KEY_BYTES, salt=salt, iterations=iterations)
    return kdf.derive(password.encode("utf-8"))


def hash_password(password: str, iterations: int) -> str:
    salt = os.urandom(SALT_BYTES)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(_derive(password, salt, iterations))}"


def _parse(encoded: str) -> tuple[int, bytes, bytes] | None:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != SCHEME:
            return None
        return int(iterations), base64.b64decode(salt), base64.b64decode(digest)
    except (ValueError, TypeError):
        return None


def verify_password(password: str, encoded: str | None) -> bool:
    parsed = _parse(encoded or "")
    if parsed is None:
        return False
    iterations, salt, digest = parsed
    return hmac.compare_digest(_derive(password, salt, iterations), digest)


def burn(password: str, iterations: int) -> None:
    """Spend the time of one verification, so unknown usernames are not cheaper to probe."""
    _derive(password, b"\0" * SALT_BYTES, iterations)


def needs_rehash(encoded: str | None, iterations: int) -> bool:
    parsed = _parse(encoded or "")
    return parsed is None or parsed[0] < iterations


def sm3_hex(data: str | bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data.encode("utf-8") if isinstance(data, str) else data)
    return digest.finalize().hex()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def check_password_policy(password: str) -> list[str]:
    """Bank password rule: >= 8 chars with letters, digits and a symbol. Returns messages (empty = ok)."""
    problems = []
    if len(password) < 8:
        problems.append("密码至少 8 位")
    if not any(c.isalpha() for c in password):
        problems.append("密码须包含字母")
    if not any(c.isdigit() for c in password):
        problems.append("密码须包含数字")
    if all(c.isalnum() for c in password):
        problems.append("密码须包含特殊字符")
    return problems
