"""Balancing (what-if): is the work fair? Propose a fairer assignment of grids among chosen managers.

Load of a manager = sum over his grids of a weighted, mean-normalised mix of households, customers (active
customers placed in the grid's subtree, visible to the caller; a company counts twice), customer value (their
deposit + loan balance), area and travel (round trip from his outlet to the grid), so the weights are
comparable. The proposal starts
from today's assignment and repeatedly moves one unlocked grid from a manager to a neighbouring one
(grids that touch) when that lowers the coefficient of variation (CV) of the loads; a move that would
split the giver's grids into disconnected pieces is not taken, so each manager's grids stay
contiguous where they were. It reports before/after loads, CV and compactness (Polsby-Popper of each
manager's union), and the moves, which are applied as audited hand-overs of the account-manager post.
A grid worked by several of the chosen managers is shared: each carries an equal share of its load
and it is not moved.
Customers of one grid are balanced among managers by `geo_core.grids.customer_balancing`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from shapely import wkb
from shapely.geometry import mapping
from shapely.ops import unary_union
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.errors import ValidationFailed
from geo_core.grids.staffing import hand_over_grid
from geo_core.grids.staffing_models import GridPost
from geo_core.grids.summary import HOUSEHOLDS_RANGE
from geo_core.scope import Principal

DEFAULT_WEIGHTS = {"households": 0.35, "customers": 0.15, "value": 0.1, "area": 0.15, "travel": 0.25}
COMPANY_FACTOR = 2.0  # a company customer counts as this many in the customers part of the load
MAX_MANAGERS = 50
MAX_UNITS = 2000


@dataclass
class Unit:
    grid_id: int
    code: str
    name: str
    households: float
    area_km2: float
    geom: Any
    owner: int
    customers: float = 0.0  # weighted count (companies × COMPANY_FACTOR)
    value: float = 0.0  # deposit + loan balance, yuan
    customer_count: int = 0
    holders: tuple[int, ...] = ()  # all chosen managers holding the post; >1 = shared, stays put
    locked: bool = False
    neighbours: set[int] = field(default_factory=set)


@dataclass
class Manager:
    user_id: int
    name: str
    home: Any  # shapely Point or None


def _load_units(session: Session, manager_ids: list[int], parent_grid_id: int | None) -> dict[int, Unit]:
    rows = session.execute(text("""
        WITH chosen AS (
            SELECT g.id, g.code, g.name, coalesce(g.households_estimate, 0) AS hh, g.area_m2 / 1e6 AS km2,
                   ST_AsBinary(g.geom) AS wkb, g.path, array_agg(a.user_id ORDER BY a.valid_from, a.id) AS holders
            FROM grid_assignments a JOIN grids g ON g.id = a.grid_id
            WHERE a.valid_to IS NULL AND a.post = 'account_manager' AND a.user_id = ANY(:m)
              AND g.geom IS NOT NULL AND g.status = 'active'
              AND (CAST(:parent AS integer) IS NULL
                   OR g.path <@ (SELECT path FROM grids WHERE id = CAST(:parent AS integer)))
            GROUP BY g.id
        )
        SELECT ch.id, ch.code, ch.name, ch.hh, ch.km2, ch.wkb, ch.holders, coalesce(cu.n, 0), coalesce(cu.v, 0),
               coalesce(cu.c, 0)
        FROM chosen ch
        LEFT JOIN LATERAL (
            SELECT sum(CASE WHEN c.kind = 'company' THEN CAST(:factor AS float) ELSE 1 END) AS n,
                   sum(coalesce(c.deposit_balance, 0) + coalesce(c.loan_balance, 0)) AS v, count(*) AS c
            FROM customers c JOIN grids cg ON cg.id = c.grid_id
            WHERE cg.path <@ ch.path AND c.status = 'active'
        ) cu ON true
        ORDER BY ch.id
    """), {"m": manager_ids, "parent": parent_grid_id, "factor": COMPANY_FACTOR}).all()
    # a grid several chosen managers work together is shared: its load is split among them and it
    # stays where it is (moving one co-holder's post would not move the work)
    units = {r[0]: Unit(r[0], r[1], r[2], float(r[3]), float(r[4] or 0), wkb.loads(bytes(r[5])), r[6][0],
                        customers=float(r[7]), value=float(r[8]), customer_count=int(r[9]),
                        holders=tuple(dict.fromkeys(r[6])), locked=len(set(r[6])) > 1)
             for r in rows}
    if len(units) > MAX_UNITS:
        raise ValidationFailed.on("manager_ids", f"参与平衡的网格超过 {MAX_UNITS} 个，请缩小范围")
    if units:
        pairs = session.execute(text("""
            SELECT a.id, b.id FROM grids a JOIN grids b ON a.id < b.id AND a.geom && b.geom
            WHERE a.id = ANY(:ids) AND b.id = ANY(:ids) AND ST_Intersects(a.geom, b.geom)
        """), {"ids": list(units)}).all()
        for a, b in pairs:
            units[a].neighbours.add(b)
            units[b].neighbours.add(a)
    return units


def _load_managers(session: Session, manager_ids: list[int]) -> dict[int, Manager]:
    rows = session.execute(text("""
        SELECT u.id, u.name, ST_AsBinary(o.location) FROM users u JOIN orgs o ON o.id = u.org_id
        WHERE u.id = ANY(:m) AND u.status = 'active'
    """), {"m": manager_ids}).all()
    found = {r[0]: Manager(r[0], r[1], wkb.loads(bytes(r[2])) if r[2] is not None else None) for r in rows}
    missing = sorted(set(manager_ids) - set(found))
    if missing:
        raise ValidationFailed.on("manager_ids", f"用户不存在、已停用或不在权限范围内：{missing}")
    return found


def _km(a: Any, b: Any) -> float:
    """Great-circle distance in km between two lon/lat points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a.x, a.y, b.x, b.y))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


