"""Tags: definitions, manual tagging (single and batch, one transaction), and set-based rule recomputation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, literal, literal_column, or_, select, text, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from geo_core.auth.service import audit_event
from geo_core.customers.lists import get_batch
from geo_core.customers.lists_models import CustomerListEntry
from geo_core.customers.models import Customer, CustomerStatus
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org
from geo_core.paging import Page, like_pattern, valid_id
from geo_core.scope import DataScope, Principal
from geo_core.tags import rules
from geo_core.tags.models import CustomerTag, Tag, TagKind, TagSource, source_value
from geo_core.users.models import User

LOCK_CLASS = 72013  # pg advisory lock class for rule recomputation (one job per tag at a time)
MAX_BATCH = 5000
EDITABLE = ("name", "category", "color", "description", "visibility")
CUSTOMER_COLUMNS = (Customer.id, Customer.name, Customer.kind, Customer.category, Customer.id_number_mask,
                    Customer.uscc_mask, Customer.phone_mask, Customer.grid_id, Customer.owner_user_id,
                    Customer.org_id)


def affected(session: Session, stmt: Any) -> int:
    """Run an INSERT/DELETE and return how many rows it touched (counted in the database: the driver's rowcount
    is not reported for INSERT ... SELECT)."""
    done = stmt.returning(literal_column("1").label("one")).cte("affected")
    return session.scalar(select(func.count()).select_from(done)) or 0


def get_tag(session: Session, tag_id: int) -> Tag:
    tag = session.get(Tag, tag_id) if valid_id(tag_id) else None
    if tag is None:
        raise NotFound("标签不存在", code="TAG_NOT_FOUND")
    return tag


_IN_SCOPE = text("SELECT gm_scope_all() OR CAST(:o AS integer) = ANY (gm_visible_org_ids())")


def org_in_scope(session: Session, org_id: int) -> bool:
    """Is the org in the caller's data scope (his rows, not merely visible through a public flag)?"""
    return bool(session.scalar(_IN_SCOPE, {"o": org_id}))


def select_tags(*, kind: str | None = None, category: str | None = None, q: str | None = None) -> Select[Any]:
    """Tags I may see, with how many customers in my scope carry each."""
    carried = (select(func.count()).select_from(CustomerTag).where(CustomerTag.tag_id == Tag.id)
               .correlate(Tag).scalar_subquery())
    stmt = select(Tag, carried.label("customer_count")).order_by(Tag.category, Tag.code)
    if kind:
        stmt = stmt.where(Tag.kind == kind)
    if category:
        stmt = stmt.where(Tag.category == category)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(Tag.name.ilike(pattern), Tag.code.ilike(pattern)))
    return stmt


def list_tags(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Any]:
    stmt = select_tags(**filters)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.limit(page_size).offset((page - 1) * page_size)).all()
    return Page([(tag, count) for tag, count in rows], total, page, page_size)


def count_carriers(session: Session, tag_id: int) -> int:
    return session.scalar(select(func.count()).select_from(CustomerTag).where(CustomerTag.tag_id == tag_id)) or 0


def check_refs(session: Session, refs: rules.Refs, *, path: str, manual_tags_only: bool = False,
               own_id: int | None = None) -> None:
    """Every id a rule refers to must exist within the caller's scope (422 on the rule otherwise)."""
    problems: list[str] = []
    for ids, model, label in ((refs.grid, Grid, "网格"), (refs.org, Org, "机构"), (refs.owner, User, "客户经理")):
        if ids:
            seen = set(session.scalars(select(model.id).where(model.id.in_(ids))))
            missing = sorted(ids - seen)
            if missing:
                problems.append(f"{label} {missing[:10]} 不存在或不在权限范围内")
    if refs.tag:
        kinds = dict(session.execute(select(Tag.id, Tag.kind).where(Tag.id.in_(refs.tag))).all())
        missing = sorted(refs.tag - set(kinds))
        if missing:
            problems.append(f"标签 {missing[:10]} 不存在或不在权限范围内")
        if own_id is not None and own_id in refs.tag:
            problems.append("规则不能引用标签自身")
        elif manual_tags_only and any(k is TagKind.rule for k in kinds.values()):
            problems.append("规则标签只能引用手工标签（避免循环依赖）")
    if problems:
        raise ValidationFailed("规则引用的数据有误", code="INVALID_RULE", errors={path: problems})


def _validated_rule(session: Session, rule: Any, own_id: int | None = None) -> dict[str, Any]:
    _, refs = rules.compile_rule(rule)
    check_refs(session, refs, path="rule", manual_tags_only=True, own_id=own_id)
    return rule


