"""Customer groups (客群): create/edit, live preview, submit → approve/reject (审核) with a log, member snapshot.

Visibility: row-level security gives the creator his groups, users whose scope covers the group's org the public
ones and every non-draft one, and the owning org's subtree the approved public ones. On top of that, a private
group is shown to someone other than its creator only if he holds `group:approve` (he has to review it).

Snapshot on approval: the definition evaluated under the **submitter's** data scope (what he previewed and
submitted), intersected with the **approver's** scope (the approver writes the snapshot under his own row-level
security, so it can never hold a customer he may not see).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, column, delete, func, insert, literal, or_, select, table, text
from sqlalchemy.orm import Session

from geo_core.customers.lists import acting_as
from geo_core.customers.models import Customer
from geo_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from geo_core.grids.models import Grid
from geo_core.groups import definition as defs
from geo_core.groups.models import (
    CustomerGroup,
    CustomerGroupMember,
    CustomerGroupReview,
    GroupCategory,
    GroupStatus,
    ReviewAction,
)
from geo_core.orgs.models import Org
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.scope import DataScope, Principal, widest
from geo_core.tags.service import CUSTOMER_COLUMNS, affected, org_in_scope
from geo_core.users.models import User, UserStatus

APPROVE = "group:approve"
SNAPSHOT = table("gm_group_snapshot", column("id"), schema="pg_temp")
EDITABLE = ("name", "description", "visibility")


def _may_see(actor: Principal) -> Any:
    """The application part of visibility (RLS does the scope part)."""
    if actor.has(APPROVE) or actor.scope is DataScope.all:
        return None
    return or_(CustomerGroup.created_by == actor.user_id, CustomerGroup.visibility == "public")


def get_group(session: Session, actor: Principal, group_id: int) -> CustomerGroup:
    group = session.get(CustomerGroup, group_id) if valid_id(group_id) else None
    if group is not None and group.created_by != actor.user_id and group.visibility == "private" \
            and not (actor.has(APPROVE) or actor.scope is DataScope.all):
        group = None
    if group is None:
        raise NotFound("客群不存在", code="GROUP_NOT_FOUND")
    return group


def select_groups(actor: Principal, *, status: str | None = None, visibility: str | None = None,
                  mine: bool = False, kind: str | None = None, category: str | None = None,
                  q: str | None = None) -> Select[Any]:
    stmt = select(CustomerGroup).order_by(CustomerGroup.updated_at.desc(), CustomerGroup.id.desc())
    rule = _may_see(actor)
    if rule is not None:
        stmt = stmt.where(rule)
    for col, value in ((CustomerGroup.status, status), (CustomerGroup.visibility, visibility),
                       (CustomerGroup.kind, kind), (CustomerGroup.category, category)):
        if value is not None:
            stmt = stmt.where(col == value)
    if mine:
        stmt = stmt.where(CustomerGroup.created_by == actor.user_id)
    if q:
        stmt = stmt.where(CustomerGroup.name.ilike(like_pattern(q)))
    return stmt


def list_groups(session: Session, actor: Principal, *, page: int = 1, page_size: int = 20,
                **filters: Any) -> Page[CustomerGroup]:
    return paginate(session, select_groups(actor, **filters), page, page_size)


# -- preview ------------------------------------------------------------------------------------------------------

def preview(session: Session, definition: dict[str, Any], kind: str, category: str, *,
            top: int = 10) -> dict[str, Any]:
    """Members a definition selects inside the caller's scope: total, and counts by manager and by grid (top N),
    in one aggregate statement (GROUPING SETS) over the caller's row-level security."""
    m = select(Customer.id, Customer.owner_user_id, Customer.grid_id).where(
        *defs.conditions(definition, kind, category)).cte("m")
    stmt = select(func.grouping(m.c.owner_user_id).label("g_owner"), func.grouping(m.c.grid_id).label("g_grid"),
                  m.c.owner_user_id, m.c.grid_id, func.count().label("n")).group_by(
        func.grouping_sets(text("()"), m.c.owner_user_id, m.c.grid_id))
    rows = session.execute(stmt).mappings().all()
    total, managers, grids = 0, [], []
    for r in rows:
        if r["g_owner"] and r["g_grid"]:
            total = r["n"]
        elif not r["g_owner"]:
            managers.append((r["owner_user_id"], r["n"]))
        else:
            grids.append((r["grid_id"], r["n"]))
    managers.sort(key=lambda x: (-x[1], x[0] or 0))
    grids.sort(key=lambda x: (-x[1], x[0] or 0))
    return {"total": total, "managers": len(managers), "grids": len(grids),
            "by_manager": _named(session, User, managers[:top], "user_id"),
            "by_grid": _named(session, Grid, grids[:top], "grid_id")}


