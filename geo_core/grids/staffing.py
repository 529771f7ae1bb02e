"""Grid staffing use cases (定格-定岗-定人-定责): grid assistants, post assignments, hand-over (移交).

Assignments are history: ending one sets `valid_to`, nothing is deleted. Every row follows the
visibility of its grid (RLS), so a grid outside the caller's scope is 404 and its staff invisible;
the people assigned must be visible to the caller and active. Each use case is one transaction owned
by the caller (services flush, never commit), and the database triggers audit every row change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.grids.customer_moves import move_grid_customers
from geo_core.grids.models import Grid
from geo_core.grids.service import get_grid
from geo_core.grids.staffing_models import (
    POST_LABELS,
    AssistantRole,
    AssistantStatus,
    GridAssignment,
    GridAssistant,
    GridPost,
    Handover,
)
from geo_core.orgs.models import Org
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.scope import Principal
from geo_core.users.models import User, UserStatus
from geo_core.users.service import get_user

ASSISTANT_EDITABLE = ("name", "phone", "kind", "org_id", "user_id", "status", "notes")
MAX_KPI_KEYS = 30
HANDOVER_PREFIX = "移交: "


@dataclass(frozen=True)
class StaffRow:
    """An assignment with what a reader needs: its grid and the holder's name."""

    assignment: GridAssignment
    grid: Grid
    name: str | None


def current_date(session: Session) -> date:
    """Today as the database sees it (one clock for valid_from / valid_to)."""
    return session.scalar(select(func.current_date()))


def _reason(value: str | None, field: str = "reason") -> str:
    reason = (value or "").strip()
    if not reason:
        raise ValidationFailed.on(field, "请填写原因")
    if len(reason) > 400:
        raise ValidationFailed.on(field, "原因不能超过 400 字")
    return reason


def _active_user(session: Session, user_id: int | None, field: str) -> User:
    user = session.get(User, user_id) if user_id is not None and valid_id(user_id) else None
    if user is None or user.status is not UserStatus.active:
        raise ValidationFailed.on(field, "用户不存在、不在权限范围内或已停用")
    return user


def check_kpi_targets(kpi: Any) -> dict[str, Any]:
    """KPI targets are a flat object of metric -> non-negative finite number."""
    if kpi is None:
        return {}
    if not isinstance(kpi, dict):
        raise ValidationFailed.on("kpi_targets", "考核指标须为“指标: 数值”的对象")
    if len(kpi) > MAX_KPI_KEYS:
        raise ValidationFailed.on("kpi_targets", f"考核指标最多 {MAX_KPI_KEYS} 项")
    for key, value in kpi.items():
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise ValidationFailed.on("kpi_targets", "指标名须为 1-64 个字符")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValidationFailed.on("kpi_targets", f"指标 {key} 的目标须为非负数")
    return dict(kpi)


# -- grid assistants (网格三员) -------------------------------------------------------------------------

def get_assistant(session: Session, assistant_id: int) -> GridAssistant:
    assistant = session.get(GridAssistant, assistant_id) if valid_id(assistant_id) else None
    if assistant is None:
        raise NotFound("网格三员不存在", code="ASSISTANT_NOT_FOUND")
    return assistant


def select_assistants(q: str | None = None, org_id: int | None = None, kind: str | None = None,
                      status: str | None = None) -> Select[Any]:
    stmt = select(GridAssistant).order_by(GridAssistant.org_id, GridAssistant.name, GridAssistant.id)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(GridAssistant.name.ilike(pattern), GridAssistant.phone.ilike(pattern),
                              GridAssistant.notes.ilike(pattern)))
    if org_id is not None:
        sub = select(Org.path).where(Org.id == org_id).scalar_subquery()
        stmt = stmt.where(GridAssistant.org_id.in_(select(Org.id).where(Org.path.op("<@")(sub))))
    if kind:
        stmt = stmt.where(GridAssistant.kind == kind)
    if status:
        stmt = stmt.where(GridAssistant.status == status)
    return stmt


