"""Every SQL statement of the feature and tile server, in one reviewable module.

Rules kept here (see ../shared/notes/postgis-rls.md):
- identifiers come from the layer registry and are quoted with `sql.Identifier`; every value is a placeholder;
- the spatial filter transforms the tile envelope, never the column (`t.geom && ST_Transform(ST_TileEnvelope(...),
  4326)`), with integer SRIDs, so the GiST index serves it - also under row-level security (the bbox operators are
  LEAKPROOF since migration 0002); `tests/tiles/test_tiles.py` checks the plan as the app role;
- statements run on the request's session, so the caller's data scope (RLS) applies to each of them.

Raw-point tiles of a layer with a `point_table` (customers: `customer_points`, migration 0021) read that table instead
of the wide one: one narrow row per located customer - id, org_id/owner_key (the RLS columns, same policy), the point
in EPSG:3857 metres (`mx`, `my`), its z18 tile cell (`cx`, `cy`, btree), the tile fields as text - stored in cell
order and kept exact by statement triggers on customers. The tile's cells are read as `cx = ANY(...) AND cy BETWEEN`
(leakproof integer comparisons, so the btree serves them under RLS; `tests/tiles/test_customer_points.py` checks the
plan), and tile coordinates are ST_AsMVTGeom's own affine map and half-to-even rounding as float8 arithmetic
(`mvt_transform`), so ids, properties and integer coordinates equal the ST_AsMVTGeom rendering. Clusters (also the
byte-budget fallback), the point count at z >= 17 and the GCJ-02 path (which needs WGS84 positions) still read the
layer's table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from psycopg import sql
from sqlalchemy.orm import Session

from tiles.layers import LAYERS, Field, LayerSpec

EXTENT = 4096  # MVT coordinate extent
BUFFER = 64  # MVT buffer in extent units (features this close to the edge are kept, so symbols are not cut)
MERCATOR_HALF = 20037508.342789244


def run(session: Session, query: sql.Composable | str, params: dict[str, Any] | None = None, *,
        binary: bool = False) -> list[tuple[Any, ...]]:
    """Execute on the session's connection (in its transaction, hence under the caller's RLS scope). `binary`: results
    in binary format (a tile's bytea then travels as itself, not as twice as many hex digits to decode)."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(query, params or {}, binary=binary)
        return cur.fetchall()


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """WebMercatorQuad tile (z, x, y) as minx, miny, maxx, maxy in EPSG:3857 metres."""
    size = 2 * MERCATOR_HALF / (1 << z)
    minx = -MERCATOR_HALF + x * size
    maxy = MERCATOR_HALF - y * size
    return minx, maxy - size, minx + size, maxy


def tile_lonlat_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile as west, south, east, north in degrees."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    return (*merc_to_lonlat(minx, miny), *merc_to_lonlat(maxx, maxy))


def merc_to_lonlat(x: float, y: float) -> tuple[float, float]:
    return math.degrees(x / 6378137.0), math.degrees(2 * math.atan(math.exp(y / 6378137.0)) - math.pi / 2)


# --- fragments ------------------------------------------------------------------------------------------------------

def table(spec: LayerSpec) -> sql.Composable:
    return sql.SQL("{} AS t").format(sql.Identifier(spec.table))


def column(name: str) -> sql.Composable:
    return sql.SQL("t.{}").format(sql.Identifier(name))


def geom(spec: LayerSpec) -> sql.Composable:
    return column(spec.geom_column)


def field_value(f: Field, *, for_tile: bool = False) -> sql.Composable:
    """A field in a select list or comparison: enums as text; in tiles timestamps as ISO text too."""
    if f.as_text or (for_tile and f.type in ("datetime", "date")):
        return sql.SQL("{}::text").format(column(f.name))
    return column(f.name)


def select_list(fields: Iterable[Field], *, for_tile: bool = False) -> sql.Composable:
    items = [sql.SQL("{} AS {}").format(field_value(f, for_tile=for_tile), sql.Identifier(f.name)) for f in fields]
    return sql.SQL(", ").join(items) if items else sql.SQL("")


@dataclass
class Where:
    """AND-ed conditions with their parameters; the layer's own static condition always comes first."""

    spec: LayerSpec
    parts: list[sql.Composable] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.spec.where:
            self.parts.append(sql.SQL("(" + self.spec.where + ")"))

    def add(self, condition: sql.Composable, **params: Any) -> Where:
        self.parts.append(condition)
        self.params.update(params)
        return self

    def add_static(self, condition: str) -> Where:
        """A condition from the registry (never from a request)."""
        if condition:
            self.parts.append(sql.SQL("(" + condition + ")"))
        return self

    def sql(self) -> sql.Composable:
        return sql.SQL(" AND ").join(self.parts) if self.parts else sql.SQL("TRUE")


def bbox_condition(spec: LayerSpec, where: Where, box: Sequence[float]) -> None:
    """Features intersecting a WGS84 lon/lat box."""
    # `&&` (LEAKPROOF since migration 0002) is what lets the GiST index serve the box under row-level security:
    # ST_Intersects is not leakproof, so its implicit index condition is not used (measured: seq scan, 1.4 s on
    # 2 million customers, vs an index scan)
    where.add(sql.SQL("{g} && ST_MakeEnvelope(%(bx0)s, %(by0)s, %(bx1)s, %(by1)s, 4326) AND "
                      "ST_Intersects({g}, ST_MakeEnvelope(%(bx0)s, %(by0)s, %(bx1)s, %(by1)s, 4326))")
              .format(g=geom(spec)), bx0=box[0], by0=box[1], bx1=box[2], by1=box[3])


# --- vector tiles ---------------------------------------------------------------------------------------------------

_ENVELOPE = sql.SQL("ST_TileEnvelope(%(z)s, %(x)s, %(y)s)")
_SELECT_BOX = sql.SQL("ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s), 4326)")
_EXACT_BOX = sql.SQL("ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326)")


def _tile_where(spec: LayerSpec, z: int, box: sql.Composable) -> sql.Composable:
    where = Where(spec).add_static(spec.zoom_filter(z))
    where.parts.insert(0, sql.SQL("{} && {}").format(geom(spec), box))
    return where.sql()


def _raw_cte(spec: LayerSpec, z: int, x: int, y: int,
             guard: sql.Composable) -> tuple[sql.Composable, dict[str, Any]]:
    """The CTE `raw` of a raw-feature tile (mvt_geom, mvt_id, tile fields) and its extra parameters."""
    if spec.point_table is not None:
        return _point_table_raw_cte(spec, z, x, y, guard)
    props = select_list(spec.tile_fields(z), for_tile=True)
    # points: Web Mercator by arithmetic (cheaper than ST_Transform per point, same result); polygons: ST_Transform
    shape = (sql.SQL("ST_SetSRID(ST_MakePoint({}, {}), 3857)").format(_merc_x(geom(spec)), _merc_y(geom(spec)))
             if spec.is_point else sql.SQL("ST_Transform({}, 3857)").format(geom(spec)))
    return sql.SQL(
        "raw AS (SELECT ST_AsMVTGeom({shape}, {env}, {extent}, {buffer}, true) AS mvt_geom, "
        "{id} AS mvt_id{comma}{props} FROM {table} WHERE {guard}{where})"
    ).format(shape=shape, env=_ENVELOPE, extent=sql.Literal(EXTENT), buffer=sql.Literal(BUFFER),
             id=column(spec.id_column), comma=sql.SQL(", " if spec.tile_fields(z) else ""), props=props,
             table=table(spec), guard=guard, where=_tile_where(spec, z, _SELECT_BOX)), {}


def tile_envelope(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """ST_TileEnvelope(z, x, y) as minx, miny, maxx, maxy - by its own C arithmetic, so bit for bit the same."""
    size = (MERCATOR_HALF - -MERCATOR_HALF) / (1 << z)
    return (-MERCATOR_HALF + size * x, MERCATOR_HALF - size * (y + 1), -MERCATOR_HALF + size * (x + 1),
            MERCATOR_HALF - size * y)


def mvt_transform(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """ST_AsMVTGeom's affine map onto tile z/x/y (fx, xoff, fy, yoff: tile x = fx * mx + xoff), same operations."""
    minx, miny, maxx, maxy = tile_envelope(z, x, y)
    fx, fy = EXTENT / (maxx - minx), -(EXTENT / (maxy - miny))
    return fx, -minx * fx, fy, -maxy * fy


def _point_table_raw_cte(spec: LayerSpec, z: int, x: int, y: int,
                         guard: sql.Composable) -> tuple[sql.Composable, dict[str, Any]]:
    """`raw` from the layer's narrow point table: the cells around the tile by btree, tile coordinates by arithmetic.

    ST_AsMVTGeom on a point applies the affine map, rounds half to even (`round(float8)` is rint as well) and keeps
    the point if both rounded coordinates lie in [-BUFFER, EXTENT + BUFFER]; the same expressions here give the
    same integers and the same kept points (every point whose rounded position is in the buffered tile; the
    `&&`-filtered path can miss a few in the outer half unit at z12-13, where its float box is tighter)."""
    fx, xoff, fy, yoff = mvt_transform(z, x, y)
    minx, miny, maxx, maxy = tile_envelope(z, x, y)
    cell = 2 * MERCATOR_HALF / (1 << spec.POINT_CELL_ZOOM)
    pad = (BUFFER + 1) * (maxx - minx) / EXTENT  # a unit more than the buffer: the exact test is the rounded one

    def span(lo: float, hi: float) -> tuple[int, int]:
        return math.floor((lo - pad + MERCATOR_HALF) / cell), math.floor((hi + pad + MERCATOR_HALF) / cell)

    (cx0, cx1), (cy0, cy1) = span(minx, maxx), span(miny, maxy)
    params = {"pfx": fx, "pxoff": xoff, "pfy": fy, "pyoff": yoff, "pcx": list(range(cx0, cx1 + 1)),
              "pcx0": cx0, "pcx1": cx1, "pcy0": cy0, "pcy1": cy1}
    # a tile of z >= 12 spans at most 66 columns (one btree range each); zoomed out further, one range over them all
    cells = sql.SQL("t.cx = ANY(%(pcx)s::integer[])" if cx1 - cx0 < 128 else "t.cx BETWEEN %(pcx0)s AND %(pcx1)s")
    px, py = sql.SQL("round(%(pfx)s * t.mx + %(pxoff)s)"), sql.SQL("round(%(pfy)s * t.my + %(pyoff)s)")
    lo, hi = sql.Literal(float(-BUFFER)), sql.Literal(float(EXTENT + BUFFER))
    fields = spec.tile_fields(z)
    query = sql.SQL(
        "raw AS (SELECT ST_MakePoint({px}, {py}) AS mvt_geom, {id} AS mvt_id{comma}{props} FROM {table} AS t "
        "WHERE {guard}{cells} AND t.cy BETWEEN %(pcy0)s AND %(pcy1)s AND {px} BETWEEN {lo} AND {hi} "
        "AND {py} BETWEEN {lo} AND {hi})"
    ).format(px=px, py=py, id=column(spec.id_column), comma=sql.SQL(", " if fields else ""),
             props=select_list(fields, for_tile=True), table=sql.Identifier(spec.point_table), guard=guard,
             cells=cells, lo=lo, hi=hi)
    return query, params


def _cluster_ctes(spec: LayerSpec, z: int, guard: sql.Composable) -> sql.Composable:
    assert spec.clustering is not None
    counters = spec.clustering.counters
    flags = sql.SQL("").join(sql.SQL(", ({}) AS {}").format(sql.SQL(cond), sql.Identifier(f"c_{name}"))
                             for name, cond in counters)
    sums = sql.SQL("").join(sql.SQL(", count(*) FILTER (WHERE {}) AS {}").format(
        sql.Identifier(f"c_{name}"), sql.Identifier(name)) for name, _ in counters)
    names = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(name)) for name, _ in counters)
    return sql.SQL(
        "pts AS (SELECT {mx} AS x, {my} AS y{flags} FROM {table} WHERE {guard}{where}), "
        "cells AS (SELECT count(*) AS count{sums}, avg(x) AS mx, avg(y) AS my FROM pts "
        "GROUP BY floor((x - %(cx0)s) / %(cell)s), floor((y - %(cy0)s) / %(cell)s)), "
        "clusters AS (SELECT ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(mx, my), 3857), {env}, {extent}, 0, true) "
        "AS mvt_geom, count{names} FROM cells)"
    ).format(mx=_merc_x(geom(spec)), my=_merc_y(geom(spec)), flags=flags, table=table(spec), guard=guard,
             where=_tile_where(spec, z, _EXACT_BOX), sums=sums, env=_ENVELOPE, extent=sql.Literal(EXTENT),
             names=names)


def _merc_x(point: sql.Composable) -> sql.Composable:
    """EPSG:3857 x of a WGS84 point, as arithmetic: a third cheaper than ST_Transform over 700,000 points."""
    return sql.SQL("(radians(ST_X({})) * 6378137.0)").format(point)


def _merc_y(point: sql.Composable) -> sql.Composable:
    return sql.SQL("(ln(tan(pi() / 4 + radians(ST_Y({})) / 2)) * 6378137.0)").format(point)


def _mvt(cte: str, layer: str, with_id: bool) -> sql.Composable:
    # rows whose geometry ST_AsMVTGeom clipped away (NULL) are skipped by ST_AsMVT itself; filtering them out here
    # would make PostgreSQL evaluate ST_AsMVTGeom twice per row
    return sql.SQL("coalesce((SELECT ST_AsMVT(q, {layer}, {extent}, 'mvt_geom'{fid}) FROM {cte} AS q), ''::bytea)"
                   ).format(
        layer=sql.Literal(layer), extent=sql.Literal(EXTENT), cte=sql.Identifier(cte),
        fid=sql.SQL(", 'mvt_id'" if with_id else ""))


def mvt_query(spec: LayerSpec, z: int, x: int, y: int, *,
              force_cluster: bool = False) -> tuple[sql.Composable, dict[str, Any]]:
    """One statement returning (tile bytes, clustered?) for tile z/x/y of a layer.

    Points are clustered below the layer's `below_zoom`; above it the statement first counts the tile's points (up
    to max_points + 1) and clusters instead of sending raw points when there are more - within the same statement.
    """
    params: dict[str, Any] = {"z": z, "x": x, "y": y, "margin": BUFFER / EXTENT}
    if spec.clustering is not None:
        minx, miny, maxx, _ = tile_bounds(z, x, y)
        params.update(cx0=minx, cy0=miny, cell=(maxx - minx) / spec.clustering.cells)
    if spec.clustering is None:
        raw, raw_params = _raw_cte(spec, z, x, y, sql.SQL(""))
        params.update(raw_params)
        query = sql.SQL("WITH {raw} SELECT {mvt}, false").format(raw=raw, mvt=_mvt("raw", spec.name, True))
    elif (spec.clustered_at(z) and not force_cluster and spec.clustering.cell_table
          and z <= spec.clustering.CELL_ZOOM):
        query, cell_params = _cell_cluster_query(spec, z, x, y)
        params.update(cell_params)
    elif spec.clustered_at(z) or force_cluster:
        query = sql.SQL("WITH {ctes} SELECT {mvt}, true").format(ctes=_cluster_ctes(spec, z, sql.SQL("")),
                                                               mvt=_mvt("clusters", spec.name, False))
    else:
        params.update(cap=spec.clustering.max_points, cap1=spec.clustering.max_points + 1)
        c = spec.clustering
        if c.cell_table and z <= c.CELL_ZOOM + 5:
            # the tile is a block of whole z11 cells: its point count (in the caller's scope) is a sum over a few
            # pre-aggregated rows instead of a scan of up to max_points + 1 points
            per = c.cells >> (z - c.CELL_ZOOM)
            params.update(hx0=x * per, hx1=x * per + per - 1, hy0=((1 << z) - 1 - y) * per,
                          hy1=((1 << z) - 1 - y) * per + per - 1)
            hits = sql.SQL("hits AS MATERIALIZED (SELECT coalesce(sum(t.n), 0) AS n FROM {} AS t WHERE t.ix "
                           "BETWEEN %(hx0)s AND %(hx1)s AND t.iy BETWEEN %(hy0)s AND %(hy1)s)"
                           ).format(sql.Identifier(c.cell_table))
        else:
            hits = sql.SQL("hits AS MATERIALIZED (SELECT count(*) AS n FROM (SELECT 1 FROM {table} WHERE {where} "
                           "LIMIT %(cap1)s) s)").format(table=table(spec), where=_tile_where(spec, z, _EXACT_BOX))
        raw, raw_params = _raw_cte(spec, z, x, y, sql.SQL("(SELECT n FROM hits) <= %(cap)s AND "))
        params.update(raw_params)
        query = sql.SQL("WITH {hits}, {raw}, {ctes} SELECT {raw_mvt} || {cluster_mvt}, "
                        "(SELECT n FROM hits) > %(cap)s").format(
            hits=hits,
            raw=raw,
            ctes=_cluster_ctes(spec, z, sql.SQL("(SELECT n FROM hits) > %(cap)s AND ")),
            raw_mvt=_mvt("raw", spec.name, True), cluster_mvt=_mvt("clusters", spec.name, False))
    return query, params


def _cell_cluster_query(spec: LayerSpec, z: int, x: int, y: int) -> tuple[sql.Composable, dict[str, Any]]:
    """Clusters of a low-zoom tile summed from the layer's pre-aggregated z11 cell table (under the same RLS): the
    tile's 32 x 32 cells are unions of z11 cells, so counts and mean positions equal clustering the points."""
    c = spec.clustering
    assert c is not None and c.cell_table is not None
    shift = c.CELL_ZOOM - z
    per = c.cells << shift  # z11 cells per tile side
    ix0, iy0 = x * per, ((1 << z) - 1 - y) * per  # iy counts from the south
    counters = sql.SQL("").join(sql.SQL(", sum(t.{})::bigint AS {}").format(sql.Identifier(col), sql.Identifier(name))
                                for name, col in c.cell_counters)
    names = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(name)) for name, _ in c.cell_counters)
    query = sql.SQL(
        "WITH cells AS (SELECT sum(t.n)::bigint AS count{counters}, sum(t.sx) / sum(t.n) AS mx, "
        "sum(t.sy) / sum(t.n) AS my FROM {table} AS t WHERE t.ix BETWEEN %(ix0)s AND %(ix1)s "
        "AND t.iy BETWEEN %(iy0)s AND %(iy1)s GROUP BY t.ix >> %(shift)s, t.iy >> %(shift)s HAVING sum(t.n) > 0), "
        "clusters AS (SELECT ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(mx, my), 3857), {env}, {extent}, 0, true) "
        "AS mvt_geom, count{names} FROM cells) SELECT {mvt}, true"
    ).format(counters=counters, table=sql.Identifier(c.cell_table), env=_ENVELOPE, extent=sql.Literal(EXTENT),
             names=names, mvt=_mvt("clusters", spec.name, False))
    return query, {"ix0": ix0, "ix1": ix0 + per - 1, "iy0": iy0, "iy1": iy0 + per - 1, "shift": shift}