class _Model:
    """Per-unit, per-manager load contributions, normalised by the means so weights compare."""

    def __init__(self, units: dict[int, Unit], managers: dict[int, Manager], weights: dict[str, float]) -> None:
        self.units, self.managers, self.weights = units, managers, weights
        centres = {u.grid_id: u.geom.representative_point() for u in units.values()}
        self.travel = {(g, m): (2 * _km(managers[m].home, centres[g]) if managers[m].home else 0.0)
                       for g in units for m in managers}
        n = max(len(units), 1)
        self.mean_h = sum(u.households for u in units.values()) / n or 1.0
        self.mean_a = sum(u.area_km2 for u in units.values()) / n or 1.0
        self.mean_c = sum(u.customers for u in units.values()) / n or 1.0
        self.mean_v = sum(u.value for u in units.values()) / n or 1.0
        self.mean_t = sum(self.travel.values()) / max(len(self.travel), 1) or 1.0

    def unit_load(self, grid_id: int, manager_id: int) -> float:
        u, w = self.units[grid_id], self.weights
        return (w["households"] * u.households / self.mean_h + w["customers"] * u.customers / self.mean_c
                + w["value"] * u.value / self.mean_v + w["area"] * u.area_km2 / self.mean_a
                + w["travel"] * self.travel[(grid_id, manager_id)] / self.mean_t)

    def shares(self, owner: dict[int, int], m: int) -> list[tuple[int, float]]:
        """(grid, share of it) for manager m: 1 for his own grids, 1/k for grids shared by k managers."""
        out = []
        for g, o in owner.items():
            holders = self.units[g].holders
            if len(holders) > 1:
                if m in holders:
                    out.append((g, 1 / len(holders)))
            elif o == m:
                out.append((g, 1.0))
        return out

    def loads(self, owner: dict[int, int]) -> dict[int, float]:
        return {m: sum(share * self.unit_load(g, m) for g, share in self.shares(owner, m)) for m in self.managers}

    def stats(self, owner: dict[int, int], m: int) -> dict[str, float]:
        mine = self.shares(owner, m)
        return {"units": len(mine), "shared_units": sum(1 for _, s in mine if s < 1),
                "households": round(sum(s * self.units[g].households for g, s in mine), 1),
                "customers": round(sum(s * self.units[g].customer_count for g, s in mine), 1),
                "value": round(sum(s * self.units[g].value for g, s in mine), 2),
                "area_km2": round(sum(s * self.units[g].area_km2 for g, s in mine), 3),
                "travel_km": round(sum(s * self.travel[(g, m)] for g, s in mine), 2),
                "load": round(sum(s * self.unit_load(g, m) for g, s in mine), 4)}


def cv(values: list[float]) -> float:
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    if mean == 0:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean


def _connected(units: dict[int, Unit], members: set[int]) -> bool:
    if len(members) <= 1:
        return True
    start = next(iter(members))
    seen, stack = {start}, [start]
    while stack:
        for n in units[stack.pop()].neighbours & members:
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return len(seen) == len(members)


def _components(units: dict[int, Unit], members: set[int]) -> int:
    remaining, count = set(members), 0
    while remaining:
        count += 1
        start = remaining.pop()
        stack = [start]
        while stack:
            for n in units[stack.pop()].neighbours & remaining:
                remaining.discard(n)
                stack.append(n)
    return count


