"""Demo staffing (定格-定岗-定人-定责): a grid leader, account managers and grid assistants per community grid.

Deterministic (fixed random seed). Each community grid gets
- a grid leader: the sub-branch leader whose org is the nearest ancestor of the grid's outlet (the branch
  leader where there is none);
- an account manager of the grid's owning outlet (about one grid in ten: two), with household and deposit
  targets: each outlet's communities are split among its managers in contiguous runs of uneven length
  (3-8 communities per manager at the small scale), so that 网格平衡 has real imbalances to propose fixes for;
- one grid assistant (an external community cadre), and on every third grid a second one (party member,
  volunteer or merchant representative), owned by the outlet.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import date

from sqlalchemy import insert, select, text
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


def _sweep_order(session: Session, grids: list[Grid]) -> list[Grid]:
    """Grids by township, then by angle around the township's centre: neighbours come out next to each other."""
    rows = session.execute(text("""
        SELECT g.id, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)),
               ST_X(ST_Centroid(p.geom)), ST_Y(ST_Centroid(p.geom))
        FROM grids g JOIN grids p ON p.id = g.parent_id WHERE g.id = ANY(:ids)
    """), {"ids": [g.id for g in grids]}).all()
    angle = {r[0]: math.atan2(r[2] - r[4], r[1] - r[3]) for r in rows}
    return sorted(grids, key=lambda g: (g.parent_id or 0, angle.get(g.id, 0.0), g.code))


def _manager_territories(session: Session, grids: list[Grid], managers: dict[int, list[User]],
                         rng: random.Random) -> dict[int, list[User]]:
    """Split each outlet's communities among its account managers in contiguous runs of uneven length.

    The runs follow the sweep order, so a manager's grids lie together (3-8 per manager at the small scale);
    the lengths vary (weights 0.6-1.4), so the demo has unfair loads for 网格平衡 to fix. About one grid in
    ten is shared with the next manager of the outlet.
    """
    by_outlet: dict[int, list[Grid]] = defaultdict(list)
    for grid in grids:
        by_outlet[grid.org_id].append(grid)
    result: dict[int, list[User]] = {}
    for org_id, mine in sorted(by_outlet.items()):
        pool = managers.get(org_id, [])
        if not pool:
            continue
        ordered = _sweep_order(session, mine)
        weights = [rng.uniform(0.6, 1.4) for _ in pool]
        bounds, acc = [], 0.0
        for w in weights:
            acc += w
            bounds.append(round(acc / sum(weights) * len(ordered)))
        start = 0
        for i, (manager, end) in enumerate(zip(pool, bounds, strict=True)):
            for grid in ordered[start:max(end, start + 1)]:
                result[grid.id] = [manager]
                if len(pool) > 1 and rng.random() < 0.1:
                    result[grid.id].append(pool[(i + 1) % len(pool)])
            start = max(end, start + 1)
        for grid in ordered[start:]:
            result[grid.id] = [pool[-1]]
    return result


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

    share_of = _manager_territories(session, grids, managers, rng)
    for grid in grids:
        org = orgs[grid.org_id]
        households = grid.households_estimate or 800
        leader = _nearest_leader(org, sub_leaders, orgs) or _nearest_leader(org, branch_leaders, orgs)
        if leader is not None:
            assign(grid, GridPost.grid_leader, LEADER_DUTY,
                   {"households_profiled": households, "deposits_wan": households * 3}, user=leader)
        chosen = share_of.get(grid.id, [])
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
