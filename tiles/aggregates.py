"""Grid aggregates for choropleths (strategy map): per grid at a chosen level, customer KPIs inside the caller's
data scope, as GeoJSON (`/aggregates/grids`) or Mapbox Vector Tiles (`/aggregates/grids/{z}/{x}/{y}.mvt`).

A grid at level L counts the customers placed in it or in any grid below it (`customers.grid_id` -> grid whose
ltree `path` lies under L's path). Both the grids and the customers are read on the request session, so RLS decides
which grids appear and which customers count: a caller never learns anything about customers outside his scope.

KPIs (properties): customers, persons, companies, formal, potential, deposit_sum, loan_sum, households_estimate,
coverage_rate (persons / households_estimate), placed_share (share with an account manager, owner_user_id set),
visited_90d_share (last_visit_at within 90 days), task_completion (always null until campaigns/tasks exist).

How it is answered (migration 0020): `grid_customer_stats` (counts and exact numeric sums per grid, org, owner,
kind, category) is summed per grid, then per target grid over the grid's ancestors-or-self (`grids` read under RLS,
as before, so the same grid pairs as `cg.path <@ t.path`). The 90-day visit share: `grid_customer_visits` gives
the whole weeks after the cutoff's week and the whole days after the cutoff's day up to that week's end; only the
rest of the cutoff's own day is read from raw customers (covering index, ~7,000 rows at city scale). Both tables
repeat the customers RLS policy and are kept exact by triggers, so the figures are identical to the raw join
(`RAW_SQL`, kept callable: `grid_kpis(raw=True)`, for tests and bench/grid_aggregates.py): ~30,000 aggregate rows
instead of 2 million customers for the whole city. Statements run unprepared (a generic plan was 10x slower).

Responses (GeoJSON bytes, MVT bytes) are cached in Redis through tiles.cache: the key holds the caller's scope, the
customers and grids layer versions (generation, bumped by API writes, and fingerprint) and the exact change detector
`grid_customer_stats_versions` (per visible org/owner pair, the sequence value of its last change), plus a hash of
the parameters. The visit share also changes with time alone: the query tells when the first counted visit whose
departure from the 90-day window moves a rounded share will leave (`_stable_for`), and a cached entry is never
served after that moment. ETag + `If-None-Match` give 304 like the tiles; `Cache-Control: private`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from flask import Response, current_app
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import text

from api.extensions import BaseSchema, Bbox, Blueprint, db
from api.grids import from_wgs84
from geo_core.crs import transform_geometry
from geo_core.errors import NotFound
from tiles import bytes_response, layer_for, request_crs, scope_of, sql, tile_cache
from tiles.layers import GRID_LEVELS

blp = Blueprint("aggregates", __name__, url_prefix="/aggregates", description="网格汇总（专题图 choropleth）")
MAX_GRIDS = 20_000
MVT_LAYER = "grid_aggregates"
MVT_TYPE = "application/vnd.mapbox-vector-tile"
KPIS = ("customers", "persons", "companies", "formal", "potential", "deposit_sum", "loan_sum", "households_estimate",
        "coverage_rate", "placed_share", "visited_90d_share", "task_completion")
FORMAT = "a1"  # part of the cache key: bump when the response format changes

_TARGET = """
WITH target AS MATERIALIZED (
  SELECT g.id, g.code, g.name, g.level::text AS level, g.org_id, g.households_estimate, g.path, g.geom
  FROM grids g
  WHERE g.kind = 'physical' AND g.level = CAST(%(level)s AS grid_level) AND g.geom IS NOT NULL
    AND g.geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)
  ORDER BY g.id LIMIT %(cap)s
)"""
_OUTPUT = """
SELECT t.id, t.code, t.name, t.level, t.org_id, t.households_estimate,
       coalesce(s.customers, 0), coalesce(s.persons, 0), coalesce(s.companies, 0), coalesce(s.formal, 0),
       coalesce(s.potential, 0), coalesce(s.deposit_sum, 0), coalesce(s.loan_sum, 0), coalesce(s.placed, 0),
       {visited}, {{geometry}}, {expiry}