def create_tag(session: Session, actor: Principal, data: dict[str, Any]) -> Tag:
    kind = TagKind(data["kind"])
    rule = data.get("rule")
    if kind is TagKind.rule:
        if rule is None:
            raise ValidationFailed.on("rule", "规则标签需要规则")
        rule = _validated_rule(session, rule)
    elif rule is not None:
        raise ValidationFailed.on("rule", "手工标签不能有规则")
    if session.scalar(select(Tag.id).where(Tag.code == data["code"])):  # one hidden elsewhere: 409 on insert
        raise Conflict("标签代码已存在", code="DUPLICATE", errors={"code": ["标签代码已存在"]})
    tag = Tag(code=data["code"], name=data["name"], category=data.get("category") or "other",
              color=data.get("color") or "#1677ff", description=data.get("description"), kind=kind, rule=rule,
              visibility=data.get("visibility") or "private",
              org_id=None if actor.scope is DataScope.all else actor.org_id,
              created_by=actor.user_id, updated_by=actor.user_id)
    session.add(tag)
    session.flush()
    return tag


def update_tag(session: Session, actor: Principal, tag_id: int, data: dict[str, Any]) -> Tag:
    tag = get_tag(session, tag_id)
    if "rule" in data:
        if tag.kind is not TagKind.rule:
            raise ValidationFailed.on("rule", "手工标签不能有规则")
        if data["rule"] is None:
            raise ValidationFailed.on("rule", "规则标签需要规则")
        tag.rule = _validated_rule(session, data["rule"], own_id=tag.id)
    for key in EDITABLE:
        if key in data:
            setattr(tag, key, data[key])
    tag.updated_by = actor.user_id
    session.flush()
    return tag


_REFERENCED = text("""
    SELECT (SELECT count(*) FROM tags WHERE id <> :t AND rule IS NOT NULL AND jsonb_path_exists(
              rule, '$.** ? (@.field == "tag" && @.value == $t)', jsonb_build_object('t', CAST(:t AS integer))))
         + (SELECT count(*) FROM customer_groups WHERE jsonb_path_exists(definition,
              '$.** ? (@.field == "tag" && @.value == $t)', jsonb_build_object('t', CAST(:t AS integer)))
              OR jsonb_path_exists(definition, '$.tags.* ? (@ == $t)', jsonb_build_object('t', CAST(:t AS integer))))
""")


def delete_tag(session: Session, tag_id: int) -> None:
    """Delete a tag (its customer tags go with it) unless a rule tag or a group refers to it."""
    tag = get_tag(session, tag_id)
    if session.scalar(_REFERENCED, {"t": tag.id}):
        raise Conflict("该标签被规则标签或客群引用，不能删除", code="TAG_IN_USE")
    session.delete(tag)
    session.flush()


# -- manual tagging -----------------------------------------------------------------------------------------------

def _manual_tags(session: Session, tag_ids: list[int]) -> list[Tag]:
    tags = list(session.scalars(select(Tag).where(Tag.id.in_([i for i in tag_ids if valid_id(i)]))))
    missing = sorted(set(tag_ids) - {t.id for t in tags})
    if missing:
        raise ValidationFailed.on("tag_ids", f"标签 {missing[:10]} 不存在或不在权限范围内")
    if any(t.kind is TagKind.rule for t in tags):
        raise ValidationFailed.on("tag_ids", "规则标签由规则计算，不能手工打标或去除")
    return tags


def _visible_customers(session: Session, customer_ids: list[int]) -> list[int]:
    ids = sorted(set(customer_ids))
    seen = set(session.scalars(select(Customer.id).where(Customer.id.in_([i for i in ids if valid_id(i)]))))
    missing = [i for i in ids if i not in seen]
    if missing:
        raise ValidationFailed.on("customer_ids", f"客户 {missing[:10]} 不存在或不在权限范围内")
    return ids


def tag_customers(session: Session, actor: Principal, tag_ids: list[int], *, customer_ids: list[int] | None = None,
                  batch_id: int | None = None) -> int:
    """Put manual tags on customers (or on every customer of an imported list, source `import`) in one
    statement; customers already carrying a tag keep it. Returns the number of tags added."""
    tags = _manual_tags(session, tag_ids)
    if batch_id is not None:
        batch = get_batch(session, batch_id)
        source = TagSource.import_
        customers = select(CustomerListEntry.customer_id).join(Customer, Customer.id == CustomerListEntry.customer_id
                                                               ).where(CustomerListEntry.batch_id == batch.id)
    else:
        ids = _visible_customers(session, customer_ids or [])
        source = TagSource.manual
        customers = select(Customer.id).where(Customer.id.in_(ids))
    pairs = customers.subquery()
    rows = select(pairs.c[0], Tag.id, source_value(source), literal(actor.user_id)).select_from(
        pairs.join(Tag, true())).where(Tag.id.in_([t.id for t in tags]))
    stmt = insert(CustomerTag).from_select(["customer_id", "tag_id", "source", "created_by"], rows.distinct())
    return affected(session, stmt.on_conflict_do_nothing())


