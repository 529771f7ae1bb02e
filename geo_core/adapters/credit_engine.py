"""Credit decision engine (授信决策引擎) adapter: a bank-style signed JSON-over-HTTPS call.

Request: ``POST {GM_CREDIT_ENGINE_URL}`` with a JSON body (the customer's integrated profile, see
docs/DATA_FEED.md "Credit engine") and these headers:

- ``X-App-Id``: our application id (GM_CREDIT_ENGINE_APP_ID);
- ``X-Timestamp``: Unix time in milliseconds; ``X-Nonce``: 32 random hex characters (never reused);
- ``X-Request-Id``: the decision request id (the same on retries: the engine's idempotency key);
- ``X-Signature``: hex HMAC-SM3 with the shared secret (GM_CREDIT_ENGINE_SECRET) over
  ``"POST\\n" + path + "\\n" + app_id + "\\n" + timestamp + "\\n" + nonce + "\\n" + hex SM3(body)``.

The engine answers ``{"code": "0", "message": "ok", "data": {...}}`` and signs its answer the same way
(``X-Timestamp``, ``X-Nonce``, ``X-Signature`` over ``timestamp + "\\n" + nonce + "\\n" + hex SM3(body)``);
an answer with a missing or wrong signature is refused. 5xx, timeouts and connection errors are retried
(GM_CREDIT_ENGINE_RETRIES times, short back-off); 4xx and business errors (code != "0") are not.
"""

from __future__ import annotations

import hmac as std_hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from http.client import HTTPException
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac

from geo_core.crypto import sm3_hex
from geo_core.errors import DomainError

log = logging.getLogger("gridmarket.credit_engine")
MAX_RESPONSE_BYTES = 1024 * 1024
DECISIONS = ("approve", "reject", "manual")
SENSITIVE_KEYS = {"id_number", "uscc", "phone", "name", "id_no", "cert_no", "mobile", "address", "account_no",
                  "loan_no"}


class CreditEngineDisabled(DomainError):
    status = 503
    code = "CREDIT_ENGINE_DISABLED"


class CreditEngineFailed(DomainError):
    status = 502
    code = "CREDIT_ENGINE_FAILED"


@dataclass(frozen=True)
class CreditEngineSettings:
    url: str = ""
    app_id: str = "gridmarket"
    secret: str = field(default="", repr=False)
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.2

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.secret)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CreditEngineSettings:
        env = dict(os.environ if env is None else env)
        url = env.get("GM_CREDIT_ENGINE_URL", "").strip()
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("GM_CREDIT_ENGINE_URL must be an http(s) URL")
        timeout = float(env.get("GM_CREDIT_ENGINE_TIMEOUT") or 5.0)
        retries = int(env.get("GM_CREDIT_ENGINE_RETRIES") or 2)
        if not 0 < timeout <= 60 or not 0 <= retries <= 5:
            raise ValueError("GM_CREDIT_ENGINE_TIMEOUT must be in (0, 60], GM_CREDIT_ENGINE_RETRIES in [0, 5]")
        return cls(url=url, app_id=env.get("GM_CREDIT_ENGINE_APP_ID", "gridmarket").strip() or "gridmarket",
                   secret=env.get("GM_CREDIT_ENGINE_SECRET", ""), timeout_s=timeout, retries=retries)


@dataclass(frozen=True)
class EngineDecision:
    request_id: str
    decision: str
    credit_limit: Decimal | None
    rate: Decimal | None
    pricing: dict[str, Any]
    valid_until: date | None
    reasons: list[Any]
    engine_ref: str | None
    raw: dict[str, Any]  # redacted


def hmac_sm3(secret: str, message: str) -> str:
    mac = chmac.HMAC(secret.encode("utf-8"), hashes.SM3())
    mac.update(message.encode("utf-8"))
    return mac.finalize().hex()