def list_assistants(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[GridAssistant]:
    return paginate(session, select_assistants(**filters), page, page_size)


def _assistant_fields(session: Session, data: dict[str, Any], current: GridAssistant | None = None) -> dict[str, Any]:
    values = {k: data[k] for k in ASSISTANT_EDITABLE if k in data}
    if "name" in values:
        values["name"] = (values["name"] or "").strip()
        if not values["name"]:
            raise ValidationFailed.on("name", "请填写姓名")
    if "org_id" in values and (current is None or values["org_id"] != current.org_id):
        if not valid_id(values["org_id"]) or session.get(Org, values["org_id"]) is None:
            raise ValidationFailed.on("org_id", "机构不存在或不在权限范围内")
    if values.get("user_id") is not None and (current is None or values["user_id"] != current.user_id):
        if not valid_id(values["user_id"]) or session.get(User, values["user_id"]) is None:
            raise ValidationFailed.on("user_id", "用户不存在或不在权限范围内")
    if values.get("kind") is not None:
        values["kind"] = AssistantRole(values["kind"])
    if values.get("status") is not None:
        values["status"] = AssistantStatus(values["status"])
    return values


def create_assistant(session: Session, actor: Principal, data: dict[str, Any]) -> GridAssistant:
    data = dict(data)
    if data.get("org_id") is None:
        data["org_id"] = actor.org_id
    assistant = GridAssistant(**_assistant_fields(session, data))
    session.add(assistant)
    session.flush()
    return assistant


def update_assistant(session: Session, actor: Principal, assistant_id: int, data: dict[str, Any]) -> GridAssistant:
    assistant = get_assistant(session, assistant_id)
    for key, value in _assistant_fields(session, data, assistant).items():
        setattr(assistant, key, value)
    session.flush()
    return assistant


def delete_assistant(session: Session, assistant_id: int) -> None:
    """Delete an assistant who never held a post; one with history must be set inactive instead."""
    assistant = get_assistant(session, assistant_id)
    try:
        with session.begin_nested():
            session.delete(assistant)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("该网格三员有任职记录，不能删除，请改为停用", code="ASSISTANT_HAS_ASSIGNMENTS") from exc


# -- assignments ---------------------------------------------------------------------------------------

def select_assignments(grid_id: int | None = None, user_id: int | None = None, assistant_id: int | None = None,
                       include_ended: bool = False) -> Select[Any]:
    """(GridAssignment, Grid) rows: posts in rank order, the latest first."""
    stmt = (select(GridAssignment, Grid).join(Grid, Grid.id == GridAssignment.grid_id)
            .order_by(Grid.path, GridAssignment.post, GridAssignment.valid_to.desc().nulls_first(),
                      GridAssignment.valid_from.desc(), GridAssignment.id.desc()))
    if grid_id is not None:
        stmt = stmt.where(GridAssignment.grid_id == grid_id)
    if user_id is not None:
        stmt = stmt.where(GridAssignment.user_id == user_id)
    if assistant_id is not None:
        stmt = stmt.where(GridAssignment.assistant_id == assistant_id)
    if not include_ended:
        stmt = stmt.where(GridAssignment.valid_to.is_(None))
    return stmt


def holder_names(session: Session, assignment_ids: list[int]) -> dict[int, str]:
    """Names of the holders of these assignments (also people outside my scope, on grids I see)."""
    if not assignment_ids:
        return {}
    rows = session.execute(text("SELECT assignment_id, name FROM gm_grid_staff_names(:ids)"),
                           {"ids": list(assignment_ids)}).all()
    return {i: n for i, n in rows}


def _rows(session: Session, stmt: Select[Any]) -> list[StaffRow]:
    pairs = session.execute(stmt).all()
    names = holder_names(session, [a.id for a, _ in pairs])
    return [StaffRow(a, g, names.get(a.id)) for a, g in pairs]


def list_grid_assignments(session: Session, grid_id: int, *, include_ended: bool = False) -> list[StaffRow]:
    grid = get_grid(session, grid_id)
    return _rows(session, select_assignments(grid_id=grid.id, include_ended=include_ended))


def list_user_assignments(session: Session, user_id: int, *, include_ended: bool = False) -> list[StaffRow]:
    """The grids a user is responsible for (我的网格): only grids visible to the caller."""
    user = get_user(session, user_id)
    return _rows(session, select_assignments(user_id=user.id, include_ended=include_ended))


def get_assignment(session: Session, assignment_id: int) -> GridAssignment:
    assignment = session.get(GridAssignment, assignment_id) if valid_id(assignment_id) else None
    if assignment is None:
        raise NotFound("任职记录不存在", code="ASSIGNMENT_NOT_FOUND")
    return assignment


def staff_row(session: Session, assignment: GridAssignment) -> StaffRow:
    grid = session.get(Grid, assignment.grid_id)
    return StaffRow(assignment, grid, holder_names(session, [assignment.id]).get(assignment.id))


def _current(session: Session, grid_id: int, **match: Any) -> GridAssignment | None:
    stmt = select(GridAssignment).where(GridAssignment.grid_id == grid_id, GridAssignment.valid_to.is_(None))
    for key, value in match.items():
        stmt = stmt.where(getattr(GridAssignment, key) == value)
    return session.scalars(stmt.limit(1)).first()


def _leader_taken(session: Session, leader: GridAssignment) -> Conflict:
    name = holder_names(session, [leader.id]).get(leader.id) or "（未知）"
    return Conflict(f"该网格已有网格长：{name}（自 {leader.valid_from.isoformat()} 起），请先移交或结束其任职",
                    code="GRID_LEADER_TAKEN", errors={"post": [f"当前网格长：{name}"]},
                    detail={"assignment_id": leader.id, "name": name})


def create_assignment(session: Session, actor: Principal, grid_id: int, data: dict[str, Any]) -> GridAssignment:
    """Put a user or a grid assistant on a post of a grid (定岗定人), with responsibilities and KPI targets."""
    grid = get_grid(session, grid_id)
    post = GridPost(data["post"])
    user_id, assistant_id = data.get("user_id"), data.get("assistant_id")
    if (user_id is None) == (assistant_id is None):
        raise ValidationFailed("须且只能指定 user_id 或 assistant_id 之一",
                               errors={"user_id": ["须且只能指定一个任职人员"]})
    if user_id is not None:
        holder: dict[str, int] = {"user_id": _active_user(session, user_id, "user_id").id}
    else:
        if post is not GridPost.grid_assistant:
            raise ValidationFailed.on("assistant_id", "网格三员只能担任网格协管员")
        assistant = session.get(GridAssistant, assistant_id) if valid_id(assistant_id) else None
        if assistant is None or assistant.status is not AssistantStatus.active:
            raise ValidationFailed.on("assistant_id", "网格三员不存在、不在权限范围内或已停用")
        holder = {"assistant_id": assistant.id}
    if post is GridPost.grid_leader:
        leader = _current(session, grid.id, post=GridPost.grid_leader)
        if leader is not None:
            raise _leader_taken(session, leader)
    if _current(session, grid.id, post=post, **holder) is not None:
        raise Conflict(f"该人员已在此网格担任{POST_LABELS[post.value]}", code="ASSIGNMENT_EXISTS",
                       errors={"post": ["已有相同的在任记录"]})
    assignment = GridAssignment(
        grid_id=grid.id, post=post, **holder, responsibilities=data.get("responsibilities"),
        kpi_targets=check_kpi_targets(data.get("kpi_targets")),
        valid_from=data.get("valid_from") or current_date(session), created_by=actor.user_id)
    try:
        with session.begin_nested():
            session.add(assignment)
            session.flush()
    except IntegrityError as exc:  # a concurrent request took the post first
        raise Conflict("任职冲突：该岗位刚被他人分配，请刷新后重试", code="ASSIGNMENT_EXISTS") from exc
    return assignment


def update_assignment(session: Session, actor: Principal, assignment_id: int, data: dict[str, Any]) -> GridAssignment:
    """Change the responsibilities, KPI targets or start date of a current assignment (ended ones are history)."""
    assignment = get_assignment(session, assignment_id)
    if not assignment.is_current:
        raise Conflict("已结束的任职不能修改", code="ASSIGNMENT_ENDED")
    if "responsibilities" in data:
        assignment.responsibilities = data["responsibilities"]
    if "kpi_targets" in data:
        assignment.kpi_targets = check_kpi_targets(data["kpi_targets"])
    if data.get("valid_from") is not None:
        assignment.valid_from = data["valid_from"]
    session.flush()
    return assignment


def _end(session: Session, actor: Principal, assignment: GridAssignment, reason: str, today: date) -> None:
    assignment.valid_to = max(today, assignment.valid_from)
    assignment.ended_by = actor.user_id
    assignment.ended_reason = reason


def end_assignment(session: Session, actor: Principal, assignment_id: int, reason: str | None) -> GridAssignment:
    """End a current assignment today; the row stays as history."""
    assignment = get_assignment(session, assignment_id)
    if not assignment.is_current:
        raise Conflict("该任职已结束", code="ASSIGNMENT_ENDED")
    _end(session, actor, assignment, _reason(reason), current_date(session))
    session.flush()
    return assignment


# -- hand-over (移交) -------------------------------------------------------------------------------------

def move_customers(session: Session, grid_id: int, from_user_id: int, to_user_id: int, *, reason: str = "",
                   actor_id: int | None = None) -> int:
    """Move account ownership (管户关系) of the giver's customers in the grid's subtree to the receiver.

    Same transaction as the hand-over (see `geo_core.grids.customer_moves` for the rules); returns the number
    of customers moved.
    """
    return move_grid_customers(session, grid_id, from_user_id, to_user_id, reason=reason, actor_id=actor_id)


def _move_post(session: Session, actor: Principal, old: GridAssignment, to_user: User, reason: str,
               today: date) -> dict[str, Any]:
    """End one post of the giver and open the same post for the receiver (the database refuses duplicates)."""
    _end(session, actor, old, f"{HANDOVER_PREFIX}{reason}"[:500], today)
    session.flush()
    new = GridAssignment(grid_id=old.grid_id, post=old.post, user_id=to_user.id, responsibilities=old.responsibilities,
                         kpi_targets=dict(old.kpi_targets or {}), valid_from=today, created_by=actor.user_id)
    try:
        with session.begin_nested():
            session.add(new)
            session.flush()
    except IntegrityError as exc:
        label = POST_LABELS[old.post.value]
        raise Conflict(f"移交失败：{to_user.name} 已在该网格担任{label}，请先结束其中一个任职后再移交",
                       code="HANDOVER_CONFLICT", errors={"to_user_id": [f"已在该网格担任{label}"]},
                       detail={"post": old.post.value}) from exc
    return {"post": old.post.value, "ended_assignment_id": old.id, "new_assignment_id": new.id}


def hand_over_grid(session: Session, actor: Principal, grid_id: int, *, from_user_id: int, to_user_id: int,
                   reason: str | None, include_customers: bool = False,
                   only_posts: tuple[GridPost, ...] | None = None) -> Handover:
    """Move every current post (or only `only_posts`) of one user on a grid to another, all or nothing."""
    grid = get_grid(session, grid_id)
    reason = _reason(reason)
    if from_user_id == to_user_id:
        raise ValidationFailed.on("to_user_id", "移交双方不能是同一人")
    posts = list(session.scalars(
        select(GridAssignment)
        .where(GridAssignment.grid_id == grid.id, GridAssignment.user_id == from_user_id,
               GridAssignment.valid_to.is_(None),
               GridAssignment.post.in_(only_posts) if only_posts else GridAssignment.valid_to.is_(None))
        .order_by(GridAssignment.post, GridAssignment.id)
        .with_for_update()
    )) if valid_id(from_user_id) else []
    if not posts:
        raise ValidationFailed.on("from_user_id", "移交人当前未在该网格任职")
    to_user = _active_user(session, to_user_id, "to_user_id")
    from_name = holder_names(session, [posts[0].id]).get(posts[0].id)
    today = current_date(session)
    # customers first: a post that then collides (HANDOVER_CONFLICT) undoes them with everything else
    customers = (move_customers(session, grid.id, from_user_id, to_user.id, reason=f"{HANDOVER_PREFIX}{reason}",
                                actor_id=actor.user_id) if include_customers else 0)
    moved = [_move_post(session, actor, old, to_user, reason, today) for old in posts]
    handover = Handover(grid_id=grid.id, from_user_id=from_user_id, to_user_id=to_user.id, reason=reason,
                        include_customers=include_customers, moved_assignments=len(moved), moved_customers=customers,
                        created_by=actor.user_id,
                        detail={"grid_code": grid.code, "grid_name": grid.name, "from_user_name": from_name,
                                "to_user_name": to_user.name, "assignments": moved})
    session.add(handover)
    session.flush()
    return handover


def get_handover(session: Session, handover_id: int) -> Handover:
    handover = session.get(Handover, handover_id) if valid_id(handover_id) else None
    if handover is None:
        raise NotFound("移交记录不存在", code="HANDOVER_NOT_FOUND")
    return handover


def select_handovers(grid_id: int | None = None, user_id: int | None = None) -> Select[Any]:
    stmt = select(Handover).order_by(Handover.created_at.desc(), Handover.id.desc())
    if grid_id is not None:
        stmt = stmt.where(Handover.grid_id == grid_id)
    if user_id is not None:
        stmt = stmt.where(or_(Handover.from_user_id == user_id, Handover.to_user_id == user_id))
    return stmt


def list_handovers(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Handover]:
    return paginate(session, select_handovers(**filters), page, page_size)
