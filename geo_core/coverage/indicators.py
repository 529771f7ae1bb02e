"""Coverage indicators (覆盖指标) per grid / org / account manager, inside the caller's data scope.

Every count runs as one grouped SQL statement under row-level security, so a caller only ever counts the
customers, grids, orgs and POIs he may see. Active customers only (status `active`).

- 入格率 in_grid_rate = customers placed in a grid / customers
- 建档率 profile_rate = profiled customers (farmer / merchant / micro-enterprise with a profile) / known units,
  known units = customers of those profile types + the grid's *unlinked merchant POIs*: POIs of the business
  categories (retail, catering, market, manufacturing, agriculture, services) in a visible grid with no
  customer of the same name in the same grid. POIs carry no link to customers yet, so the same-name test is the
  honest approximation; POIs count toward their grid, the grid's org and the grid's account manager.
- 授信率 credit_rate = formal customers with credit_limit > 0 / formal customers
- 用信率 usage_rate = customers with credit_limit > 0 and loan_balance > 0 / customers with credit_limit > 0
- not_visited_rate = customers never visited or last visited more than N days ago / customers

Grid and org groups roll up their subtree (a branch counts its sub-branches and outlets, a district grid its
communities); manager groups count the customers he manages (管户). Group rows only show entities the caller
can see; `totals` counts every visible customer once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.errors import NotFound
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org
from geo_core.paging import valid_id

GROUPS = ("grid", "org", "manager")
MERCHANT_POI_CATEGORIES = ["retail", "catering", "market", "manufacturing", "agriculture", "services"]
COUNTS = ("customers", "placed", "profileable", "profiled", "unlinked_pois", "formal", "credited",
          "with_credit_line", "borrowing", "not_visited")

CUSTOMER_UNITS = """
SELECT {unit} AS unit,
       count(*) AS customers,
       count(c.grid_id) AS placed,
       count(c.profile_type) AS profileable,
       count(*) FILTER (WHERE c.profile_type IS NOT NULL AND p.customer_id IS NOT NULL) AS profiled,
       count(*) FILTER (WHERE c.category = 'formal') AS formal,
       count(*) FILTER (WHERE c.category = 'formal' AND c.credit_limit > 0) AS credited,
       count(*) FILTER (WHERE c.credit_limit > 0) AS with_credit_line,
       count(*) FILTER (WHERE c.credit_limit > 0 AND c.loan_balance > 0) AS borrowing,
       count(*) FILTER (WHERE c.last_visit_at IS NULL OR c.last_visit_at < :cutoff) AS not_visited
FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id
WHERE c.status = 'active' {where}
GROUP BY 1"""

POI_UNITS = """
SELECT {unit} AS unit, count(*) AS unlinked_pois
FROM pois q JOIN grids g ON g.id = q.grid_id {join}
WHERE q.category = ANY(:poi_categories) {where}
  AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.grid_id = q.grid_id AND c.name = q.name)
