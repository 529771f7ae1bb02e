"""Login, lockout, refresh rotation, logout, SSO, device gate."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, text

from tests.conftest import DEMO_PASSWORD

LOGIN = "/api/v1/auth/login"


def _login(http, username, password=DEMO_PASSWORD, **extra):
    return http.post(LOGIN, json={"username": username, "password": password, **extra})


def test_login_returns_tokens_and_me_works(client):
    r = _login(client, "bl_430102")
    assert r.status_code == 200
    body = r.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"}).get_json()
    assert me["username"] == "bl_430102" and me["org"]["name"] == "芙蓉支行"
    assert me["data_scope"] == "org_subtree"


def test_bad_password_is_401_without_telling_which_part_was_wrong(client):
    unknown = _login(client, "nobody-here", "x")
    wrong = _login(client, "bl_430102", "wrong-password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json()["message"] == wrong.get_json()["message"]


def test_lockout_after_repeated_failures_then_admin_unlock(client, login, settings):
    for _ in range(settings.lockout_threshold - 1):
        assert _login(client, "am_430102_1_1", "bad").status_code == 401
    locked = _login(client, "am_430102_1_1", "bad")
    assert locked.status_code == 403 and locked.get_json()["code"] == "ACCOUNT_LOCKED"
    # even the right password is refused while locked
    assert _login(client, "am_430102_1_1").get_json()["code"] == "ACCOUNT_LOCKED"
    users = client.get("/api/v1/users?q=am_430102_1_1", headers=login("admin")).get_json()["items"]
    assert client.post(f"/api/v1/users/{users[0]['id']}/unlock", headers=login("admin")).status_code == 200
    assert _login(client, "am_430102_1_1").status_code == 200


def test_failed_logins_are_audited(client, db_session):
    _login(client, "am_430102_1_2", "bad")
    from geo_core.db import SYSTEM, set_context

    set_context(db_session, SYSTEM)
    rows = db_session.execute(text(
        "SELECT action, detail->>'reason' FROM audit_log WHERE action = 'login_failed' "
        "AND detail->>'username' = 'am_430102_1_2'")).all()
    assert rows == [("login_failed", "bad_password")]


def test_refresh_rotates_and_old_refresh_token_dies(client):
    first = _login(client, "bl_430102").get_json()
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401 and again.get_json()["code"] == "REFRESH_INVALID"
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {second['access_token']}"}).status_code == 200


def test_logout_kills_access_and_refresh_tokens(client):
    tokens = _login(client, "bl_430102").get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_expired_and_forged_access_tokens_are_401(client, settings):
    tokens = _login(client, "bl_430102").get_json()
    claims = jwt.decode(tokens["access_token"], settings.secret_key, algorithms=["HS256"])
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, settings.secret_key, algorithm="HS256")
    forged = jwt.encode({**claims, "sub": "1"}, "another-secret-another-secret-0000", algorithm="HS256")
    for token, code in ((expired, "TOKEN_EXPIRED"), (forged, "TOKEN_INVALID"), ("garbage", "TOKEN_INVALID")):
        r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.get_json()["code"] == code


def test_a_cached_token_verification_still_expires(client, settings, monkeypatch):
    from geo_core.auth import service

    token = _login(client, "bl_430102").get_json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=h).status_code == 200  # verified (and cached) once
    assert client.get("/api/v1/me", headers=h).status_code == 200  # served from the cache
    exp = jwt.decode(token, settings.secret_key, algorithms=["HS256"])["exp"]
    monkeypatch.setattr(service, "_now", lambda: exp)
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and r.get_json()["code"] == "TOKEN_EXPIRED"
    # the same claims signed with another key are not the cached token
    forged = jwt.encode(jwt.decode(token, settings.secret_key, algorithms=["HS256"]),
                        "another-secret-another-secret-0000", algorithm="HS256")
    monkeypatch.setattr(service, "_now", lambda: exp - 60)
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.get_json()["code"] == "TOKEN_INVALID"


def test_disabled_user_cannot_log_in(client, login):
    uid = client.get("/api/v1/users?q=am_430102_2_1", headers=login("admin")).get_json()["items"][0]["id"]
    assert client.patch(f"/api/v1/users/{uid}", json={"status": "disabled"}, headers=login("admin")).status_code == 200
    r = _login(client, "am_430102_2_1")
    assert r.status_code == 403 and r.get_json()["code"] == "ACCOUNT_DISABLED"


def test_password_hash_is_pbkdf2_sm3_and_upgraded_on_login(client, db_session, settings):
    from geo_core.crypto import hash_password
    from geo_core.db import SYSTEM, set_context
    from geo_core.users.models import User

    set_context(db_session, SYSTEM)
    user = db_session.scalar(select(User).where(User.username == "ga_430102_1"))
    user.password_hash = hash_password(DEMO_PASSWORD, 500)  # an old, weaker hash
    db_session.commit()
    assert _login(client, "ga_430102_1").status_code == 200
    db_session.expire_all()
    set_context(db_session, SYSTEM)
    stored = db_session.scalar(select(User.password_hash).where(User.username == "ga_430102_1"))
    scheme, iterations, _, _ = stored.split("$")
    assert scheme == "pbkdf2_sm3" and int(iterations) == settings.pbkdf2_iterations


# -- SSO ------------------------------------------------------------------------------------------

@pytest.fixture()
def sso_key(app):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    state = app.extensions["gridmarket"]
    original = state.settings
    from dataclasses import replace

    state.settings = replace(original, sso_public_key=public_pem)
    yield key
    state.settings = original


def _sso_token(key, sub="E00001", **overrides):
    now = datetime.now(UTC)
    claims = {"sub": sub, "iss": "e-satchel", "aud": "gridmarket", "iat": now, "exp": now + timedelta(minutes=2)}
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256")


def test_sso_with_a_locally_signed_token(client, sso_key):
    r = client.post("/api/v1/auth/sso", json={"token": _sso_token(sso_key, sub="E00001")})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["user"]["username"] == "admin"


@pytest.mark.parametrize("overrides", [
    {"iss": "someone-else"},
    {"aud": "other-app"},
    {"exp": datetime.now(UTC) - timedelta(minutes=5)},
    {"sub": "E99999"},
])
def test_sso_rejects_wrong_issuer_audience_expiry_or_user(client, sso_key, overrides):
    r = client.post("/api/v1/auth/sso", json={"token": _sso_token(sso_key, **overrides)})
    assert r.status_code == 401


def test_sso_rejects_a_token_signed_by_another_key(client, sso_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert client.post("/api/v1/auth/sso", json={"token": _sso_token(other)}).status_code == 401


def test_sso_not_configured_is_403(client):
    r = client.post("/api/v1/auth/sso", json={"token": "x" * 40})
    assert r.status_code == 403 and r.get_json()["code"] == "SSO_NOT_CONFIGURED"


# -- mobile device gate -----------------------------------------------------------------------------

def test_mobile_login_requires_device_id(client):
    r = _login(client, "am_430102_1_3", client="mobile")
    assert r.status_code == 422 and "device_id" in r.get_json()["errors"]


def test_unregistered_device_is_403_and_becomes_a_pending_request(client, login):
    r = _login(client, "am_430102_1_3", client="mobile", device_id="IMEI-0001-TEST", device_model="HUAWEI MatePad")
    assert r.status_code == 403 and r.get_json()["code"] == "DEVICE_NOT_REGISTERED"
    r = _login(client, "am_430102_1_3", client="mobile", device_id="IMEI-0001-TEST")
    assert r.get_json()["code"] == "DEVICE_PENDING_APPROVAL"


def test_active_device_logs_in_disabled_device_does_not(client, db_session):
    from geo_core.db import SYSTEM, set_context
    from geo_core.devices.models import Device, DeviceStatus
    from geo_core.users.models import User

    set_context(db_session, SYSTEM)
    user = db_session.scalar(select(User).where(User.username == "am_430102_1_2"))
    other = db_session.scalar(select(User).where(User.username == "am_430102_1_1"))
    db_session.add(Device(device_id="PAD-ACTIVE-1", user_id=user.id, org_id=user.org_id, status=DeviceStatus.active))
    db_session.add(Device(device_id="PAD-OFF-1", user_id=user.id, org_id=user.org_id, status=DeviceStatus.disabled))
    db_session.add(Device(device_id="PAD-OTHER-1", user_id=other.id, org_id=other.org_id,
                          status=DeviceStatus.active))
    db_session.commit()
    ok = _login(client, "am_430102_1_2", client="mobile", device_id="PAD-ACTIVE-1")
    assert ok.status_code == 200
    off = _login(client, "am_430102_1_2", client="mobile", device_id="PAD-OFF-1")
    assert off.status_code == 403 and off.get_json()["code"] == "DEVICE_DISABLED"
    theirs = _login(client, "am_430102_1_2", client="mobile", device_id="PAD-OTHER-1")
    assert theirs.status_code == 403 and theirs.get_json()["code"] == "DEVICE_NOT_BOUND"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {ok.get_json()['access_token']}"})
    assert me.get_json()["client"] == "mobile"


def test_disabling_a_device_ends_its_sessions(client, login, db_session):
    from geo_core.db import SYSTEM, set_context
    from geo_core.devices.models import Device, DeviceStatus
    from geo_core.users.models import User

    set_context(db_session, SYSTEM)
    user = db_session.scalar(select(User).where(User.username == "am_430102_3_1"))
    device = Device(device_id="PAD-LIVE-9", user_id=user.id, org_id=user.org_id, status=DeviceStatus.active)
    db_session.add(device)
    db_session.commit()
    tokens = _login(client, "am_430102_3_1", client="mobile", device_id="PAD-LIVE-9").get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    r = client.post(f"/api/v1/devices/{device.id}/disable", json={"reason": "丢失"}, headers=login("sbl_430102_1"))
    assert r.status_code == 200, r.get_json()
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and r.get_json()["code"] == "DEVICE_DISABLED"
