"""Balancing customers *inside* a grid (what-if): split a grid's customers among chosen managers by load,
keeping each manager's customers close together, then apply as one audited batch of owner changes.

Load of a customer = `count` weight × (1, or `company_factor` for a company) + `value` weight × its value
(deposit + loan balance) / the mean value, so both parts are comparable. The customers taking part are those
in the grid's subtree (visible to the caller, active, located) owned by one of the chosen managers.

Proposal (a capacity-constrained k-means, deterministic):
1. each manager starts at the centroid of his current customers (a manager with none starts at the
   customer farthest from the other managers' centres);
2. locked customers stay with their owner and count against his capacity (target = total load / managers,
   +5 % slack);
3. the others are assigned in order of *regret* (how much worse their second-nearest centre is than the
   nearest), each to the nearest manager with room; distances to the current owner are shortened by
   `stay_bonus` (default 20 %) so that nobody is moved without a reason; when no manager has room the one
   with the lowest relative load takes it;
4. centres are recomputed and 3. repeats until nothing changes (≤ 20 rounds).

Reported before/after per manager: customers, value, load, and compactness as the mean distance (m) of his
customers to their centre (smaller = more compact); overall the coefficient of variation (CV) of loads.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.errors import ValidationFailed
from geo_core.grids.balancing import MAX_MANAGERS, _load_managers, cv
from geo_core.grids.customer_moves import reassign_customers
from geo_core.grids.service import get_grid
from geo_core.grids.staffing_models import Handover
from geo_core.scope import Principal

DEFAULT_WEIGHTS = {"count": 0.5, "value": 0.5}
MAX_CUSTOMERS = 5000
SLACK = 0.05
ROUNDS = 20


@dataclass
class Point:
    customer_id: int
    name: str
    kind: str
    category: str
    value: float
    lon: float
    lat: float
    owner: int
    x: float = 0.0
    y: float = 0.0
    locked: bool = False
    load: float = 0.0


def _load_points(session: Session, grid_id: int, manager_ids: list[int]) -> list[Point]:
    rows = session.execute(text("""
        SELECT c.id, c.name, c.kind::text, c.category::text,
               coalesce(c.deposit_balance, 0) + coalesce(c.loan_balance, 0), ST_X(c.geom), ST_Y(c.geom),
               c.owner_user_id
        FROM customers c
        WHERE c.owner_user_id = ANY(:m) AND c.status = 'active' AND c.geom IS NOT NULL
          AND c.grid_id IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :g))
        ORDER BY c.id
        LIMIT :cap
    """), {"m": manager_ids, "g": grid_id, "cap": MAX_CUSTOMERS + 1}).all()
    if len(rows) > MAX_CUSTOMERS:
        raise ValidationFailed.on("grid_id", f"参与平衡的客户超过 {MAX_CUSTOMERS} 个，请选择更小的网格")
    return [Point(r[0], r[1], r[2], r[3], float(r[4]), float(r[5]), float(r[6]), r[7]) for r in rows]


def _project(points: list[Point]) -> None:
    """Local metres around the points' mean (equirectangular; grids are a few km across)."""
    lat0 = math.radians(sum(p.lat for p in points) / len(points))
    for p in points:
        p.x = p.lon * 111_320.0 * math.cos(lat0)
        p.y = p.lat * 110_574.0


def _weigh(points: list[Point], weights: dict[str, float], company_factor: float) -> None:
    mean_value = sum(p.value for p in points) / len(points) or 1.0
    for p in points:
        count = company_factor if p.kind == "company" else 1.0
        p.load = weights["count"] * count + weights["value"] * p.value / mean_value


