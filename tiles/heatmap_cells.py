"""Customer heatmaps from the `customer_h3_r8` aggregate (migration 0019) instead of grouping every point.

Used by `tiles.heatmaps.heat_cells` for the `customers` layer when the resolution is <= 8 and the request filters only
on columns the aggregate carries (kind, category, manager = owner_key, org subtree); `since`/`until`, `grid_id` and
`tag` need the points, so those requests take the raw path. RLS on customer_h3_r8 repeats the customers predicate.

Exactness: every aggregate row carries the bounding box of its members (a superset after deletes: it never shrinks).
Rows whose box lies inside the request bbox count whole. An r8 cell with any row crossing the bbox edge is counted
from its points (customers, RLS, the raw path's own `geom && bbox` test, restricted to the cell's box and to
`gm_h3_parent(h3_r10, 8) = cell`), so the result equals grouping the points: same cells, counts and (numeric) sums.
Candidate rows are those whose box meets the bbox grown by PAD degrees: `&&` compares float4-rounded boxes (rounded
outward, ~1e-5 degrees here), so a row just outside the bbox in double precision may still hold points the raw path
counts - such rows make their cell an edge cell.
"""

from __future__ import annotations

from typing import Any

PAD = 1e-3  # degrees; far above float4 rounding of a longitude (~7e-6)
FAST_FILTERS = {"kind": "kind", "category": "category"}
RAW_ONLY = ("since", "until", "grid_id", "tag")


def eligible(layer: str, args: dict[str, Any], res: int) -> bool:
    return layer == "customers" and res <= 8 and not any(args.get(k) for k in RAW_ONLY)


def query(args: dict[str, Any], limit: int | None) -> str:
    """SQL over the params of `tiles.heatmaps._where` (x0..y1 and the filters) plus `res` and `pad`."""
    agg, raw = [], []
    for name, column in FAST_FILTERS.items():
        if args.get(name) is not None:
            agg.append(f"a.{column} = :{name}")
            raw.append(f"t.{column} = :{name}")
    if args.get("manager_id") is not None:
        agg.append("a.owner_key = :manager_id")
        raw.append("t.owner_user_id = :manager_id")
    if args.get("org_id") is not None:
        subtree = "IN (SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs WHERE id = :org_id))"
        agg.append(f"a.org_id {subtree}")
        raw.append(f"t.org_id {subtree}")
    agg_where = "".join(f" AND {c}" for c in agg)
    raw_where = "".join(f" AND {c}" for c in raw)
    return f"""
WITH r AS (
  SELECT a.h3_r8, a.n, a.deposit_sum, a.loan_sum, a.lon0, a.lat0, a.lon1, a.lat1,
         a.lon0 >= :x0 AND a.lon1 <= :x1 AND a.lat0 >= :y0 AND a.lat1 <= :y1 AS inside
  FROM customer_h3_r8 a
  WHERE a.lon1 >= :x0 - :pad AND a.lon0 <= :x1 + :pad AND a.lat1 >= :y0 - :pad AND a.lat0 <= :y1 + :pad{agg_where}
), cells AS (
  SELECT h3_r8, bool_and(inside) AS inside, sum(n) AS n, sum(deposit_sum) AS d, sum(loan_sum) AS l,
         ST_MakeEnvelope(min(lon0), min(lat0), max(lon1), max(lat1), 4326) AS box
  FROM r GROUP BY h3_r8
), edge AS (  -- per edge cell: an index scan of its box (a plain `&&` on a column: leakproof, usable under RLS)
  SELECT c.h3_r8, e.n, e.d, e.l
  FROM cells c CROSS JOIN LATERAL (
    SELECT count(*) AS n, coalesce(sum(t.deposit_balance), 0) AS d, coalesce(sum(t.loan_balance), 0) AS l
    FROM customers t
    WHERE t.geom && c.box AND t.h3_r10 IS NOT NULL
      AND gm_h3_parent(t.h3_r10, 8) = c.h3_r8 AND t.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326){raw_where}
  ) e
  WHERE NOT c.inside AND e.n > 0
), merged AS (
  SELECT h3_r8, n, d, l FROM cells WHERE inside UNION ALL SELECT h3_r8, n, d, l FROM edge
)
SELECT gm_h3_parent(h3_r8, :res) AS cell, sum(n) AS n, coalesce(sum(d), 0)::float8, coalesce(sum(l), 0)::float8
FROM merged GROUP BY 1 ORDER BY 2 DESC, 1""" + (f" LIMIT {int(limit)}" if limit else "")
