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


# -- SM4 field encryption and SM3-HMAC blind indexes -----------------------------------------------
# Ciphertext layout: version (1 byte) | key id (1 byte) | nonce (12) | SM4-GCM ciphertext | tag (16).
# The blind index is HMAC-SM3 over the normalised value with a separate key: equal values give equal
# indexes (exact search) and the index reveals nothing else.

FIELD_VERSION = 1


class CryptoNotConfigured(RuntimeError):
    """Sensitive fields need GM_SM4_KEY and GM_BLIND_INDEX_KEY."""


def _sm4_key(key_hex: str) -> bytes:
    try:
        key = bytes.fromhex(key_hex)
    except ValueError as exc:
        raise CryptoNotConfigured("GM_SM4_KEY must be 32 hex characters (128-bit SM4 key)") from exc
    if len(key) != 16:
        raise CryptoNotConfigured("GM_SM4_KEY must be 32 hex characters (128-bit SM4 key)")
    return key


def sm4_encrypt(plaintext: str, key_hex: str, key_id: int = 1, aad: bytes = b"") -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if not key_hex:
        raise CryptoNotConfigured("GM_SM4_KEY is not configured")
    nonce = os.urandom(12)
    enc = Cipher(algorithms.SM4(_sm4_key(key_hex)), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    body = enc.update(plaintext.encode("utf-8")) + enc.finalize()
    return bytes([FIELD_VERSION, key_id]) + nonce + body + enc.tag


def sm4_decrypt(blob: bytes, key_hex: str, aad: bytes = b"") -> str:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if not key_hex:
        raise CryptoNotConfigured("GM_SM4_KEY is not configured")
    blob = bytes(blob)
    if len(blob) < 30 or blob[0] != FIELD_VERSION:
        raise ValueError("not an SM4 field ciphertext")
    nonce, body, tag = blob[2:14], blob[14:-16], blob[-16:]
    dec = Cipher(algorithms.SM4(_sm4_key(key_hex)), modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    return (dec.update(body) + dec.finalize()).decode("utf-8")


def blind_index(value: str, key: str, purpose: str) -> str:
    """HMAC-SM3(key, purpose || value) as hex; `purpose` keeps indexes of different fields apart."""
    from cryptography.hazmat.primitives import hmac as chmac

    if not key:
        raise CryptoNotConfigured("GM_BLIND_INDEX_KEY is not configured")
    mac = chmac.HMAC(key.encode("utf-8"), hashes.SM3())
    mac.update(f"{purpose}\x00{value}".encode())
    return mac.finalize().hex()