def request_signature(secret: str, path: str, app_id: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac_sm3(secret, "\n".join(("POST", path, app_id, timestamp, nonce, sm3_hex(body))))


def response_signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac_sm3(secret, "\n".join((timestamp, nonce, sm3_hex(body))))


def redact(value: Any) -> Any:
    """The engine's answer without personal data (kept for audit of the decision, not of the person)."""
    if isinstance(value, dict):
        return {k: ("***" if k in SENSITIVE_KEYS and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _decimal(value: Any, name: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise CreditEngineFailed(f"授信引擎返回的 {name} 无效") from exc
    if not result.is_finite() or result < 0 or result >= Decimal("1e16"):
        raise CreditEngineFailed(f"授信引擎返回的 {name} 无效")
    return result


def parse_answer(request_id: str, body: dict[str, Any]) -> EngineDecision:
    if not isinstance(body, dict) or str(body.get("code")) != "0":
        message = body.get("message") if isinstance(body, dict) else None
        raise CreditEngineFailed(f"授信引擎拒绝请求：{message or '未知错误'}", detail={
            "engine_code": body.get("code") if isinstance(body, dict) else None})
    data = body.get("data")
    if not isinstance(data, dict) or data.get("decision") not in DECISIONS:
        raise CreditEngineFailed("授信引擎返回格式无效")
    if data.get("request_id") not in (None, request_id):
        raise CreditEngineFailed("授信引擎返回的请求号不匹配")
    valid_until = None
    if data.get("valid_until"):
        try:
            valid_until = date.fromisoformat(str(data["valid_until"]))
        except ValueError as exc:
            raise CreditEngineFailed("授信引擎返回的有效期无效") from exc
    pricing = data.get("pricing") if isinstance(data.get("pricing"), dict) else {}
    reasons = data.get("reasons") if isinstance(data.get("reasons"), list) else []
    rate = _decimal(data.get("rate"), "rate")
    if rate is not None and rate >= 100:
        raise CreditEngineFailed("授信引擎返回的 rate 无效")
    ref = data.get("decision_id")
    return EngineDecision(request_id, data["decision"], _decimal(data.get("limit"), "limit"), rate, redact(pricing),
                          valid_until, redact(reasons)[:20], str(ref)[:64] if ref else None, redact(body))


def _attempt(cfg: CreditEngineSettings, request_id: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    timestamp, nonce = str(int(time.time() * 1000)), secrets.token_hex(16)
    path = urlsplit(cfg.url).path or "/"
    headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json",
               "X-App-Id": cfg.app_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Request-Id": request_id,
               "X-Signature": request_signature(cfg.secret, path, cfg.app_id, timestamp, nonce, body)}
    try:
        with urlopen(Request(cfg.url, data=body, headers=headers, method="POST"), timeout=cfg.timeout_s) as resp:
            return resp.status, resp.read(MAX_RESPONSE_BYTES + 1), dict(resp.headers.items())
    except HTTPError as exc:
        return exc.code, exc.read(MAX_RESPONSE_BYTES + 1), dict(exc.headers.items()) if exc.headers else {}


def request_decision(cfg: CreditEngineSettings, request_id: str, payload: dict[str, Any]) -> EngineDecision:
    """Send the profile, verify the signed answer, return the decision. Raises CreditEngineFailed/Disabled."""
    if not cfg.enabled:
        raise CreditEngineDisabled("授信决策引擎未配置（GM_CREDIT_ENGINE_URL / GM_CREDIT_ENGINE_SECRET）")
    body = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")
    last_error = "无响应"
    for attempt in range(cfg.retries + 1):
        if attempt:
            time.sleep(cfg.backoff_s * attempt)
        try:
            status, raw, headers = _attempt(cfg, request_id, body)
        except (TimeoutError, URLError, HTTPException, OSError) as exc:
            last_error = "连接超时" if isinstance(exc, TimeoutError) or "timed out" in str(exc) else "无法连接"
            log.warning("credit engine %s attempt %s: %s", request_id, attempt + 1, exc.__class__.__name__)
            continue
        if status >= 500:
            last_error = f"HTTP {status}"
            log.warning("credit engine %s attempt %s: HTTP %s", request_id, attempt + 1, status)
            continue
        if status != 200:
            raise CreditEngineFailed(f"授信引擎拒绝请求（HTTP {status}）", detail={"http_status": status})
        if len(raw) > MAX_RESPONSE_BYTES:
            raise CreditEngineFailed("授信引擎响应过大")
        lower = {k.lower(): v for k, v in headers.items()}
        expected = response_signature(cfg.secret, lower.get("x-timestamp", ""), lower.get("x-nonce", ""), raw)
        if not std_hmac.compare_digest(expected, lower.get("x-signature", "")):
            raise CreditEngineFailed("授信引擎响应签名校验失败", code="CREDIT_ENGINE_BAD_SIGNATURE")
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CreditEngineFailed("授信引擎响应不是有效的 JSON") from exc
        return parse_answer(request_id, answer)
    raise CreditEngineFailed(f"授信引擎暂不可用（{last_error}，已重试 {cfg.retries} 次）")