GROUP BY 1"""

CURRENT_AM = ("JOIN LATERAL (SELECT user_id FROM grid_assignments a WHERE a.grid_id = q.grid_id "
              "AND a.post = 'account_manager' AND a.valid_to IS NULL AND a.user_id IS NOT NULL "
              "ORDER BY a.id LIMIT 1) am ON true")
ORG_SUBTREE = "IN (SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs WHERE id = :parent))"
GRID_SUBTREE = "IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :parent))"


@dataclass(frozen=True)
class Coverage:
    group_by: str
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    not_visited_days: int
    as_of: datetime


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def with_rates(counts: dict[str, Any]) -> dict[str, Any]:
    """Counts plus the published rates (None when the denominator is 0)."""
    out = {k: int(counts.get(k) or 0) for k in COUNTS}
    out["known_units"] = out["profileable"] + out["unlinked_pois"]
    out["in_grid_rate"] = _rate(out["placed"], out["customers"])
    out["profile_rate"] = _rate(out["profiled"], out["known_units"])
    out["credit_rate"] = _rate(out["credited"], out["formal"])
    out["usage_rate"] = _rate(out["borrowing"], out["with_credit_line"])
    out["not_visited_rate"] = _rate(out["not_visited"], out["customers"])
    return out


def _units_sql(group_by: str, parent_id: int | None, parent_kind: str = "org") -> str:
    """Per finest unit (customer org / grid / owner; 0 for the total): customer and POI counts, joined.
    `parent_id` limits to a grid subtree (parent_kind grid) or an org subtree."""
    c_unit = {"org": "c.org_id", "grid": "c.grid_id", "manager": "c.owner_user_id", "total": "0"}[group_by]
    q_unit = {"org": "g.org_id", "grid": "q.grid_id", "manager": "am.user_id", "total": "0"}[group_by]
    c_where, q_where = "", ""
    if parent_id is not None:
        if parent_kind == "grid":
            c_where, q_where = f"AND c.grid_id {GRID_SUBTREE}", f"AND q.grid_id {GRID_SUBTREE}"
        else:
            c_where, q_where = f"AND c.org_id {ORG_SUBTREE}", f"AND g.org_id {ORG_SUBTREE}"
    if group_by == "grid":
        c_where += " AND c.grid_id IS NOT NULL"
    customers = CUSTOMER_UNITS.format(unit=c_unit, where=c_where)
    pois = POI_UNITS.format(unit=q_unit, where=q_where, join=CURRENT_AM if group_by == "manager" else "")
    sums = ", ".join(f"coalesce(cu.{k}, 0) AS {k}" for k in COUNTS if k != "unlinked_pois")
    return (f"SELECT coalesce(cu.unit, pu.unit) AS unit, {sums}, coalesce(pu.unlinked_pois, 0) AS unlinked_pois "
            f"FROM ({customers}) cu FULL JOIN ({pois}) pu ON pu.unit = cu.unit")


def _grouped_sql(group_by: str, parent_id: int | None) -> str:
    units = _units_sql(group_by, parent_id, "grid" if group_by == "grid" else "org")
    sums = ", ".join(f"sum(u.{k})::bigint AS {k}" for k in COUNTS)
    if group_by == "manager":
        return (f"SELECT u.unit AS key, us.name AS name, us.org_id AS org_id, {', '.join('u.' + k for k in COUNTS)} "
                f"FROM ({units}) u LEFT JOIN users us ON us.id = u.unit ORDER BY u.unit NULLS LAST")
    table = "orgs" if group_by == "org" else "grids"
    owner = "a.id" if group_by == "org" else "a.org_id"
    near = " AND (a.id = :parent OR a.parent_id = :parent)" if parent_id is not None else ""
    # roll each unit up to itself and its visible ancestors (ltree ancestor-or-self)
    return (f"SELECT a.id AS key, a.name AS name, {owner} AS org_id, {sums} "
            f"FROM ({units}) u JOIN {table} o ON o.id = u.unit JOIN {table} a ON a.path @> o.path{near} "
            f"GROUP BY a.id, a.name, {owner} ORDER BY a.path")


def check_parent(session: Session, group_by: str, parent_id: int | None) -> None:
    """The parent (grid for grid groups, org otherwise) must be visible: 404 like any out-of-scope id."""
    if parent_id is None:
        return
    model = Grid if group_by == "grid" else Org
    if not valid_id(parent_id) or session.get(model, parent_id) is None:
        raise NotFound("上级网格/机构不存在", code="PARENT_NOT_FOUND")


def compute(session: Session, group_by: str, *, parent_id: int | None = None, not_visited_days: int = 90,
            now: datetime | None = None) -> Coverage:
    """Indicators per group and for everything visible (within the parent's subtree when given)."""
    if group_by not in GROUPS:
        raise ValueError(group_by)
    check_parent(session, group_by, parent_id)
    as_of = now or datetime.now(UTC)
    params = {"cutoff": as_of - timedelta(days=not_visited_days), "poi_categories": MERCHANT_POI_CATEGORIES,
              "parent": parent_id}
    rows = []
    for row in session.execute(text(_grouped_sql(group_by, parent_id)), params).mappings():
        rows.append({"key": row["key"], "name": row["name"], "org_id": row["org_id"], **with_rates(dict(row))})
    total_units = _units_sql("total", parent_id, "grid" if group_by == "grid" else "org")
    total = session.execute(text(total_units), params).mappings().first()
    return Coverage(group_by, rows, with_rates(dict(total) if total else {}), not_visited_days, as_of)


def compute_total(session: Session, *, not_visited_days: int = 90, now: datetime | None = None,
                  parent_org_id: int | None = None) -> dict[str, Any]:
    params = {"cutoff": (now or datetime.now(UTC)) - timedelta(days=not_visited_days),
              "poi_categories": MERCHANT_POI_CATEGORIES, "parent": parent_org_id}
    total = session.execute(text(_units_sql("total", parent_org_id)), params).mappings().first()
    return with_rates(dict(total) if total else {})