FROM target t LEFT JOIN stats s ON s.id = t.id {joins} ORDER BY t.id
"""

# the raw join over every customer (before migration 0020): the reference the aggregates must equal
RAW_SQL = _TARGET + """, stats AS (
  SELECT t.id, count(*) AS customers,
         count(*) FILTER (WHERE c.kind = 'person') AS persons,
         count(*) FILTER (WHERE c.kind = 'company') AS companies,
         count(*) FILTER (WHERE c.category = 'formal') AS formal,
         count(*) FILTER (WHERE c.category = 'potential') AS potential,
         coalesce(sum(c.deposit_balance), 0)::float8 AS deposit_sum,
         coalesce(sum(c.loan_balance), 0)::float8 AS loan_sum,
         count(*) FILTER (WHERE c.owner_user_id IS NOT NULL) AS placed,
         count(*) FILTER (WHERE c.last_visit_at >= now() - interval '90 days') AS visited
  FROM target t JOIN grids cg ON cg.path <@ t.path JOIN customers c ON c.grid_id = cg.id
  GROUP BY t.id
)""" + _OUTPUT.format(visited="coalesce(s.visited, 0)", expiry="NULL, NULL, NULL, NULL", joins="")

FIRST_VISITS = 64  # earliest boundary-day visits returned per grid, to tell when its rounded share changes
_CUTOFF = "now() - interval '90 days'"
_WEEK0, _DAY0 = f"gm_visit_bucket({_CUTOFF}, 7)", f"gm_visit_bucket({_CUTOFF}, 1)"
_EDGE_END = f"gm_visit_bucket_end({_DAY0}, 1)"
# the same figures from the trigger-maintained aggregates (migration 0020), summed per grid first, then per target
# over the grid's ancestors-or-self (t.path = a prefix of cg.path: the same pairs as cg.path <@ t.path, found by a
# hash join instead of a path comparison per pair). The visit share: whole weeks after the cutoff's week and whole
# days after the cutoff's day up to that week's end from grid_customer_visits, the rest of the cutoff's own day from
# raw customers (index-only scan of ix_customers_last_visit_at), with the earliest of those visits (epoch seconds)
# and the day's end: see `_stable_for`.
STATS_SQL = _TARGET + f""", per_grid AS (
  SELECT s.grid_id, sum(s.n) AS customers, sum(s.n) FILTER (WHERE s.kind = 'person') AS persons,
         sum(s.n) FILTER (WHERE s.kind = 'company') AS companies,
         sum(s.n) FILTER (WHERE s.category = 'formal') AS formal,
         sum(s.n) FILTER (WHERE s.category = 'potential') AS potential,
         sum(s.deposit_sum) AS deposit_sum, sum(s.loan_sum) AS loan_sum,
         sum(s.n) FILTER (WHERE s.owner_key <> 0) AS placed
  FROM grid_customer_stats s GROUP BY s.grid_id
), weeks AS (
  SELECT x.grid_id, sum(x.n) AS visited FROM (
    SELECT v.grid_id, v.n FROM grid_customer_visits v WHERE v.days = 7 AND v.bucket > {_WEEK0}
    UNION ALL
    SELECT v.grid_id, v.n FROM grid_customer_visits v
    WHERE v.days = 1 AND v.bucket > {_DAY0} AND v.bucket < 7 * ({_WEEK0} + 1)
  ) x GROUP BY x.grid_id
), sub AS MATERIALIZED (
  SELECT t.id AS tid, cg.id AS gid
  FROM grids cg CROSS JOIN LATERAL generate_series(1, nlevel(cg.path)) k
  JOIN target t ON t.path::text = subpath(cg.path, 0, k)::text
  WHERE cg.id IN (SELECT grid_id FROM per_grid)
), stats AS (
  SELECT d.tid AS id, sum(p.customers)::bigint AS customers, sum(p.persons)::bigint AS persons,
         sum(p.companies)::bigint AS companies, sum(p.formal)::bigint AS formal,
         sum(p.potential)::bigint AS potential, sum(p.deposit_sum)::float8 AS deposit_sum,
         sum(p.loan_sum)::float8 AS loan_sum, sum(p.placed)::bigint AS placed,
         coalesce(sum(w.visited), 0)::bigint AS weeks_visited
  FROM sub d JOIN per_grid p ON p.grid_id = d.gid LEFT JOIN weeks w ON w.grid_id = d.gid
  GROUP BY d.tid
), edge AS (
  SELECT d.tid AS id, count(*) AS visited,
         (array_agg(extract(epoch FROM c.last_visit_at)::float8 ORDER BY c.last_visit_at))[1:{FIRST_VISITS}]
           AS first_visits
  FROM customers c JOIN sub d ON d.gid = c.grid_id
  WHERE c.grid_id IS NOT NULL AND c.last_visit_at >= {_CUTOFF} AND c.last_visit_at < {_EDGE_END}
  GROUP BY d.tid
)""" + _OUTPUT.format(
    visited="coalesce(s.weeks_visited, 0) + coalesce(e.visited, 0)",
    expiry=f"coalesce(e.visited, 0), e.first_visits, extract(epoch FROM {_EDGE_END})::float8, "
           "extract(epoch FROM clock_timestamp())::float8",
    joins="LEFT JOIN edge e ON e.id = t.id")
# the exact change detector of the aggregates as the caller sees them (RLS), see migration 0020
VERSION_SQL = "SELECT count(*), coalesce(max(seq), 0), coalesce(sum(seq), 0) FROM grid_customer_stats_versions"


class AggregateFilterArgs(BaseSchema):
    level = fields.String(load_default="community", validate=validate.OneOf(GRID_LEVELS),
                          metadata={"description": "grid level: " + " | ".join(GRID_LEVELS)})
    crs = fields.String(load_default="wgs84", metadata={"description": "wgs84 | gcj02 | bd09 (GeoJSON); "
                                                                       "wgs84 | gcj02 (MVT)"})


class AggregateArgs(AggregateFilterArgs):
    bbox = Bbox(load_default=(-180.0, -90.0, 180.0, 90.0),
                metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84); default: everywhere"})


def _share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


DAYS_90 = 90 * 86400.0


def _stable_for(visited: int, customers: int, edge_n: int, first_visits: list[float] | None,
                edge_end: float) -> float:
    """Epoch second until which this grid's rounded visited_90d_share stays what it is now: a counted visit leaves
    the window 90 days after it happened, earliest first, and the share changes with the k-th leaver that moves its
    rounded value. Past the returned boundary-day visits, every later one is >= the day's end (conservative)."""
    share = _share(visited, customers)
    k = 1
    while k <= visited and _share(visited - k, customers) == share:
        k += 1
    if k > visited:
        return math.inf  # no departure changes the rounded share
    firsts = first_visits or []
    if k <= len(firsts):
        return firsts[k - 1] + DAYS_90
    return (firsts[-1] if len(firsts) < edge_n else edge_end) + DAYS_90


