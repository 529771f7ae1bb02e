"""A loopback stub of the bank's credit decision engine: verifies our HMAC-SM3 request signature, answers a
signed decision, and can be told to fail (HTTP 500 n times, business error, bad answer signature, slowness)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from geo_core.adapters.credit_engine import request_signature, response_signature

PATH = "/credit/v1/decisions"
SECRET = "stub-credit-secret-0123456789abcdef"
APP_ID = "gridmarket-test"


@dataclass
class CreditStub:
    url: str
    secret: str = SECRET
    fail_first: int = 0  # answer HTTP 500 to this many requests first
    mode: str = "ok"  # ok | business_error | bad_signature | slow | not_json
    delay: float = 2.0
    decision: dict[str, Any] = field(default_factory=lambda: {
        "decision": "approve", "limit": "200000.00", "rate": "4.3500",
        "pricing": {"product": "LOAN_CONSUMER", "term_months": 12, "name": "张三"}, "valid_until": "2027-05-31",
        "reasons": ["存款稳定", "无逾期"], "decision_id": "D-0001"})
    requests: list[dict[str, Any]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    stub: CreditStub

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: Any, *, sign: bool = True, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        timestamp, nonce = str(int(time.time() * 1000)), secrets.token_hex(16)
        signature = response_signature(self.stub.secret, timestamp, nonce, body)
        if not sign:
            signature = "0" * 64
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("X-Timestamp", timestamp)
        self.send_header("X-Nonce", nonce)
        self.send_header("X-Signature", signature)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        stub = self.stub
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        h = {k.lower(): v for k, v in self.headers.items()}
        expected = request_signature(stub.secret, self.path, h.get("x-app-id", ""), h.get("x-timestamp", ""),
                                     h.get("x-nonce", ""), body)
        record = {"path": self.path, "headers": h, "body": json.loads(body or b"{}"),
                  "signature_ok": expected == h.get("x-signature")}
        stub.requests.append(record)
        if not record["signature_ok"]:
            return self._send(401, {"code": "E401", "message": "签名错误"})
        if stub.fail_first > 0:
            stub.fail_first -= 1
            return self._send(500, {"code": "E500", "message": "系统繁忙"})
        if stub.mode == "slow":
            time.sleep(stub.delay)
        if stub.mode == "business_error":
            return self._send(200, {"code": "E1001", "message": "客户信息不完整"})
        if stub.mode == "not_json":
            return self._send(200, None, raw=b"<html>gateway</html>")
        answer = {"code": "0", "message": "ok",
                  "data": {"request_id": record["body"].get("request_id"), **stub.decision}}
        return self._send(200, answer, sign=stub.mode != "bad_signature")


@contextmanager
def credit_stub() -> Iterator[CreditStub]:
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stub = CreditStub(url=f"http://127.0.0.1:{server.server_port}{PATH}")
    handler.stub = stub
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
