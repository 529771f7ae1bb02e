"""Demo staffing (定格-定岗-定人-定责): a grid leader, account managers and grid assistants per community grid.

Deterministic (fixed random seed). Each community grid gets
- a grid leader: the sub-branch leader whose org is the nearest ancestor of the grid's outlet (the branch
  leader where there is none);
- one or two account managers of the grid's owning outlet, with household and deposit targets;
- one grid assistant (an external community cadre), and on every third grid a second one (party member,
  volunteer or merchant representative), owned by the outlet.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from geo_core.grids.models import Grid, GridLevel
from geo_core.grids.staffing_models import AssistantRole, GridAssignment, GridAssistant, GridPost
from geo_core.orgs.models import Org
from geo_core.seed.demo import _person_name
from geo_core.users.models import Role, User, user_roles

SEED_FROM = date(2026, 1, 1)
LEADER_DUTY = "统筹网格营销与走访，督导客户经理完成建档、拓客与存款目标"
MANAGER_DUTY = "负责网格内居民与商户建档、走访和金融服务，维护管户关系"
ASSISTANT_DUTY = {
    AssistantRole.village_cadre: "协助入户走访、居民信息核实与政策宣传",
    AssistantRole.party_member: "带头宣传普惠金融，协助组织社区金融知识讲座",
    AssistantRole.volunteer: "协助走访独居老人与反诈宣传",
    AssistantRole.merchant_rep: "联络周边商户，收集经营与收款需求",
}
EXTRA_KINDS = (AssistantRole.party_member, AssistantRole.volunteer, AssistantRole.merchant_rep)


def _users_by_role(session: Session) -> dict[str, list[User]]:
    rows = session.execute(select(Role.code, User).join(user_roles, user_roles.c.role_id == Role.id)
                           .join(User, User.id == user_roles.c.user_id).order_by(User.username)).all()
    result: dict[str, list[User]] = defaultdict(list)
    for code, user in rows:
        result[code].append(user)
    return result


def _nearest_leader(org: Org, leaders: dict[int, User], orgs: dict[int, Org]) -> User | None:
    """The leader of the nearest ancestor org (the grid's own org included) that has one."""
    current: Org | None = org
    while current is not None:
        if current.id in leaders:
            return leaders[current.id]
        current = orgs.get(current.parent_id) if current.parent_id else None
    return None


def seed_staffing(session: Session) -> int:
    """Assign posts on every community grid of the demo. Returns the number of assignments."""
    rng = random.Random(2026_0006)
    orgs = {o.id: o for o in session.scalars(select(Org))}
    by_role = _users_by_role(session)
    sub_leaders = {u.org_id: u for u in by_role["sub_branch_leader"]}
    branch_leaders = {u.org_id: u for u in by_role["branch_leader"]}
    managers: dict[int, list[User]] = defaultdict(list)
    for user in by_role["account_manager"]:
        managers[user.org_id].append(user)
    grids = list(session.scalars(select(Grid).where(Grid.level == GridLevel.community).order_by(Grid.code)))
    phones = iter(range(13700000000, 13800000000, 7907))

    assistants: list[GridAssistant] = []
    planned: list[tuple[Grid, GridAssistant, AssistantRole]] = []
    for n, grid in enumerate(grids):
        kinds = [AssistantRole.village_cadre] + ([rng.choice(EXTRA_KINDS)] if n % 3 == 0 else [])
        for kind in kinds:
            person = GridAssistant(name=_person_name(rng), phone=str(next(phones)), kind=kind, org_id=grid.org_id,
                                   notes=f"{grid.name}{'社区干部' if kind is AssistantRole.village_cadre else ''}")
            assistants.append(person)
            planned.append((grid, person, kind))
    session.add_all(assistants)
    session.flush()

    rows: list[dict[str, object]] = []

    def assign(grid: Grid, post: GridPost, duty: str, kpi: dict[str, int], *, user: User | None = None,
               assistant: GridAssistant | None = None) -> None:
        rows.append({"grid_id": grid.id, "post": post, "user_id": user.id if user else None,
                     "assistant_id": assistant.id if assistant else None, "responsibilities": duty,
                     "kpi_targets": kpi, "valid_from": SEED_FROM})

    for grid in grids:
        org = orgs[grid.org_id]
        households = grid.households_estimate or 800
        leader = _nearest_leader(org, sub_leaders, orgs) or _nearest_leader(org, branch_leaders, orgs)
        if leader is not None:
            assign(grid, GridPost.grid_leader, LEADER_DUTY,
                   {"households_profiled": households, "deposits_wan": households * 3}, user=leader)
        pool = managers.get(grid.org_id, [])
        chosen = rng.sample(pool, k=min(len(pool), rng.choice((1, 2))))
        for manager in chosen:
            share = households // len(chosen)
            assign(grid, GridPost.account_manager, MANAGER_DUTY,
                   {"households_profiled": share // 10 * 10, "deposits_wan": rng.choice((500, 800, 1000, 1500, 2000)),
                    "visits_monthly": rng.choice((20, 30, 40))}, user=manager)
    for grid, person, kind in planned:
        assign(grid, GridPost.grid_assistant, ASSISTANT_DUTY[kind], {"visits_assisted_monthly": 10},
               assistant=person)
    if rows:
        session.execute(insert(GridAssignment), rows)
    session.flush()
    return len(rows)