def _named(session: Session, model: Any, counts: list[tuple[int | None, int]], key: str) -> list[dict[str, Any]]:
    """Attach names the caller may see (an unassigned bucket has id null; a name out of scope stays null)."""
    ids = [i for i, _ in counts if i is not None]
    names = dict(session.execute(select(model.id, model.name).where(model.id.in_(ids))).all()) if ids else {}
    return [{key: i, "name": names.get(i) if i is not None else None, "count": n} for i, n in counts]


# -- writes -------------------------------------------------------------------------------------------------------

def _log(session: Session, group: CustomerGroup, actor: Principal, action: ReviewAction,
         comment: str | None = None, member_count: int | None = None) -> None:
    session.add(CustomerGroupReview(group_id=group.id, version=group.version, action=action, comment=comment,
                                    member_count=member_count, actor_user_id=actor.user_id))


def create_group(session: Session, actor: Principal, data: dict[str, Any]) -> CustomerGroup:
    category = GroupCategory(data["category"])
    group = CustomerGroup(name=data["name"], description=data.get("description"), kind=data["kind"],
                          category=category, definition=defs.normalise(session, data["definition"], category),
                          visibility=data.get("visibility") or "private", status=GroupStatus.draft, version=1,
                          org_id=actor.org_id, created_by=actor.user_id, updated_by=actor.user_id)
    session.add(group)
    session.flush()
    return group


def _own(group: CustomerGroup, actor: Principal) -> None:
    if group.created_by != actor.user_id:
        raise PermissionDenied("只有创建人可以修改、提交或删除客群", code="NOT_GROUP_OWNER")


def _drop_snapshot(session: Session, group: CustomerGroup) -> None:
    session.execute(delete(CustomerGroupMember).where(CustomerGroupMember.group_id == group.id))
    group.member_count, group.snapshot_at = None, None


def update_group(session: Session, actor: Principal, group_id: int, data: dict[str, Any]) -> CustomerGroup:
    """Edit a draft or rejected group; editing an approved group resets it to a draft of the next version and
    drops its snapshot (campaigns copy members when they start). A submitted group must be withdrawn first."""
    group = get_group(session, actor, group_id)
    _own(group, actor)
    if group.status is GroupStatus.submitted:
        raise Conflict("客群审核中，请先撤回再修改", code="GROUP_UNDER_REVIEW")
    if not data:
        return group
    if "definition" in data:
        group.definition = defs.normalise(session, data["definition"], GroupCategory(group.category))
    for key in EDITABLE:
        if key in data:
            setattr(group, key, data[key])
    if group.status is GroupStatus.approved:
        group.version += 1
        _drop_snapshot(session, group)
        _log(session, group, actor, ReviewAction.reset, "修改已审核客群，退回草稿")
    group.status, group.updated_by = GroupStatus.draft, actor.user_id
    session.flush()
    return group


def delete_group(session: Session, actor: Principal, group_id: int) -> None:
    group = get_group(session, actor, group_id)
    _own(group, actor)
    if group.status in (GroupStatus.approved, GroupStatus.submitted):
        raise Conflict("已提交或已审核的客群不能删除", code="GROUP_LOCKED")
    session.delete(group)
    session.flush()


def submit_group(session: Session, actor: Principal, group_id: int, comment: str | None) -> CustomerGroup:
    group = get_group(session, actor, group_id)
    _own(group, actor)
    if group.status not in (GroupStatus.draft, GroupStatus.rejected):
        raise Conflict("只有草稿或被驳回的客群可以提交审核", code="GROUP_NOT_DRAFT")
    group.status, group.submitted_by, group.submitted_at = GroupStatus.submitted, actor.user_id, func.now()
    group.reviewed_by = group.reviewed_at = group.review_comment = None
    _log(session, group, actor, ReviewAction.submit, comment)
    session.flush()
    return group


def withdraw_group(session: Session, actor: Principal, group_id: int, comment: str | None) -> CustomerGroup:
    group = get_group(session, actor, group_id)
    _own(group, actor)
    if group.status is not GroupStatus.submitted:
        raise Conflict("只有审核中的客群可以撤回", code="GROUP_NOT_SUBMITTED")
    group.status = GroupStatus.draft
    _log(session, group, actor, ReviewAction.withdraw, comment)
    session.flush()
    return group