def tile_rows_query(spec: LayerSpec, z: int, box: Sequence[float], *, simplify: float,
                    limit: int | None) -> tuple[sql.Composable, dict[str, Any]]:
    """Raw features for a tile built in Python (the shifted GCJ-02 path): id, tile fields, WKB in WGS84."""
    fields = spec.tile_fields(z)
    shape = geom(spec) if spec.is_point else sql.SQL("ST_Simplify({}, %(tol)s, true)").format(geom(spec))
    where = Where(spec).add_static(spec.zoom_filter(z))
    where.parts.insert(0, sql.SQL("{} && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)").format(geom(spec)))
    query = sql.SQL("SELECT {id}{comma}{props}, ST_AsBinary({shape}) FROM {table} WHERE {where}{limit}").format(
        id=column(spec.id_column), comma=sql.SQL(", " if fields else ""), props=select_list(fields, for_tile=True),
        shape=shape, table=table(spec), where=where.sql(),
        limit=sql.SQL(" LIMIT %(limit)s" if limit is not None else ""))
    params = {"w": box[0], "s": box[1], "e": box[2], "n": box[3], "tol": simplify, "limit": limit}
    return query, params


def tile_clusters_query(spec: LayerSpec, z: int, area_wkb: bytes, origin: tuple[float, float],
                        cell: float) -> tuple[sql.Composable, dict[str, Any]]:
    """Clusters of the points inside a WGS84 polygon, as rows (count, counters..., mean lon, mean lat)."""
    assert spec.clustering is not None
    counters = spec.clustering.counters
    sums = sql.SQL("").join(sql.SQL(", count(*) FILTER (WHERE {})").format(sql.SQL(cond)) for _, cond in counters)
    where = Where(spec).add_static(spec.zoom_filter(z))
    where.parts.insert(0, sql.SQL("ST_Intersects({}, ST_GeomFromWKB(%(area)s, 4326))").format(geom(spec)))
    query = sql.SQL("SELECT count(*){sums}, avg(ST_X({g})), avg(ST_Y({g})) FROM {table} WHERE {where} "
                    "GROUP BY floor(({mx} - %(cx0)s) / %(cell)s), floor(({my} - %(cy0)s) / %(cell)s)"
                    ).format(sums=sums, g=geom(spec), table=table(spec), where=where.sql(), mx=_merc_x(geom(spec)),
                             my=_merc_y(geom(spec)))
    return query, {"area": area_wkb, "cx0": origin[0], "cy0": origin[1], "cell": cell}


