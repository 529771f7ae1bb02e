"""Demo tags and one approved public group, seeded after the demo customers (owner session, deterministic)."""

from __future__ import annotations

from sqlalchemy import func, insert, literal, select
from sqlalchemy.orm import Session

from geo_core.customers.models import Customer
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
from geo_core.tags.models import CustomerTag, Tag, TagKind, TagSource, source_value
from geo_core.tags.service import affected, recompute
from geo_core.users.models import User

DEMO_TAGS = (
    # code, name, category, colour, kind, rule
    ("high_net_worth", "高净值客户", "asset", "#d4380d", TagKind.rule,
     {"field": "deposit_balance", "op": ">=", "value": 500000}),
    ("young_adult", "青年客户", "demographic", "#389e0d", TagKind.rule,
     {"all": [{"field": "kind", "op": "=", "value": "person"}, {"field": "age", "op": "between", "value": [22, 35]}]}),
    ("catering_merchant", "餐饮商户", "industry", "#d48806", TagKind.rule,
     {"all": [{"field": "kind", "op": "=", "value": "company"},
              {"field": "industry", "op": "=", "value": "餐饮"}]}),
    ("near_outlet_500m", "网点周边500米", "location", "#1677ff", TagKind.rule,
     {"field": "outlet_distance", "op": "<=", "value": 500}),
    ("key_account", "重点维护客户", "service", "#722ed1", TagKind.manual, None),
)
MANUAL_SAMPLE = 20  # customers of 芙蓉支行 tagged 重点维护客户 by its branch leader


def seed_tags_and_groups(session: Session) -> dict[str, int]:
    """Bank-wide demo tags (rule tags computed now), a manual tag on a few 芙蓉 customers, and the approved public
    group 芙蓉高净值个人客户 with its member snapshot and review log."""
    admin = session.scalar(select(User).where(User.username == "admin"))
    leader = session.scalar(select(User).where(User.username == "bl_430102"))
    branch = session.scalar(select(Org).where(Org.code == "BR430102"))
    if admin is None or leader is None or branch is None:
        return {}
    tags = {}
    for code, name, category, color, kind, rule in DEMO_TAGS:
        tags[code] = Tag(code=code, name=name, category=category, color=color, kind=kind, rule=rule,
                         visibility="public", org_id=None, created_by=admin.id, updated_by=admin.id)
        session.add(tags[code])
    session.flush()
    recompute(session)
    sample = select(Customer.id).join(Org, Org.id == Customer.org_id).where(
        Org.path.op("<@")(branch.path)).order_by(Customer.id).limit(MANUAL_SAMPLE)
    session.execute(insert(CustomerTag).from_select(
        ["customer_id", "tag_id", "source", "created_by"],
        select(sample.subquery().c.id, literal(tags["key_account"].id),
               source_value(TagSource.manual), literal(leader.id))))
    definition = {"tags": {"any": [tags["high_net_worth"].id]}, "org_ids": [branch.id]}
    group = CustomerGroup(name="芙蓉高净值个人客户", description="芙蓉支行存款 50 万元以上的正式个人客户",
                          kind="person", category=GroupCategory.formal, definition=definition,
                          visibility="public", status=GroupStatus.approved, version=1, org_id=branch.id,
                          created_by=leader.id, updated_by=leader.id, submitted_by=leader.id,
                          submitted_at=func.now(), reviewed_by=admin.id, reviewed_at=func.now(),
                          review_comment="同意", snapshot_at=func.now())
    session.add(group)
    session.flush()
    members = defs.select_members(definition, "person", "formal").subquery()
    count = affected(session, insert(CustomerGroupMember).from_select(
        ["group_id", "customer_id"], select(literal(group.id), members.c.id)))
    group.member_count = count
    session.add_all([
        CustomerGroupReview(group_id=group.id, version=1, action=ReviewAction.submit, actor_user_id=leader.id,
                            comment="请审核"),
        CustomerGroupReview(group_id=group.id, version=1, action=ReviewAction.approve, actor_user_id=admin.id,
                            comment="同意", member_count=count)])
    session.flush()
    return {"tags": len(tags), "group_members": count}