def _reviewable(session: Session, actor: Principal, group_id: int) -> CustomerGroup:
    group = get_group(session, actor, group_id)
    in_scope = actor.scope is DataScope.all or org_in_scope(session, group.org_id)
    if not in_scope:  # e.g. a subordinate seeing an approved public group of his branch
        raise NotFound("客群不存在", code="GROUP_NOT_FOUND")
    if group.created_by == actor.user_id or group.submitted_by == actor.user_id:
        raise PermissionDenied("不能审核自己创建或提交的客群", code="OWN_GROUP")
    if group.status is not GroupStatus.submitted:
        raise Conflict("只有审核中的客群可以审核", code="GROUP_NOT_SUBMITTED")
    return group


def _principal_of(session: Session, user_id: int | None) -> Principal:
    """The submitter as a principal (current roles and scope), read under the approver's scope."""
    user = session.get(User, user_id) if user_id else None
    if user is None or user.status is not UserStatus.active:
        raise Conflict("提交人账户不存在、已停用或不在您的管辖范围内，无法生成客群名单", code="SUBMITTER_UNAVAILABLE")
    org_path = session.scalar(select(Org.path).where(Org.id == user.org_id))
    if org_path is None:
        raise Conflict("提交人所属机构不在您的管辖范围内", code="SUBMITTER_UNAVAILABLE")
    return Principal(user_id=user.id, username=user.username, name=user.name, org_id=user.org_id,
                     org_path=str(org_path), scope=widest(r.data_scope for r in user.roles),
                     permissions=frozenset(p.code for r in user.roles for p in r.permissions), client="job")


def snapshot_members(session: Session, group: CustomerGroup, submitter: Principal) -> int:
    """Fill customer_group_members: the definition under the submitter's scope (into a temp table), then inserted
    under the current (approver's) row-level security, which keeps only customers he may see."""
    members = defs.select_members(group.definition, group.kind, group.category)
    session.execute(text("DROP TABLE IF EXISTS pg_temp.gm_group_snapshot"))
    session.execute(text("CREATE TEMP TABLE gm_group_snapshot (id integer PRIMARY KEY) ON COMMIT DROP"))
    with acting_as(session, submitter):
        session.execute(insert(SNAPSHOT).from_select(["id"], members))
    _drop_snapshot(session, group)
    chosen = select(literal(group.id), Customer.id).join(SNAPSHOT, SNAPSHOT.c.id == Customer.id)
    count = affected(session, insert(CustomerGroupMember).from_select(["group_id", "customer_id"], chosen))
    session.execute(text("DROP TABLE pg_temp.gm_group_snapshot"))
    group.member_count, group.snapshot_at = count, func.now()
    return count


def approve_group(session: Session, actor: Principal, group_id: int, comment: str | None) -> CustomerGroup:
    group = _reviewable(session, actor, group_id)
    count = snapshot_members(session, group, _principal_of(session, group.submitted_by))
    group.status, group.reviewed_by, group.reviewed_at = GroupStatus.approved, actor.user_id, func.now()
    group.review_comment = comment
    _log(session, group, actor, ReviewAction.approve, comment, count)
    session.flush()
    return group


def reject_group(session: Session, actor: Principal, group_id: int, comment: str) -> CustomerGroup:
    if not comment or not comment.strip():
        raise ValidationFailed.on("comment", "驳回需要填写意见")
    group = _reviewable(session, actor, group_id)
    group.status, group.reviewed_by, group.reviewed_at = GroupStatus.rejected, actor.user_id, func.now()
    group.review_comment = comment
    _log(session, group, actor, ReviewAction.reject, comment)
    session.flush()
    return group


def reviews(session: Session, actor: Principal, group_id: int) -> list[dict[str, Any]]:
    group = get_group(session, actor, group_id)
    rows = session.execute(
        select(CustomerGroupReview, User.name).outerjoin(User, User.id == CustomerGroupReview.actor_user_id)
        .where(CustomerGroupReview.group_id == group.id).order_by(CustomerGroupReview.id)).all()
    return [{"id": r.id, "version": r.version, "action": r.action.value, "comment": r.comment,
             "member_count": r.member_count, "actor_user_id": r.actor_user_id, "actor_name": name,
             "created_at": r.created_at} for r, name in rows]


def members(session: Session, actor: Principal, group_id: int, *, page: int = 1,
            page_size: int = 20) -> Page[dict[str, Any]]:
    """The approved snapshot, masks only; a member outside my scope is not listed (nor counted)."""
    group = get_group(session, actor, group_id)
    stmt = (select(*CUSTOMER_COLUMNS).join(CustomerGroupMember, CustomerGroupMember.customer_id == Customer.id)
            .where(CustomerGroupMember.group_id == group.id).order_by(Customer.id))
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.limit(page_size).offset((page - 1) * page_size)).mappings().all()
    return Page([dict(r) for r in rows], total, page, page_size)
