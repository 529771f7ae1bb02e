"""Log in (password or SSO token), refresh, log out, and load the principal behind an access token.

These run in the system context (the caller is not known yet); every outcome is audited.
The caller commits even when a DomainError is raised: failure counters and device requests persist.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.auth.models import AuthSession
from geo_core.config import Settings
from geo_core.db import get_context, set_context
from geo_core.devices.models import Device, DeviceStatus
from geo_core.errors import AuthenticationFailed, PermissionDenied, ValidationFailed
from geo_core.orgs.models import Org
from geo_core.scope import Principal, widest
from geo_core.users.models import User, UserStatus

CLIENTS = ("web", "mobile")
BAD_CREDENTIALS = "用户名或密码错误"


@dataclass(frozen=True)
class LoginResult:
    user: User
    session_id: uuid.UUID
    access_token: str
    refresh_token: str
    expires_in: int


def now() -> datetime:
    return datetime.now(UTC)


def audit_event(session: Session, action: str, entity: str, entity_id: object, detail: dict,
                actor_id: int | None = None) -> None:
    session.execute(
        text("SELECT gm_audit_event(:a, :e, :i, CAST(:d AS jsonb), :actor)"),
        {"a": action, "e": entity, "i": None if entity_id is None else str(entity_id),
         "d": _json(detail), "actor": actor_id},
    )


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def issue_access_token(settings: Settings, user_id: int, session_id: uuid.UUID) -> str:
    issued = now()
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "typ": "access",
        "iat": issued,
        "exp": issued + timedelta(seconds=settings.access_token_ttl_s),
    }
    return jwt.encode(claims, settings.secret_key, algorithm="HS256")


def decode_access_token(settings: Settings, token: str) -> tuple[int, uuid.UUID]:
    """The (user id, session id) of a valid access token. Whether the session is still alive is for the caller."""
    user_id, session_id, expires = _verified_access_token(settings.secret_key, token)
    if expires <= _now():  # PyJWT's rule (no leeway), applied again on every use of a cached verification
        raise AuthenticationFailed("访问令牌已过期", code="TOKEN_EXPIRED")
    return user_id, session_id


def _now() -> float:
    return time.time()


@lru_cache(maxsize=4096)
def _verified_access_token(secret: str, token: str) -> tuple[int, uuid.UUID, float]:
    """Signature and claims checked once per token string and process (an HMAC and JSON decode per request cost
    more than the rest of authentication's Python; bench/tiles_bench.py "item by id"). Only successes are cached;
    expiry is re-checked by the caller on every use, and a token is bound to its secret (part of the key)."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        if claims.get("typ") != "access":
            raise AuthenticationFailed("令牌类型错误", code="TOKEN_INVALID")
        return int(claims["sub"]), uuid.UUID(claims["sid"]), float(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationFailed("访问令牌已过期", code="TOKEN_EXPIRED") from exc
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
        raise AuthenticationFailed("访问令牌无效", code="TOKEN_INVALID") from exc


def _act_as(session: Session, user: User) -> None:
    """Attribute the login's own writes (counters, sessions, devices) to the user logging in."""
    set_context(session, replace(get_context(session), user_id=user.id, org_id=user.org_id))


def _check_client(client: str, device_id: str | None) -> None:
    if client not in CLIENTS:
        raise ValidationFailed("客户端类型无效", errors={"client": [f"必须是 {', '.join(CLIENTS)} 之一"]})
    if client == "mobile" and not device_id:
        raise ValidationFailed("移动端登录必须提供设备号", errors={"device_id": ["移动端登录必须提供设备号"]})


def _device_gate(session: Session, user: User, device_id: str, detail: dict) -> None:
    """Only a registered, approved device bound to this user may log in from mobile."""
    device = session.scalar(select(Device).where(Device.device_id == device_id))
    if device is None:
        session.add(Device(device_id=device_id, user_id=user.id, org_id=user.org_id, status=DeviceStatus.pending,
                           model=detail.get("device_model"), platform=detail.get("platform")))
        session.flush()
        audit_event(session, "login_denied", "users", user.id, {"reason": "device_not_registered", **detail}, user.id)
        raise PermissionDenied("该设备未登记，已提交登记申请，请联系管理员审批", code="DEVICE_NOT_REGISTERED")
    reason = None
    if device.user_id != user.id:
        reason = ("device_not_bound", "该设备已绑定其他用户", "DEVICE_NOT_BOUND")
    elif device.status is DeviceStatus.pending:
        reason = ("device_pending", "该设备登记待审批", "DEVICE_PENDING_APPROVAL")
    elif device.status is DeviceStatus.disabled:
        reason = ("device_disabled", "该设备已停用", "DEVICE_DISABLED")
    if reason:
        audit_event(session, "login_denied", "users", user.id, {"reason": reason[0], **detail}, user.id)
        raise PermissionDenied(reason[1], code=reason[2])
    device.last_seen_at = now()


def _start_session(session: Session, settings: Settings, user: User, *, client: str, device_id: str | None,
                   method: str, client_ip: str | None) -> LoginResult:
    user.failed_login_count = 0
    user.locked_until = None
    user.last_login_at = now()
    refresh = crypto.new_token()
    auth = AuthSession(
        id=uuid.uuid4(), user_id=user.id, refresh_token_hash=crypto.sm3_hex(refresh), client=client,
        device_id=device_id, auth_method=method, client_ip=client_ip,
        expires_at=now() + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    session.add(auth)
    session.flush()
    audit_event(session, "login", "users", user.id, {"method": method, "client": client, "session": str(auth.id)},
                user.id)
    return LoginResult(user, auth.id, issue_access_token(settings, user.id, auth.id), refresh,
                       settings.access_token_ttl_s)


def login_with_password(session: Session, settings: Settings, *, username: str, password: str,
                        client: str = "web", device_id: str | None = None, client_ip: str | None = None,
                        device_info: dict | None = None) -> LoginResult:
    _check_client(client, device_id)
    detail = {"username": username, "client": client, "device_id": device_id, **(device_info or {})}
    user = session.scalar(select(User).where(User.username == username.strip().lower()).with_for_update())
    if user is None:
        crypto.burn(password, settings.pbkdf2_iterations)
        audit_event(session, "login_failed", "users", None, {"reason": "unknown_user", **detail})
        raise AuthenticationFailed(BAD_CREDENTIALS, code="BAD_CREDENTIALS")
    _act_as(session, user)
    if user.locked_until and user.locked_until > now():
        audit_event(session, "login_failed", "users", user.id, {"reason": "locked", **detail}, user.id)
        raise PermissionDenied(
            f"账户已锁定，请于 {user.locked_until.astimezone().strftime('%H:%M')} 后重试或联系管理员",
            code="ACCOUNT_LOCKED", detail={"locked_until": user.locked_until.isoformat()},
        )
    if not crypto.verify_password(password, user.password_hash):
        user.failed_login_count += 1
        remaining = settings.lockout_threshold - user.failed_login_count
        if remaining <= 0:
            user.locked_until = now() + timedelta(minutes=settings.lockout_minutes)
            user.failed_login_count = 0
        audit_event(session, "login_failed", "users", user.id,
                    {"reason": "bad_password", "locked": remaining <= 0, **detail}, user.id)
        if remaining <= 0:
            raise PermissionDenied(f"密码连续错误 {settings.lockout_threshold} 次，账户已锁定 "
                                   f"{settings.lockout_minutes} 分钟", code="ACCOUNT_LOCKED")
        raise AuthenticationFailed(BAD_CREDENTIALS, code="BAD_CREDENTIALS", detail={"remaining_attempts": remaining})
    if user.status is not UserStatus.active:
        audit_event(session, "login_failed", "users", user.id, {"reason": "disabled", **detail}, user.id)
        raise PermissionDenied("账户已停用", code="ACCOUNT_DISABLED")
    if client == "mobile":
        _device_gate(session, user, device_id or "", detail)
    if crypto.needs_rehash(user.password_hash, settings.pbkdf2_iterations):
        user.password_hash = crypto.hash_password(password, settings.pbkdf2_iterations)
    return _start_session(session, settings, user, client=client, device_id=device_id, method="password",
                          client_ip=client_ip)


def login_with_sso(session: Session, settings: Settings, *, token: str, client: str = "web",
                   device_id: str | None = None, client_ip: str | None = None) -> LoginResult:
    """Log in with a signed JWT from the bank's e-satchel / OA; `sub` is the employee number."""
    _check_client(client, device_id)
    if not settings.sso_public_key:
        raise PermissionDenied("单点登录未配置", code="SSO_NOT_CONFIGURED")
    try:
        claims = jwt.decode(
            token, settings.sso_public_key, algorithms=list(settings.sso_algorithms),
            audience=settings.sso_audience, issuer=settings.sso_issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]}, leeway=30,
        )
    except jwt.InvalidTokenError as exc:
        audit_event(session, "login_failed", "users", None, {"reason": "sso_invalid", "error": str(exc)})
        raise AuthenticationFailed(f"单点登录令牌无效: {exc}", code="SSO_TOKEN_INVALID") from exc
    employee_no = str(claims["sub"])
    user = session.scalar(select(User).where(User.employee_no == employee_no))
    if user is None or user.status is not UserStatus.active:
        audit_event(session, "login_failed", "users", user.id if user else None,
                    {"reason": "sso_unknown_or_disabled", "employee_no": employee_no})
        raise AuthenticationFailed("单点登录用户不存在或已停用", code="SSO_USER_UNKNOWN")
    _act_as(session, user)
    if client == "mobile":
        _device_gate(session, user, device_id or "", {"employee_no": employee_no, "client": client})
    return _start_session(session, settings, user, client=client, device_id=device_id, method="sso",
                          client_ip=client_ip)


def refresh_tokens(session: Session, settings: Settings, refresh_token: str) -> LoginResult:
    """Rotate the refresh token: the old one stops working."""
    auth = session.scalar(
        select(AuthSession).where(AuthSession.refresh_token_hash == crypto.sm3_hex(refresh_token)).with_for_update()
    )
    if auth is None or auth.revoked_at is not None or auth.expires_at <= now():
        raise AuthenticationFailed("刷新令牌无效或已过期，请重新登录", code="REFRESH_INVALID")
    user = session.get(User, auth.user_id)
    if user is None or user.status is not UserStatus.active:
        raise AuthenticationFailed("账户已停用", code="ACCOUNT_DISABLED")
    refresh = crypto.new_token()
    auth.refresh_token_hash = crypto.sm3_hex(refresh)
    auth.last_used_at = now()
    session.flush()
    return LoginResult(user, auth.id, issue_access_token(settings, user.id, auth.id), refresh,
                       settings.access_token_ttl_s)


def logout(session: Session, session_id: uuid.UUID) -> None:
    auth = session.get(AuthSession, session_id)
    if auth is not None and auth.revoked_at is None:
        auth.revoked_at = now()
        session.flush()


def load_principal(session: Session, user_id: int, session_id: uuid.UUID) -> Principal:
    """The user behind a valid access token, with roles, permissions and data scope."""
    row = session.execute(
        select(User, Org.path, AuthSession.revoked_at, AuthSession.expires_at, AuthSession.client)
        .join(Org, Org.id == User.org_id)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(User.id == user_id, AuthSession.id == session_id)
    ).first()
    if row is None:
        raise AuthenticationFailed("会话不存在", code="SESSION_INVALID")
    user, org_path, revoked_at, expires_at, client = row
    if revoked_at is not None or expires_at <= now():
        raise AuthenticationFailed("会话已退出或过期，请重新登录", code="SESSION_INVALID")
    if user.status is not UserStatus.active:
        raise AuthenticationFailed("账户已停用", code="ACCOUNT_DISABLED")
    if client == "mobile":
        device_status = session.scalar(
            select(Device.status).join(AuthSession, AuthSession.device_id == Device.device_id)
            .where(AuthSession.id == session_id, Device.user_id == user.id)
        )
        if device_status is not DeviceStatus.active:  # disabling a device ends its sessions at once
            raise AuthenticationFailed("该设备已停用或未授权，请重新登录", code="DEVICE_DISABLED")
    permissions = frozenset(p.code for r in user.roles for p in r.permissions)
    return Principal(
        user_id=user.id, username=user.username, name=user.name, org_id=user.org_id, org_path=str(org_path),
        scope=widest(r.data_scope for r in user.roles), permissions=permissions,
        session_id=str(session_id), client=client,
    )
