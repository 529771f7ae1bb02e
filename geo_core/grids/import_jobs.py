"""Background grid imports: who the import acts for.

A large grid file (more than `files.MAX_FEATURES` features, up to `files.MAX_JOB_FEATURES`) is imported by an
RQ job (`jobs.grids.import_grid_file`) instead of the request. The job acts as the user who uploaded it, with
his current roles and data scope, so the same rules apply as in the request (org and parent in his scope,
every topology rule, all rows or none).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_core.errors import PermissionDenied
from geo_core.orgs.models import Org
from geo_core.scope import Principal, widest
from geo_core.users.models import User, UserStatus


def load_importer(session: Session, user_id: int | None) -> Principal:
    """The uploader as a principal; he must still be active and hold grid:import (read in an elevated session)."""
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or user.status is not UserStatus.active:
        raise PermissionDenied("导入人账户不存在或已停用", code="IMPORTER_INACTIVE")
    permissions = frozenset(p.code for r in user.roles for p in r.permissions)
    if "grid:import" not in permissions:
        raise PermissionDenied("导入人已没有导入网格的权限", code="PERMISSION_DENIED")
    org_path = session.scalar(select(Org.path).where(Org.id == user.org_id))
    return Principal(user_id=user.id, username=user.username, name=user.name, org_id=user.org_id,
                     org_path=str(org_path), scope=widest(r.data_scope for r in user.roles),
                     permissions=permissions, client="job")