def _centres(points: list[Point], owner: dict[int, int], managers: list[int]) -> dict[int, tuple[float, float]]:
    sums: dict[int, list[float]] = {m: [0.0, 0.0, 0] for m in managers}
    for p in points:
        s = sums[owner[p.customer_id]]
        s[0] += p.x
        s[1] += p.y
        s[2] += 1
    centres = {m: (s[0] / s[2], s[1] / s[2]) for m, s in sums.items() if s[2]}
    for m in managers:  # a manager without customers starts at the point farthest from the others
        if m not in centres:
            far = max(points, key=lambda p: min((math.dist((p.x, p.y), c) for c in centres.values()), default=0.0))
            centres[m] = (far.x, far.y)
    return centres


def _assign(points: list[Point], owner: dict[int, int], managers: list[int], centres: dict[int, tuple[float, float]],
            stay_bonus: float) -> dict[int, int]:
    total = sum(p.load for p in points)
    cap = total / len(managers) * (1 + SLACK)
    loads = dict.fromkeys(managers, 0.0)
    result: dict[int, int] = {}
    for p in points:
        if p.locked:
            result[p.customer_id] = p.owner
            loads[p.owner] += p.load
    costs: dict[int, list[tuple[float, int]]] = {}
    for p in points:
        if p.locked:
            continue
        cost = [(math.dist((p.x, p.y), centres[m]) * ((1 - stay_bonus) if m == owner[p.customer_id] else 1.0), m)
                for m in managers]
        costs[p.customer_id] = sorted(cost)
    free = [p for p in points if not p.locked]
    free.sort(key=lambda p: (-(costs[p.customer_id][1][0] - costs[p.customer_id][0][0]), -p.load, p.customer_id))
    for p in free:
        choice = next((m for _, m in costs[p.customer_id] if loads[m] + p.load <= cap), None)
        if choice is None:
            choice = min(managers, key=lambda m: (loads[m], m))
        result[p.customer_id] = choice
        loads[choice] += p.load
    return result


def _stats(points: list[Point], owner: dict[int, int], m: int) -> dict[str, Any]:
    mine = [p for p in points if owner[p.customer_id] == m]
    if not mine:
        return {"customers": 0, "companies": 0, "formal": 0, "value": 0.0, "load": 0.0, "compactness_m": None}
    cx, cy = sum(p.x for p in mine) / len(mine), sum(p.y for p in mine) / len(mine)
    return {"customers": len(mine), "companies": sum(p.kind == "company" for p in mine),
            "formal": sum(p.category == "formal" for p in mine), "value": round(sum(p.value for p in mine), 2),
            "load": round(sum(p.load for p in mine), 4),
            "compactness_m": round(sum(math.dist((p.x, p.y), (cx, cy)) for p in mine) / len(mine), 1)}


def _loads(points: list[Point], owner: dict[int, int], managers: list[int]) -> list[float]:
    loads = dict.fromkeys(managers, 0.0)
    for p in points:
        loads[owner[p.customer_id]] += p.load
    return list(loads.values())


def propose_customers(session: Session, *, grid_id: int, manager_ids: list[int],
                      locked_customer_ids: list[int] | None = None, weights: dict[str, float] | None = None,
                      company_factor: float = 2.0, stay_bonus: float = 0.2) -> dict[str, Any]:
    grid = get_grid(session, grid_id)
    manager_ids = list(dict.fromkeys(manager_ids))
    if not 2 <= len(manager_ids) <= MAX_MANAGERS:
        raise ValidationFailed.on("manager_ids", f"请选择 2-{MAX_MANAGERS} 名客户经理")
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    if any(v < 0 for v in weights.values()) or not sum(weights.values()):
        raise ValidationFailed.on("weights", "权重须为非负数且不全为 0")
    managers = _load_managers(session, manager_ids)
    points = _load_points(session, grid.id, manager_ids)
    if not points:
        raise ValidationFailed.on("manager_ids", "所选客户经理在该网格内没有可平衡的客户")
    locked = set(locked_customer_ids or [])
    for p in points:
        p.locked = p.customer_id in locked
    _project(points)
    _weigh(points, weights, company_factor)
    before = {p.customer_id: p.owner for p in points}
    after = dict(before)
    for _ in range(ROUNDS):
        nxt = _assign(points, before, manager_ids, _centres(points, after, manager_ids), stay_bonus)
        if nxt == after:
            break
        after = nxt
    by_id = {p.customer_id: p for p in points}
    moves = [{"customer_id": c, "name": by_id[c].name, "from_user_id": before[c], "to_user_id": after[c]}
             for c in sorted(before) if before[c] != after[c]]
    return {
        "grid": {"id": grid.id, "code": grid.code, "name": grid.name},
        "weights": weights, "company_factor": company_factor,
        "balance": {"cv_before": round(cv(_loads(points, before, manager_ids)), 4),
                    "cv_after": round(cv(_loads(points, after, manager_ids)), 4)},
        "managers": [{"user_id": m, "name": managers[m].name, "before": _stats(points, before, m),
                      "after": _stats(points, after, m)} for m in manager_ids],
        "moves": moves,
        "features": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": p.customer_id, "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
             "properties": {"customer_id": p.customer_id, "name": p.name, "kind": p.kind, "category": p.category,
                            "value": round(p.value, 2), "before": before[p.customer_id],
                            "after": after[p.customer_id], "locked": p.locked}}
            for p in points]},
    }


