"""Read side of the audit log (审计日志). Rows are written by database triggers; the app only reads them,
and RLS shows the rows whose actor belongs to an org in the caller's scope."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from geo_core import tabular
from geo_core.audit.models import AuditLog
from geo_core.errors import NotFound
from geo_core.paging import Page, like_pattern, paginate
from geo_core.users.models import User

BIGINT_MAX = 2**63 - 1
MAX_EXPORT_ROWS = tabular.MAX_ROWS


def get_entry(session: Session, entry_id: int) -> AuditLog:
    entry = session.get(AuditLog, entry_id) if 0 < entry_id <= BIGINT_MAX else None
    if entry is None:
        raise NotFound("审计记录不存在", code="AUDIT_NOT_FOUND")
    return entry


def select_entries(q: str | None = None, entity: str | None = None, entity_id: str | None = None,
                   actor_user_id: int | None = None, action: str | None = None, request_id: str | None = None,
                   since: datetime | None = None, until: datetime | None = None) -> Select[Any]:
    """Audit rows matching every given filter, newest first."""
    stmt = select(AuditLog).order_by(AuditLog.occurred_at.desc(), AuditLog.id.desc())
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(AuditLog.entity.ilike(pattern), AuditLog.entity_id.ilike(pattern),
                              AuditLog.action.ilike(pattern), AuditLog.request_id.ilike(pattern)))
    for column, value in ((AuditLog.entity, entity), (AuditLog.entity_id, entity_id),
                          (AuditLog.actor_user_id, actor_user_id), (AuditLog.action, action),
                          (AuditLog.request_id, request_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(AuditLog.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditLog.occurred_at < until)
    return stmt


def list_entries(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[AuditLog]:
    return paginate(session, select_entries(**filters), page, page_size)


def actor_names(session: Session, entries: list[AuditLog]) -> dict[int, tuple[str, str]]:
    """user id -> (username, name) for the actors the caller can see."""
    ids = {e.actor_user_id for e in entries if e.actor_user_id is not None}
    if not ids:
        return {}
    return {u.id: (u.username, u.name) for u in session.scalars(select(User).where(User.id.in_(ids)))}


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


COLUMNS = (
    tabular.TableColumn("id", "编号"),
    tabular.TableColumn("occurred_at", "时间", export=lambda v: v.isoformat(timespec="seconds") if v else ""),
    tabular.TableColumn("actor_user_id", "操作人编号"),
    tabular.TableColumn("actor_username", "操作人"),
    tabular.TableColumn("actor_org_id", "操作人机构编号"),
    tabular.TableColumn("action", "操作"),
    tabular.TableColumn("entity", "对象"),
    tabular.TableColumn("entity_id", "对象编号"),
    tabular.TableColumn("before", "修改前", export=_json),
    tabular.TableColumn("after", "修改后", export=_json),
    tabular.TableColumn("detail", "详情", export=_json),
    tabular.TableColumn("request_id", "请求编号"),
    tabular.TableColumn("client_ip", "客户端 IP"),
)


def export_rows(session: Session, **filters: Any) -> list[dict[str, Any]]:
    """The filtered rows (newest first), at most MAX_EXPORT_ROWS."""
    entries = list(session.scalars(select_entries(**filters).limit(MAX_EXPORT_ROWS)))
    names = actor_names(session, entries)
    keys = ("id", "occurred_at", "actor_user_id", "actor_org_id", "action", "entity", "entity_id", "before",
            "after", "detail", "request_id", "client_ip")
    return [{**{k: getattr(e, k) for k in keys},
             "actor_username": names.get(e.actor_user_id, ("", ""))[0] if e.actor_user_id else ""}
            for e in entries]
