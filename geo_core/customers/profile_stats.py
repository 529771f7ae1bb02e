"""Profile statistics (建档统计) by grid / org / account manager / profile type, grouped in SQL under the
caller's row-level security: only customers he may see are counted, only names of entities he may see shown.

Counted: active customers with a profile type (farmer / merchant / micro-enterprise). `profiled` have a
profile; `avg_completeness` is over profiled customers, `avg_completeness_all` counts unprofiled ones as 0;
`complete` have every required field filled.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.coverage.indicators import GRID_SUBTREE, ORG_SUBTREE
from geo_core.errors import NotFound
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org
from geo_core.paging import valid_id

GROUPS = {"grid": "c.grid_id", "org": "c.org_id", "manager": "c.owner_user_id", "type": "c.profile_type::text"}
NAMES = {"grid": "grids", "org": "orgs", "manager": "users"}
TYPE_LABELS = {"farmer": "农户", "merchant": "商户", "micro_enterprise": "小微企业"}

STATS = """
SELECT {key} AS key, count(*) AS customers, count(p.customer_id) AS profiled,
       round(avg(p.completeness), 4) AS avg_completeness, coalesce(sum(p.completeness), 0) AS completeness_sum,
       count(*) FILTER (WHERE p.is_complete) AS complete
FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id
WHERE c.status = 'active' AND c.profile_type IS NOT NULL {where}
GROUP BY 1"""


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    customers, profiled = int(row["customers"]), int(row["profiled"])
    avg = row["avg_completeness"]
    return {"customers": customers, "profiled": profiled, "complete": int(row["complete"]),
            "profiled_share": round(profiled / customers, 4) if customers else None,
            "complete_share": round(int(row["complete"]) / customers, 4) if customers else None,
            "avg_completeness": round(float(avg), 4) if avg is not None else None,
            "avg_completeness_all": round(float(row["completeness_sum"]) / customers, 4) if customers else None}


def profile_stats(session: Session, group_by: str, *, org_id: int | None = None, grid_id: int | None = None,
                  profile_type: str | None = None) -> dict[str, Any]:
    where, params = [], {}
    if org_id is not None:
        if not valid_id(org_id) or session.get(Org, org_id) is None:
            raise NotFound("机构不存在", code="ORG_NOT_FOUND")
        where.append("AND c.org_id " + ORG_SUBTREE.replace(":parent", ":org"))
        params["org"] = org_id
    if grid_id is not None:
        if not valid_id(grid_id) or session.get(Grid, grid_id) is None:
            raise NotFound("网格不存在", code="GRID_NOT_FOUND")
        where.append("AND c.grid_id " + GRID_SUBTREE.replace(":parent", ":grid"))
        params["grid"] = grid_id
    if profile_type:
        where.append("AND c.profile_type = CAST(:ptype AS profile_type)")
        params["ptype"] = profile_type
    filters = " ".join(where)
    grouped = STATS.format(key=GROUPS[group_by], where=filters)
    if group_by == "type":
        sql = f"SELECT s.*, NULL AS name FROM ({grouped}) s ORDER BY s.key"
    else:
        sql = f"SELECT s.*, n.name AS name FROM ({grouped}) s LEFT JOIN {NAMES[group_by]} n ON n.id = s.key " \
              "ORDER BY s.key NULLS LAST"
    rows = []
    for row in session.execute(text(sql), params).mappings():
        name = TYPE_LABELS.get(row["key"]) if group_by == "type" else row["name"]
        rows.append({"key": row["key"], "name": name, **_shape(dict(row))})
    total = session.execute(text(STATS.format(key="0", where=filters)), params).mappings().first()
    empty = {"customers": 0, "profiled": 0, "avg_completeness": None, "completeness_sum": 0, "complete": 0}
    return {"group_by": group_by, "items": rows, "totals": _shape(dict(total) if total else empty)}