def apply_customer_moves(session: Session, actor: Principal, grid_id: int, moves: list[dict[str, int]],
                         reason: str) -> dict[str, Any]:
    """Apply a proposal's customer moves in the caller's transaction, all or nothing.

    Owners change in one batch (each row audited by the trigger; the ownership history gets the reason), and
    one hand-over record per (from, to) pair is written on the grid (`moved_customers`, no posts moved), so
    the moves show in the grid's 移交记录.
    """
    grid = get_grid(session, grid_id)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed.on("reason", "请填写原因")
    if not moves:
        raise ValidationFailed.on("moves", "没有需要执行的调整")
    full_reason = f"网格客户平衡调整：{reason}"
    visible = {r[0] for r in session.execute(text("SELECT id FROM users WHERE id = ANY(:ids) AND status = 'active'"),
                                             {"ids": list({m["to_user_id"] for m in moves})}).all()}
    bad = sorted({m["to_user_id"] for m in moves} - visible)
    if bad:
        raise ValidationFailed.on("moves", f"接收客户经理不存在、已停用或不在权限范围内：{bad}")
    triples = [(m["customer_id"], m["from_user_id"], m["to_user_id"]) for m in moves]
    # only customers in this grid's subtree may be moved through it
    inside = {r[0] for r in session.execute(text(
        "SELECT id FROM customers WHERE id = ANY(:ids) AND grid_id IN "
        "(SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :g))"),
        {"ids": [t[0] for t in triples], "g": grid.id}).all()}
    outside = sorted({t[0] for t in triples} - inside)
    if outside:
        raise ValidationFailed.on("moves", f"客户不在该网格内或不在权限范围内：{outside[:20]}")
    moved = reassign_customers(session, triples, reason=full_reason, actor_id=actor.user_id)
    pairs: dict[tuple[int, int], list[int]] = defaultdict(list)
    for customer_id, from_user, to_user in triples:
        pairs[(from_user, to_user)].append(customer_id)
    names = dict(session.execute(text("SELECT id, name FROM users WHERE id = ANY(:ids)"),
                                 {"ids": list({u for pair in pairs for u in pair})}).all())
    handovers = []
    for (from_user, to_user), ids in sorted(pairs.items()):
        handover = Handover(grid_id=grid.id, from_user_id=from_user, to_user_id=to_user, reason=full_reason[:500],
                            include_customers=True, moved_assignments=0, moved_customers=len(ids),
                            created_by=actor.user_id,
                            detail={"kind": "customer_balancing", "grid_code": grid.code, "grid_name": grid.name,
                                    "from_user_name": names.get(from_user), "to_user_name": names.get(to_user),
                                    "customer_ids": ids, "assignments": []})
        session.add(handover)
        handovers.append(handover)
    session.flush()
    return {"moved_customers": moved, "handover_ids": [h.id for h in handovers]}