def grid_kpis(level: str, box: tuple[float, ...], geometry: str,
              raw: bool = False) -> tuple[list[tuple[dict[str, Any], Any]], float | None]:
    """(properties, geometry value) per visible grid of `level` touching the box, KPIs over visible customers; and
    for how many seconds the answer stays exact as time passes (None: forever, or `raw`). `raw` runs the pre-0020
    join."""
    query = (RAW_SQL if raw else STATS_SQL).format(geometry=geometry)
    params = {"level": level, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "cap": MAX_GRIDS + 1}
    # never a server-side prepared statement: after 5 runs PostgreSQL may switch to a generic plan, which for the
    # community level took 1.8 s instead of 0.2 s (measured at city scale); planning costs ~1 ms (13 ms on a new
    # connection)
    connection = db().connection().connection.driver_connection
    with connection.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(query, params, prepare=False)
        rows = cur.fetchall()
    out, until = [], math.inf
    for (gid, code, name, lvl, org_id, households, customers, persons, companies, formal, potential, deposits,
         loans, placed, visited, geom, edge_n, first_visits, edge_end, _) in rows:
        props = {"id": gid, "code": code, "name": name, "level": lvl, "org_id": org_id, "customers": customers,
                 "persons": persons, "companies": companies, "formal": formal, "potential": potential,
                 "deposit_sum": round(deposits, 2), "loan_sum": round(loans, 2), "households_estimate": households,
                 "coverage_rate": _share(persons, households), "placed_share": _share(placed, customers),
                 "visited_90d_share": _share(visited, customers), "task_completion": None}
        out.append((props, geom))
        if not raw:
            until = min(until, _stable_for(visited, customers, edge_n, first_visits, edge_end))
    return out, (None if raw or until == math.inf else until - rows[0][-1] - 0.001)


# --- cache -----------------------------------------------------------------------------------------------------------

def _version(cache: Any, scope: str) -> str:
    """Customers and grids layer versions (as their tiles use them) and the aggregates' exact change detector."""
    from tiles.layers import get_layer
    from tiles.vector_tiles import fingerprint

    session = db()
    parts = [cache.version(name, scope, lambda name=name: fingerprint(session, get_layer(name)))
             for name in ("customers", "grids")]
    parts.append(cache.version("grid_customer_stats", scope,
                               lambda: "|".join(str(v) for v in session.execute(text(VERSION_SQL)).one())))
    return ".".join(parts)


