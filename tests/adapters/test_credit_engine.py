"""Credit decision engine adapter and API against a loopback stub: signed requests and answers, retries on 5xx,
errors that store nothing, the decision in the 360 view, data scope."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geo_core.adapters.credit_engine import (
    CreditEngineDisabled,
    CreditEngineFailed,
    CreditEngineSettings,
    request_decision,
)
from geo_core.db import SYSTEM, set_context
from tests.adapters.credit_stub import APP_ID, SECRET, credit_stub


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def stub():
    with credit_stub() as s:
        yield s


@pytest.fixture()
def engine(stub, monkeypatch):
    stub.fail_first, stub.mode, stub.secret = 0, "ok", SECRET
    stub.requests.clear()
    for name, value in (("URL", stub.url), ("APP_ID", APP_ID), ("SECRET", SECRET), ("TIMEOUT", "1"),
                        ("RETRIES", "2")):
        monkeypatch.setenv(f"GM_CREDIT_ENGINE_{name}", value)
    return stub


def cfg(stub, **kw) -> CreditEngineSettings:
    return CreditEngineSettings(**{"url": stub.url, "app_id": APP_ID, "secret": SECRET, "timeout_s": 1,
                                   "retries": 2, "backoff_s": 0.01, **kw})


def customer_with_loan(system) -> tuple[int, int]:
    """(customer id, owner id) of a formal 芙蓉 customer of am_430102_1_1 with accounts and a loan (demo seed)."""
    set_context(system, SYSTEM)
    return tuple(system.execute(text(
        "SELECT c.id, c.owner_user_id FROM customers c JOIN users u ON u.id = c.owner_user_id "
        "WHERE u.username = 'am_430102_1_1' AND c.kind = 'person' "
        "AND EXISTS (SELECT 1 FROM customer_loans l WHERE l.customer_id = c.id) "
        "AND EXISTS (SELECT 1 FROM customer_accounts a WHERE a.customer_id = c.id) ORDER BY c.id LIMIT 1")).one())


def test_signed_request_and_verified_answer(engine):
    decision = request_decision(cfg(engine), "req-1", {"request_id": "req-1", "customer": {"name": "张三"}})
    (req,) = engine.requests
    assert req["signature_ok"] and req["path"] == "/credit/v1/decisions"
    assert req["headers"]["x-app-id"] == APP_ID and req["headers"]["x-request-id"] == "req-1"
    assert len(req["headers"]["x-nonce"]) == 32 and req["headers"]["x-timestamp"].isdigit()
    assert (decision.decision, str(decision.credit_limit), str(decision.rate)) == ("approve", "200000.00", "4.3500")
    assert decision.pricing["name"] == "***" and decision.raw["data"]["pricing"]["name"] == "***"  # redacted


def test_retries_on_5xx_with_the_same_request_id(engine):
    engine.fail_first = 2
    assert request_decision(cfg(engine), "req-2", {"request_id": "req-2"}).decision == "approve"
    assert len(engine.requests) == 3
    assert {r["headers"]["x-request-id"] for r in engine.requests} == {"req-2"}
    assert len({r["headers"]["x-nonce"] for r in engine.requests}) == 3  # a fresh nonce per attempt
    engine.fail_first = 5
    with pytest.raises(CreditEngineFailed, match="已重试 2 次"):
        request_decision(cfg(engine), "req-3", {"request_id": "req-3"})


@pytest.mark.parametrize(("mode", "message"), [("bad_signature", "签名校验失败"), ("business_error", "客户信息不完整"),
                                               ("not_json", "JSON"), ("slow", "超时")])
def test_engine_errors(engine, mode, message):
    engine.mode = mode
    with pytest.raises(CreditEngineFailed, match=message):
        request_decision(cfg(engine, retries=0), "req-4", {"request_id": "req-4"})


def test_wrong_secret_is_refused_by_the_engine(engine):
    wrong = CreditEngineSettings(url=engine.url, app_id=APP_ID, secret="another-secret", retries=0)
    with pytest.raises(CreditEngineFailed, match="HTTP 401"):
        request_decision(wrong, "req-5", {})
    assert engine.requests[-1]["signature_ok"] is False
    with pytest.raises(CreditEngineDisabled):
        request_decision(CreditEngineSettings(), "req-6", {})


def test_api_requests_and_stores_a_decision(engine, client, login, db_session, settings):
    customer_id, _ = customer_with_loan(db_session)
    h = login("am_430102_1_1")
    r = client.post(f"/api/v1/customers/{customer_id}/credit-decisions", json={}, headers=h)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["decision"], body["credit_limit"], body["valid_until"]) == ("approve", "200000.00", "2027-05-31")
    sent = engine.requests[-1]["body"]
    # the integrated profile: identifiers decrypted for the engine only, holdings, accounts, loans
    set_context(db_session, SYSTEM)
    mask = db_session.scalar(text("SELECT id_number_mask FROM customers WHERE id = :c"), {"c": customer_id})
    assert len(sent["customer"]["id_number"]) == 18 and sent["customer"]["id_number"][-4:] == mask[-4:]
    assert sent["loans"] and sent["accounts"] and sent["holdings"]["as_of"] == "2026-11-24"
    assert sent["request_id"] == body["request_id"]
    stored = db_session.execute(text("SELECT raw_response::text, requested_by FROM credit_decisions WHERE id = :i"),
                                {"i": body["id"]}).one()
    assert sent["customer"]["id_number"] not in stored[0] and "张三" not in stored[0]
    # the granted line (customers.credit_limit) is the feed's; the engine's offer does not touch it
    listing = client.get(f"/api/v1/customers/{customer_id}/credit-decisions", headers=h).get_json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == body["id"]
    view = client.get(f"/api/v1/customers/{customer_id}/360?sections=credit", headers=h)
    assert view.status_code == 200, view.get_json()  # the 360 view shows the latest decision
    credit = view.get_json()["sections"]["credit"]
    assert credit["latest"]["id"] == body["id"] and credit["latest"]["credit_limit"] in ("200000.00", 200000)
    # another branch cannot request or read it
    other = login("bl_430104")
    assert client.post(f"/api/v1/customers/{customer_id}/credit-decisions", json={},
                       headers=other).status_code == 404
    assert client.get(f"/api/v1/customers/{customer_id}/credit-decisions", headers=other).status_code == 404
    assert len(engine.requests) == 1  # nothing was sent for the attacker


def test_api_engine_failure_stores_nothing(engine, client, login, db_session, monkeypatch):
    customer_id, _ = customer_with_loan(db_session)
    h = login("am_430102_1_1")
    engine.mode = "bad_signature"
    r = client.post(f"/api/v1/customers/{customer_id}/credit-decisions", json={}, headers=h)
    assert r.status_code == 502 and r.get_json()["code"] == "CREDIT_ENGINE_BAD_SIGNATURE"
    monkeypatch.delenv("GM_CREDIT_ENGINE_URL")
    r = client.post(f"/api/v1/customers/{customer_id}/credit-decisions", json={}, headers=h)
    assert r.status_code == 503 and r.get_json()["code"] == "CREDIT_ENGINE_DISABLED"
    assert client.get(f"/api/v1/customers/{customer_id}/credit-decisions", headers=h).get_json()["total"] == 0
    assert client.post(f"/api/v1/customers/{customer_id}/credit-decisions", json={},
                       headers=login("ga_430102_1")).status_code == 403