def untag_customers(session: Session, actor: Principal, tag_ids: list[int], customer_ids: list[int]) -> int:
    """Take manual tags off customers (in my scope) in one statement; returns the number removed."""
    tags = _manual_tags(session, tag_ids)
    ids = _visible_customers(session, customer_ids)
    return affected(session, delete(CustomerTag).where(CustomerTag.tag_id.in_([t.id for t in tags]),
                                                       CustomerTag.customer_id.in_(ids)))


def tags_of_customer(session: Session, customer_id: int) -> list[tuple[Tag, CustomerTag]]:
    if not valid_id(customer_id) or session.get(Customer, customer_id) is None:
        raise NotFound("客户不存在", code="CUSTOMER_NOT_FOUND")
    return [(t, ct) for t, ct in session.execute(
        select(Tag, CustomerTag).join(CustomerTag, CustomerTag.tag_id == Tag.id)
        .where(CustomerTag.customer_id == customer_id).order_by(Tag.category, Tag.code))]


def customers_with_tag(session: Session, tag_id: int, *, page: int = 1, page_size: int = 20) -> Page[Any]:
    """Customers in my scope carrying the tag (masks only)."""
    tag = get_tag(session, tag_id)
    stmt = (select(*CUSTOMER_COLUMNS, CustomerTag.source, CustomerTag.created_at.label("tagged_at"))
            .join(CustomerTag, CustomerTag.customer_id == Customer.id).where(CustomerTag.tag_id == tag.id)
            .order_by(Customer.id))
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.limit(page_size).offset((page - 1) * page_size)).mappings().all()
    return Page([dict(r) for r in rows], total, page, page_size)


def preview_rule(session: Session, rule: Any) -> int:
    """How many active customers in my scope a rule matches (without saving it)."""
    expr, refs = rules.compile_rule(rule)
    check_refs(session, refs, path="rule")
    return session.scalar(select(func.count()).select_from(Customer).where(
        expr, Customer.status == CustomerStatus.active)) or 0


# -- rule recomputation (run by jobs/tags.py in an elevated job session) -----------------------------------------

@dataclass(frozen=True)
class Recomputed:
    tag_id: int
    code: str
    added: int
    removed: int
    total: int


def _tag_universe(tag: Tag) -> list[Any]:
    """A rule tag applies to the active customers of its org's subtree (a bank-wide tag: all of them)."""
    where: list[Any] = [Customer.status == CustomerStatus.active]
    if tag.org_id is not None:
        root = select(Org.path).where(Org.id == tag.org_id).scalar_subquery()
        where.append(Customer.org_id.in_(select(Org.id).where(Org.path.op("<@")(root))))
    return where


def recompute_tag(session: Session, tag: Tag) -> Recomputed:
    """Insert missing and delete no-longer-matching customer tags of one rule tag: two set-based statements in the
    caller's transaction, audited as one summary row each plus a `recompute` event with the counts."""
    session.execute(text("SELECT pg_advisory_xact_lock(:c, :t)"), {"c": LOCK_CLASS, "t": tag.id})
    expr, _ = rules.compile_rule(tag.rule)
    matched = select(Customer.id).where(expr, *_tag_universe(tag))
    source = source_value(TagSource.rule)
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    try:
        removed = affected(session, delete(CustomerTag).where(
            CustomerTag.tag_id == tag.id, CustomerTag.customer_id.not_in(matched)))
        rows = select(matched.subquery().c.id, literal(tag.id), source)
        added = affected(session, insert(CustomerTag).from_select(["customer_id", "tag_id", "source"], rows)
                         .on_conflict_do_nothing())
    finally:
        session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    tag.computed_at, tag.computed_added, tag.computed_removed = func.now(), added, removed
    session.flush()
    total = count_carriers(session, tag.id)
    audit_event(session, "recompute", "tags", tag.id, {"code": tag.code, "added": added, "removed": removed,
                                                        "total": total})
    return Recomputed(tag.id, tag.code, added, removed, total)


def recompute(session: Session, tag_id: int | None = None) -> list[Recomputed]:
    """Recompute one rule tag, or every rule tag (in code order)."""
    if tag_id is not None:
        tag = get_tag(session, tag_id)
        if tag.kind is not TagKind.rule:
            raise ValidationFailed.on("tag_id", "只有规则标签可以重新计算")
        return [recompute_tag(session, tag)]
    tags = session.scalars(select(Tag).where(Tag.kind == TagKind.rule).order_by(Tag.code)).all()
    return [recompute_tag(session, t) for t in tags]