# --- features -------------------------------------------------------------------------------------------------------

def geometry_out(spec: LayerSpec, output: str) -> sql.Composable:
    """The geometry as GeoJSON text in an output CRS: 'lonlat' (CRS84, also the input of GCJ-02/BD-09 shifts),
    'latlon' (EPSG:4326 axis order) or 'mercator' (EPSG:3857)."""
    g = geom(spec)
    if output == "latlon":
        return sql.SQL("ST_AsGeoJSON(ST_FlipCoordinates({}), 7)").format(g)
    if output == "mercator":
        return sql.SQL("ST_AsGeoJSON(ST_Transform({}, 3857), 2)").format(g)
    return sql.SQL("ST_AsGeoJSON({}, 7)").format(g)


def items_query(spec: LayerSpec, where: Where, fields: Sequence[Field], output: str,
                order: Sequence[tuple[str, bool]], limit: int, offset: int) -> tuple[sql.Composable, dict[str, Any]]:
    """A page of features: id, the chosen fields, GeoJSON geometry."""
    keys = [*order, (spec.id_column, True)] if spec.id_column not in {name for name, _ in order} else list(order)
    order_by = sql.SQL(", ").join(sql.SQL("{} {}").format(column(name), sql.SQL("ASC" if asc else "DESC"))
                                  for name, asc in keys)
    query = sql.SQL("SELECT {id}{comma}{props}, {geometry} FROM {table} WHERE {where} ORDER BY {order} "
                    "LIMIT %(limit)s OFFSET %(offset)s").format(
        id=column(spec.id_column), comma=sql.SQL(", " if fields else ""), props=select_list(fields),
        geometry=geometry_out(spec, output), table=table(spec), where=where.sql(), order=order_by)
    return query, {**where.params, "limit": limit, "offset": offset}


