"""A background job acting as the user who started it: his current roles and scope, under RLS.

A job runs in an elevated session; before it writes on a user's behalf it reloads him (he may have been disabled
or lost the permission since he asked) and runs the writes under his data scope, so RLS checks them as it would
his own request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_core.db import get_context, set_context
from geo_core.errors import PermissionDenied
from geo_core.orgs.models import Org
from geo_core.scope import Principal, widest
from geo_core.users.models import User, UserStatus


def load_job_actor(session: Session, user_id: int | None, *, permission: str, inactive: str, inactive_code: str,
                   denied: str) -> Principal:
    """The user as a principal (current roles and scope), client "job". He must still be active (else
    PermissionDenied(`inactive`, `inactive_code`)) and hold `permission` (else PermissionDenied(`denied`))."""
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or user.status is not UserStatus.active:
        raise PermissionDenied(inactive, code=inactive_code)
    permissions = frozenset(p.code for r in user.roles for p in r.permissions)
    if permission not in permissions:
        raise PermissionDenied(denied, code="PERMISSION_DENIED")
    org_path = session.scalar(select(Org.path).where(Org.id == user.org_id))
    return Principal(user_id=user.id, username=user.username, name=user.name, org_id=user.org_id,
                     org_path=str(org_path), scope=widest(r.data_scope for r in user.roles),
                     permissions=permissions, client="job")


@contextmanager
def acting_as(session: Session, actor: Principal) -> Iterator[Session]:
    """Run under the actor's data scope (RLS), keeping the request/job id for the audit log."""
    previous = get_context(session)
    set_context(session, replace(actor.db_context(), request_id=previous.request_id, client_ip=previous.client_ip))
    try:
        yield session
    finally:
        set_context(session, previous)