def cached(kind: str, args: dict[str, Any], render: Callable[[], tuple[bytes, float | None]],
           *parts: object) -> tuple[bytes, str]:
    """The response bytes and the cache status (hit / miss / off). A cached entry starts with its expiry (epoch
    seconds, 0: none) and a newline, and is never served after that expiry."""
    cache = tile_cache()
    if not cache.enabled:
        return render()[0], "off"
    spec = layer_for("customers")
    scope = scope_of(spec)
    norm = json.dumps({k: v for k, v in sorted(args.items()) if v is not None}, default=str, sort_keys=True)
    digest = hashlib.sha1(norm.encode()).hexdigest()[:16]
    key = cache.derived_key(spec, _version(cache, scope), scope, kind, FORMAT, digest, *parts)
    entry = cache.get(key)
    if entry is not None:
        head, _, data = entry.partition(b"\n")
        expires = float(head or 0)
        if not expires or time.time() < expires:
            return data, "hit"
    data, valid_for = render()
    if valid_for is None or valid_for > 1:
        expires = 0.0 if valid_for is None else time.time() + valid_for
        cache.put(key, f"{expires!r}\n".encode() + data)
    return data, "miss"


# --- views -----------------------------------------------------------------------------------------------------------

@blp.route("/grids")
class GridAggregates(MethodView):
    @blp.arguments(AggregateArgs, location="query")
    def get(self, args: dict[str, Any]) -> Response:
        """Per-grid customer KPIs at a level, with grid polygons (GeoJSON, in `crs`); inside my data scope"""
        layer_for("grids")
        layer_for("customers")
        crs = request_crs(("wgs84", "gcj02", "bd09"))
        data, status = cached("agg", {**args, "crs": crs}, lambda: render_geojson(args["level"], args["bbox"], crs))
        return bytes_response(data, "application/json", status)


def render_geojson(level: str, box: tuple[float, ...], crs: str) -> tuple[bytes, float | None]:
    rows, valid_for = grid_kpis(level, box, "ST_AsGeoJSON(t.geom, 7)")
    features = [{"type": "Feature", "id": p["id"], "geometry": json.loads(g), "properties": p}
                for p, g in rows[:MAX_GRIDS]]
    body = from_wgs84({"type": "FeatureCollection", "features": features}, crs)
    body.update({"level": level, "numberReturned": len(features), "truncated": len(rows) > MAX_GRIDS,
                 "kpis": list(KPIS)})
    return current_app.json.dumps(body, separators=(",", ":")).encode(), valid_for


def render_tile(level: str, z: int, x: int, y: int, crs: str) -> tuple[bytes, float | None]:
    from tiles.vector_tiles import _inverse_area, _lonlat_to_tile, encode_layer

    bounds = sql.tile_bounds(z, x, y)
    if crs == "gcj02":
        lon, lat = _inverse_area(z, x, y, sql.BUFFER / sql.EXTENT)
        box = (float(lon.min()) - 1e-4, float(lat.min()) - 1e-4, float(lon.max()) + 1e-4, float(lat.max()) + 1e-4)
    else:
        w, s, e, n = sql.tile_lonlat_bounds(z, x, y)
        pad = (e - w) * sql.BUFFER / sql.EXTENT
        box = (w - pad, s - pad, e + pad, n + pad)
    tol = (bounds[2] - bounds[0]) / sql.EXTENT / 2 / 111_320
    rows, valid_for = grid_kpis(level, box, f"ST_AsBinary(ST_Simplify(t.geom, {tol!r}, true))")
    features = []
    if rows:
        geoms = shapely.from_wkb([bytes(g) for _, g in rows])
        if crs == "gcj02":
            geoms = transform_geometry(geoms, "wgs84", "gcj02")
        geoms = shapely.transform(geoms, lambda c: np.column_stack(_lonlat_to_tile(c[:, 0], c[:, 1], bounds)))
        lo, hi = -sql.BUFFER, sql.EXTENT + sql.BUFFER
        geoms = shapely.clip_by_rect(geoms, lo, lo, hi, hi)
        for (props, _), g in zip(rows, geoms, strict=True):
            if g is not None and not g.is_empty:
                features.append({"geometry": g, "id": props["id"],
                                 "properties": {k: v for k, v in props.items() if v is not None and k != "id"}})
    return (encode_layer(MVT_LAYER, features) if features else b""), valid_for


@blp.route("/grids/<int:z>/<int:x>/<int:y>.mvt")
class GridAggregateTile(MethodView):
    @blp.arguments(AggregateFilterArgs, location="query")
    def get(self, args: dict[str, Any], z: int, x: int, y: int) -> Response:
        """Per-grid KPIs as a Mapbox Vector Tile (layer `grid_aggregates`); 204 when empty"""
        layer_for("grids")
        layer_for("customers")
        if not (z <= 22 and x < 1 << z and y < 1 << z):
            raise NotFound("瓦片超出范围", code="TILE_OUT_OF_RANGE")
        crs = request_crs(("wgs84", "gcj02"))
        data, status = cached("aggmvt", {**args, "crs": crs}, lambda: render_tile(args["level"], z, x, y, crs),
                              f"{z}/{x}/{y}")
        return bytes_response(data, MVT_TYPE, status)