def _improve(model: _Model, owner: dict[int, int], max_moves: int) -> list[tuple[int, int, int]]:
    units, moves = model.units, []
    for _ in range(max_moves):
        loads = model.loads(owner)
        current = cv(list(loads.values()))
        members = defaultdict(set)
        for g, m in owner.items():
            for holder in units[g].holders if len(units[g].holders) > 1 else (m,):
                members[holder].add(g)
        best: tuple[float, int, int, int] | None = None
        for donor in sorted(loads, key=loads.get, reverse=True):
            donor_parts = _components(units, members[donor])
            for g in members[donor]:
                if units[g].locked:
                    continue
                rest = members[donor] - {g}
                if rest and _components(units, rest) > donor_parts:
                    continue  # would split the giver's area
                receivers = {owner[n] for n in units[g].neighbours} | {m for m in loads if not members[m]}
                for recv in receivers - {donor}:
                    trial = dict(loads)
                    trial[donor] -= model.unit_load(g, donor)
                    trial[recv] += model.unit_load(g, recv)
                    value = cv(list(trial.values()))
                    if value < current - 1e-9 and (best is None or value < best[0]):
                        best = (value, g, donor, recv)
        if best is None:
            break
        _, g, donor, recv = best
        owner[g] = recv
        moves.append((g, donor, recv))
    # a grid moved back and forth nets out: report only grids whose owner changed
    return moves


def _compactness(model: _Model, owner: dict[int, int], m: int) -> float | None:
    geoms = [model.units[g].geom for g, _ in model.shares(owner, m)]
    if not geoms:
        return None
    union = unary_union(geoms)
    # Polsby-Popper on lon/lat scaled to local metres (cos latitude), 1.0 = a circle
    lat = math.radians(union.centroid.y)
    from shapely.affinity import scale

    local = scale(union, xfact=math.cos(lat), yfact=1.0, origin=(0, 0))
    return round(4 * math.pi * local.area / local.length ** 2, 4) if local.length else None


def propose(session: Session, *, manager_ids: list[int], parent_grid_id: int | None = None,
            locked_grid_ids: list[int] | None = None, weights: dict[str, float] | None = None,
            max_moves: int = 500) -> dict[str, Any]:
    manager_ids = list(dict.fromkeys(manager_ids))
    if not 2 <= len(manager_ids) <= MAX_MANAGERS:
        raise ValidationFailed.on("manager_ids", f"请选择 2-{MAX_MANAGERS} 名客户经理")
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    if any(v < 0 for v in weights.values()) or not sum(weights.values()):
        raise ValidationFailed.on("weights", "权重须为非负数且不全为 0")
    managers = _load_managers(session, manager_ids)
    units = _load_units(session, manager_ids, parent_grid_id)
    if not units:
        raise ValidationFailed.on("manager_ids", "所选客户经理当前没有可平衡的网格")
    for g in locked_grid_ids or []:
        if g in units:
            units[g].locked = True
    model = _Model(units, managers, weights)
    before = {g: u.owner for g, u in units.items()}
    after = dict(before)
    _improve(model, after, max_moves)
    moves = [{"grid_id": g, "code": units[g].code, "name": units[g].name, "from_user_id": before[g],
              "to_user_id": after[g]} for g in sorted(units) if before[g] != after[g]]
    loads_before, loads_after = model.loads(before), model.loads(after)
    low, high = HOUSEHOLDS_RANGE
    return {
        "weights": weights,
        "balance": {"cv_before": round(cv(list(loads_before.values())), 4),
                    "cv_after": round(cv(list(loads_after.values())), 4)},
        "managers": [
            {"user_id": m, "name": managers[m].name, "before": model.stats(before, m), "after": model.stats(after, m),
             "compactness_before": _compactness(model, before, m), "compactness_after": _compactness(model, after, m),
             "pieces_before": _components(units, {g for g, _ in model.shares(before, m)}),
             "pieces_after": _components(units, {g for g, _ in model.shares(after, m)})}
            for m in manager_ids
        ],
        "moves": moves,
        "flags": [{"grid_id": u.grid_id, "code": u.code, "households": u.households,
                   "flag": "too_small" if u.households < low else "too_large"}
                  for u in units.values() if u.households and not low <= u.households <= high],
        "features": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": u.grid_id, "geometry": mapping(u.geom),
             "properties": {"grid_id": u.grid_id, "code": u.code, "name": u.name, "before": before[u.grid_id],
                            "after": after[u.grid_id], "locked": u.locked, "shared_by": list(u.holders),
                            "households": u.households, "customers": u.customer_count, "value": round(u.value, 2)}}
            for u in units.values()]},
    }


def apply_moves(session: Session, actor: Principal, moves: list[dict[str, int]], reason: str) -> list[int]:
    """Apply proposal moves as hand-overs of the account-manager post, all in the caller's transaction."""
    if not moves:
        raise ValidationFailed.on("moves", "没有需要执行的调整")
    handovers = []
    for move in moves:
        handover = hand_over_grid(session, actor, move["grid_id"], from_user_id=move["from_user_id"],
                                  to_user_id=move["to_user_id"], reason=f"网格平衡调整：{reason}",
                                  only_posts=(GridPost.account_manager,))
        handovers.append(handover.id)
    return handovers