def item_by_id_query(spec: LayerSpec, fields: Sequence[Field], output: str) -> str:
    """One feature by id (parameter `fid`), rendered once per (layer, fields, output) and process: composing the
    statement with psycopg.sql cost ~15 % of a by-id request's CPU (profiled, bench/tiles_bench.py "item by id"),
    and a plain string also lets psycopg's query cache and server-side prepared statements serve it. The cache is
    bounded: `properties` lists come from requests."""
    return _item_by_id_text(spec.name, tuple(f.name for f in fields), output)


@lru_cache(maxsize=256)
def _item_by_id_text(layer: str, field_names: tuple[str, ...], output: str) -> str:
    spec = LAYERS[layer]
    fields = [spec.field(name) for name in field_names]
    where = Where(spec).add(sql.SQL("{} = %(fid)s").format(column(spec.id_column)))
    query = sql.SQL("SELECT {id}{comma}{props}, {geometry} FROM {table} WHERE {where}").format(
        id=column(spec.id_column), comma=sql.SQL(", " if fields else ""), props=select_list(fields),
        geometry=geometry_out(spec, output), table=table(spec), where=where.sql())
    return query.as_string(None)


def count_query(spec: LayerSpec, where: Where) -> tuple[sql.Composable, dict[str, Any]]:
    return sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table(spec), where.sql()), dict(where.params)


def estimate_query(spec: LayerSpec, where: Where) -> tuple[sql.Composable, dict[str, Any]]:
    """The planner's row estimate for a filter (EXPLAIN, nothing is read)."""
    return (sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {}").format(table(spec), where.sql()),
            dict(where.params))


def stats_query(spec: LayerSpec) -> tuple[sql.Composable, dict[str, Any]]:
    """Extent and time span of the rows the caller can see."""
    where = Where(spec)
    query = sql.SQL("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), tmin, tmax, n FROM "
                    "(SELECT ST_Extent({g}) AS e, min({dt}) AS tmin, max({dt}) AS tmax, count(*) AS n "
                    "FROM {table} WHERE {where}) s").format(
        g=geom(spec), dt=column(spec.datetime_column), table=table(spec), where=where.sql())
    return query, {}


def fingerprint_query(spec: LayerSpec) -> tuple[sql.Composable, dict[str, Any]]:
    """The layer's change detector over the rows the caller can see (see tiles.cache)."""
    return sql.SQL("SELECT {} FROM {} WHERE {}").format(sql.SQL(spec.fingerprint), table(spec),
                                                         Where(spec).sql()), {}
