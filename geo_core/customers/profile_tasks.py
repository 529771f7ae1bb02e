"""Profile collection tasks (补录任务): turn the missing fields of profiles into work for the account managers.

Contract for the campaign work (营销活动) that consumes them: a task row names one customer, the profile
fields to collect (`missing_fields`, keys of the active template of his profile type when the task was made),
the assignee (the customer's account manager at that time) and a `batch_key` shared by every task created by
one request. Status `open` -> `done` (set automatically, in the same transaction, when a saved profile no
longer misses any of the task's fields) or `cancelled` (by hand). At most one open task per customer; creating
tasks again for the same selection creates none twice (idempotent). Rows follow the customer's data scope.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo_core.customers.models import Customer, ProfileType
from geo_core.customers.profile_models import ProfileCollectionTask, ProfileTemplate, TaskStatus
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.paging import Page, paginate, valid_id
from geo_core.scope import Principal

FILTERS = ("grid_id", "org_id", "owner_user_id", "profile_type", "completeness_below")


def _template_keys(session: Session) -> dict[str, list[str]]:
    """All field keys of the active template per profile type (what an unprofiled customer misses)."""
    rows = session.execute(select(ProfileTemplate.profile_type, ProfileTemplate.fields)
                           .where(ProfileTemplate.is_active)).all()
    keys = {ptype.value: [f["key"] for f in fields] for ptype, fields in rows}
    return {p.value: keys.get(p.value, []) for p in ProfileType}


def selection_sql(filters: dict[str, Any], customer_ids: list[int] | None) -> tuple[str, dict[str, Any]]:
    """WHERE clause over customers c LEFT JOIN customer_profiles p choosing the customers to collect from."""
    where = ["c.profile_type IS NOT NULL", "c.status = 'active'",
             "(p.customer_id IS NULL OR cardinality(p.missing) > 0)"]
    params: dict[str, Any] = {}
    if customer_ids is not None:
        where.append("c.id = ANY(:ids)")
        params["ids"] = customer_ids
    if filters.get("grid_id") is not None:
        where.append("c.grid_id IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :grid_id))")
        params["grid_id"] = filters["grid_id"]
    if filters.get("org_id") is not None:
        where.append("c.org_id IN (SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs WHERE id = :org_id))")
        params["org_id"] = filters["org_id"]
    if filters.get("owner_user_id") is not None:
        where.append("c.owner_user_id = :owner")
        params["owner"] = filters["owner_user_id"]
    if filters.get("profile_type"):
        where.append("c.profile_type = CAST(:ptype AS profile_type)")
        params["ptype"] = filters["profile_type"]
    if filters.get("completeness_below") is not None:
        where.append("coalesce(p.completeness, 0) < :below")
        params["below"] = filters["completeness_below"]
    return " AND ".join(where), params


def create_tasks(session: Session, actor: Principal, *, customer_ids: list[int] | None = None,
                 note: str | None = None, **filters: Any) -> dict[str, Any]:
    """One task per selected customer lacking profile fields, in one statement; customers with an open task
    are left alone. Selection: explicit ids (all must be visible) and/or filters."""
    if customer_ids is None and all(filters.get(k) is None for k in FILTERS):
        raise ValidationFailed.on("customer_ids", "请指定客户或筛选条件")
    if customer_ids is not None:
        customer_ids = list(dict.fromkeys(customer_ids))
        bad = [i for i in customer_ids if not valid_id(i)]
        found = set(session.scalars(select(Customer.id).where(Customer.id.in_([i for i in customer_ids
                                                                               if valid_id(i)]))))
        missing = sorted(set(customer_ids) - found) + bad
        if missing:
            raise ValidationFailed.on("customer_ids", f"客户不存在或不在权限范围内：{missing[:20]}")
    keys = _template_keys(session)
    where, params = selection_sql(filters, customer_ids)
    batch_key = str(uuid.uuid4())
    params.update(batch=batch_key, note=note, actor=actor.user_id,
                  **{f"k_{ptype}": fields for ptype, fields in keys.items()})
    missing_expr = ("CASE WHEN p.customer_id IS NOT NULL THEN p.missing "
                    + " ".join(f"WHEN c.profile_type = '{ptype}' THEN CAST(:k_{ptype} AS varchar[])" for ptype in keys)
                    + " END")
    selected = session.execute(text(f"""
        SELECT c.id, c.profile_type::text, {missing_expr} AS missing, c.owner_user_id
        FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id
        WHERE {where}"""), params).all()
    rows = [r for r in selected if r.missing]
    created: list[int] = []
    if rows:
        created = list(session.scalars(text("""
            INSERT INTO profile_collection_tasks (customer_id, profile_type, missing_fields, assignee_user_id,
                                                  status, batch_key, note, created_by)
            SELECT s.customer_id, CAST(s.profile_type AS profile_type), s.missing, s.owner, 'open', :batch, :note,
                   :actor
            FROM jsonb_to_recordset(CAST(:rows AS jsonb))
                 AS s(customer_id integer, profile_type text, missing varchar[], owner integer)
            ON CONFLICT (customer_id) WHERE status = 'open' DO NOTHING
            RETURNING id"""), {"batch": batch_key, "note": note, "actor": actor.user_id,
                               "rows": _json_rows(rows)}))
    session.flush()
    return {"batch_key": batch_key, "selected": len(rows), "created": len(created),
            "already_open": len(rows) - len(created)}


def _json_rows(rows: list[Any]) -> str:
    import json

    return json.dumps([{"customer_id": r.id, "profile_type": r.profile_type, "missing": list(r.missing),
                        "owner": r.owner_user_id} for r in rows])


def close_satisfied_tasks(session: Session, user_id: int | None, customer_ids: list[int]) -> int:
    """Open tasks whose fields are all filled now become done (called after profiles are saved)."""
    result = session.execute(text("""
        UPDATE profile_collection_tasks t SET status = 'done', closed_at = now(), closed_by = :u, updated_at = now()
        FROM customer_profiles p
        WHERE t.customer_id = p.customer_id AND t.status = 'open' AND t.customer_id = ANY(:ids)
          AND NOT (t.missing_fields && p.missing)"""), {"u": user_id, "ids": customer_ids})
    return result.rowcount or 0


def get_task(session: Session, task_id: int) -> ProfileCollectionTask:
    task = session.get(ProfileCollectionTask, task_id) if valid_id(task_id) else None
    if task is None:
        raise NotFound("补录任务不存在", code="PROFILE_TASK_NOT_FOUND")
    return task


def cancel_task(session: Session, actor: Principal, task_id: int) -> ProfileCollectionTask:
    task = get_task(session, task_id)
    if task.status != TaskStatus.open.value:
        raise Conflict("只能取消进行中的任务", code="PROFILE_TASK_CLOSED")
    task.status, task.closed_at, task.closed_by = TaskStatus.cancelled.value, datetime.now(UTC), actor.user_id
    session.flush()
    return task


def list_tasks(session: Session, *, page: int = 1, page_size: int = 20, status: str | None = None,
               assignee_user_id: int | None = None, customer_id: int | None = None, batch_key: str | None = None,
               profile_type: str | None = None, q: str | None = None) -> Page[Any]:
    task = ProfileCollectionTask
    stmt = (select(task, Customer.name).join(Customer, Customer.id == task.customer_id)
            .order_by(task.id.desc()))
    for column, value in ((ProfileCollectionTask.status, status),
                          (ProfileCollectionTask.assignee_user_id, assignee_user_id),
                          (ProfileCollectionTask.customer_id, customer_id),
                          (ProfileCollectionTask.batch_key, batch_key)):
        if value is not None:
            stmt = stmt.where(column == value)
    if profile_type:
        stmt = stmt.where(ProfileCollectionTask.profile_type == ProfileType(profile_type))
    if q:
        from geo_core.paging import like_pattern

        stmt = stmt.where(Customer.name.ilike(like_pattern(q)))
    total_stmt = stmt.with_only_columns(ProfileCollectionTask.id)
    page_ = paginate(session, total_stmt, page, page_size)
    ids = list(page_.items)
    rows = {t.id: (t, name) for t, name in session.execute(stmt.where(task.id.in_(ids)))} if ids else {}
    return Page([rows[i] for i in ids if i in rows], page_.total, page_.page, page_.page_size)
