"""The principal behind an access token and the request's data-scope context, in ONE statement.

`load_principal` (geo_core.auth.service) needs a system context, the user + session row, the roles, the role
permissions and then a second context statement: five round trips before a request does its own work. The SQL
function `gm_auth_principal()` (migration 0019, SECURITY DEFINER: it reads users, sessions, roles and devices without
a system context) returns the user, session, device status, role scopes and permission codes, and - only when the
session is valid (user active, session neither revoked nor expired, mobile device active and bound to the user) -
sets the transaction-local context (`gm.user_id`, `gm.org_id`, `gm.scope`, `gm.lqueries`, request id, client ip and
the whitelisted extra settings such as the tile server's `statement_timeout`).

Python stays the authority: it re-checks every rule with the same messages as `load_principal`, builds the context
with `geo_core.scope.scope_context` and compares it with what the function set. Any difference (never expected; e.g.
a session expiring between the two clocks) is resolved in Python's favour: the request is refused, or the context is
set again by `set_context`. Nothing is cached: revocation (logout, disabled user or device, changed roles) takes
effect on the next request.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.db import NOBODY, DbContext, _context_params, adopt_context, set_context
from geo_core.errors import AuthenticationFailed
from geo_core.scope import DataScope, Principal, widest

_SQL = text("SELECT * FROM gm_auth_principal(:uid, :sid, :rid, :ip, CAST(:settings AS text[]))")


def authenticate_session(session: Session, user_id: int, session_id: uuid.UUID, *, request_id: str | None,
                         client_ip: str | None, settings: tuple[tuple[str, str], ...] = ()) -> Principal:
    """Load the principal and bind its context (with `settings`) to `session`; raise AuthenticationFailed."""
    flat = [v for pair in settings for v in pair]
    row = session.execute(_SQL, {"uid": user_id, "sid": session_id, "rid": request_id or "", "ip": client_ip or "",
                                 "settings": flat}).first()
    try:
        principal = _check(row, user_id, session_id)
    except AuthenticationFailed:
        # the function sets nothing for an invalid session; reset anyway in case the clocks disagreed
        set_context(session, NOBODY.with_request(request_id, client_ip))
        raise
    ctx = context_of(principal, request_id, client_ip, settings)
    applied = list(row.applied or [])
    if applied[:6] == list(_context_params(ctx).values()) and len(applied) == 6 + len(settings):
        adopt_context(session, ctx)
    else:  # pragma: no cover - a defensive path: Python's view of the context wins
        set_context(session, ctx)
    return principal


def _check(row, user_id: int, session_id: uuid.UUID) -> Principal:  # noqa: ANN001
    if row is None:
        raise AuthenticationFailed("会话不存在", code="SESSION_INVALID")
    if row.revoked or row.expires_at <= datetime.now(UTC):
        raise AuthenticationFailed("会话已退出或过期，请重新登录", code="SESSION_INVALID")
    if row.user_status != "active":
        raise AuthenticationFailed("账户已停用", code="ACCOUNT_DISABLED")
    if row.client == "mobile" and row.device_status != "active":  # disabling a device ends its sessions at once
        raise AuthenticationFailed("该设备已停用或未授权，请重新登录", code="DEVICE_DISABLED")
    return Principal(
        user_id=user_id, username=row.username, name=row.name, org_id=row.org_id, org_path=row.org_path,
        scope=widest(DataScope(s) for s in row.scopes), permissions=frozenset(row.permissions),
        session_id=str(session_id), client=row.client,
    )


def context_of(principal: Principal, request_id: str | None, client_ip: str | None,
               settings: tuple[tuple[str, str], ...] = ()) -> DbContext:
    return replace(principal.db_context().with_request(request_id, client_ip), settings=settings)
