"""Grid rating (网格评级): a 0-100 score from weighted dimensions, mapped to grades A-D.

Each dimension is a measured value per grid (households, POI density, distance to the nearest outlet,
area ...). Values are normalised by percentile rank among grids of the same level (a community is
compared with communities), inverted where lower is better, weighted, and summed. Missing values
count as the worst rank. All grids are rated by one set-based SQL statement (a job); one grid can be
rated on demand with the same statement restricted to its level, so both give the same number.
Dimensions register in DIMENSIONS; the customer ones (count, value = deposit + loan balance, formal share,
coverage of households) count active customers placed in the grid or its descendants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, String, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from geo_core.db import Base, TimestampMixin
from geo_core.errors import NotFound, ValidationFailed


@dataclass(frozen=True)
class Dimension:
    label: str
    sql: str  # value per grid `g` (joined with `poi` counts and `near` outlet distance)
    higher_is_better: bool
    unit: str


DIMENSIONS: dict[str, Dimension] = {
    "households": Dimension("户数（估算）", "g.households_estimate::float", True, "户"),
    "poi_count": Dimension("经济单元数", "coalesce(poi.n, 0)::float", True, "个"),
    "poi_density": Dimension("经济单元密度", "coalesce(poi.n, 0) / nullif(g.area_m2 / 1e6, 0)", True, "个/km²"),
    "outlet_distance_km": Dimension("距最近网点", "near.km", False, "km"),
    "area_km2": Dimension("网格面积（越小越易精耕）", "g.area_m2 / 1e6", False, "km²"),
    # customers placed in the grid or its descendants (active archives), from `cust`
    "customers": Dimension("客户数", "coalesce(cust.n, 0)::float", True, "户"),
    "customer_value": Dimension("客户价值（存款+贷款）", "coalesce(cust.value, 0) / 1e4", True, "万元"),
    "formal_share": Dimension("正式客户占比", "cust.formal::float / nullif(cust.n, 0)", True, "比例"),
    "customer_coverage": Dimension("客户覆盖率（客户/户数）",
                                   "coalesce(cust.n, 0)::float / nullif(g.households_estimate, 0)", True, "比例"),
}
CUSTOMER_DIMENSIONS = ("customers", "customer_value", "formal_share", "customer_coverage")
GRADES = ("A", "B", "C")


class RatingScheme(TimestampMixin, Base):
    __tablename__ = "grid_rating_schemes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")
    dimensions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    grade_thresholds: Mapped[dict[str, float]] = mapped_column(JSONB)


class GridRating(Base):
    __tablename__ = "grid_ratings"

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"))
    scheme_id: Mapped[int] = mapped_column(ForeignKey("grid_rating_schemes.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(1))
    components: Mapped[dict[str, Any]] = mapped_column(JSONB)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def validate_scheme(dimensions: list[dict[str, Any]], thresholds: dict[str, float]) -> None:
    errors: dict[str, list[str]] = {}
    keys = [d.get("key") for d in dimensions]
    unknown = [k for k in keys if k not in DIMENSIONS]
    if unknown:
        errors["dimensions"] = [f"未知维度：{', '.join(map(str, unknown))}；可用：{', '.join(DIMENSIONS)}"]
    elif len(set(keys)) != len(keys):
        errors["dimensions"] = ["维度不能重复"]
    elif not dimensions or any(not isinstance(d.get("weight"), int | float) or d["weight"] <= 0 for d in dimensions):
        errors["dimensions"] = ["每个维度须有正数权重"]
    try:
        a, b, c = (float(thresholds[g]) for g in GRADES)
        if not 100 >= a > b > c > 0:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        errors["grade_thresholds"] = ["须为 {A, B, C} 三个分数线，且 100 ≥ A > B > C > 0"]
    if errors:
        raise ValidationFailed("评级方案无效", errors=errors)


def get_scheme(session: Session, code: str | None = None) -> RatingScheme:
    stmt = select(RatingScheme).where(RatingScheme.is_active)
    stmt = stmt.where(RatingScheme.code == code) if code else stmt.order_by(RatingScheme.id)
    scheme = session.scalar(stmt.limit(1))
    if scheme is None:
        raise NotFound("评级方案不存在或未启用", code="RATING_SCHEME_NOT_FOUND")
    return scheme


def _rating_sql(scheme: RatingScheme, only_level_of: int | None) -> str:
    dims = [(d["key"], float(d["weight"])) for d in scheme.dimensions]
    total = sum(w for _, w in dims)
    values = ",\n".join(f"{DIMENSIONS[k].sql} AS v_{k}" for k, _ in dims)
    ranks = ",\n".join(
        f"CASE WHEN v_{k} IS NULL THEN 0 ELSE "
        f"{'' if DIMENSIONS[k].higher_is_better else '1 - '}"
        f"percent_rank() OVER (PARTITION BY level, (v_{k} IS NULL) ORDER BY v_{k}) END AS r_{k}"
        for k, _ in dims
    )
    score = " + ".join(f"{w / total} * r_{k}" for k, w in dims)
    components = ", ".join(f"'{k}', jsonb_build_object('value', round(v_{k}::numeric, 3), "
                           f"'rank', round(r_{k}::numeric, 4), 'weight', {w})" for k, w in dims)
    level_filter = "AND g.level = (SELECT level FROM grids WHERE id = :only)" if only_level_of else ""
    poi_needed = any(k.startswith("poi") for k, _ in dims)
    near_needed = any(k == "outlet_distance_km" for k, _ in dims)
    # POIs sit in their finest grid; a grid's count includes its descendants' (ancestor prefixes of the
    # path). For one grid only the prefix at that grid's depth is needed.
    depths = ("(SELECT nlevel(path) AS k FROM grids WHERE id = :only)" if only_level_of
              else "(SELECT generate_series(1, nlevel(g.path)) AS k)")
    poi_cte = (f"poi AS (SELECT subpath(g.path, 0, d.k) AS anc, count(*) AS n FROM pois p JOIN grids g "
               f"ON g.id = p.grid_id CROSS JOIN LATERAL {depths} d WHERE nlevel(g.path) >= d.k GROUP BY 1),"
               if poi_needed else "poi AS (SELECT NULL::ltree AS anc, 0::bigint AS n WHERE false),")
    cust_needed = any(k in CUSTOMER_DIMENSIONS for k, _ in dims)
    cust_cte = (f"cust AS (SELECT subpath(g.path, 0, d.k) AS anc, count(*) AS n, "
                f"sum(coalesce(c.deposit_balance, 0) + coalesce(c.loan_balance, 0)) AS value, "
                f"count(*) FILTER (WHERE c.category = 'formal') AS formal FROM customers c JOIN grids g "
                f"ON g.id = c.grid_id CROSS JOIN LATERAL {depths} d "
                f"WHERE c.status = 'active' AND nlevel(g.path) >= d.k GROUP BY 1),"
                if cust_needed else
                "cust AS (SELECT NULL::ltree AS anc, 0::bigint AS n, 0::numeric AS value, 0::bigint AS formal "
                "WHERE false),")
    near_join = ("LEFT JOIN LATERAL (SELECT ST_Distance(o.location::geography, ST_PointOnSurface(g.geom)::geography)"
                 " / 1000 AS km FROM orgs o WHERE o.level = 'outlet' AND o.location IS NOT NULL"
                 " ORDER BY o.location <-> ST_PointOnSurface(g.geom) LIMIT 1) near ON true"
                 if near_needed else "LEFT JOIN LATERAL (SELECT NULL::float AS km) near ON true")
    return f"""
        WITH {poi_cte}
        {cust_cte}
        base AS (
            SELECT g.id, g.level, {values}
            FROM grids g LEFT JOIN poi ON poi.anc = g.path LEFT JOIN cust ON cust.anc = g.path {near_join}
            WHERE g.kind = 'physical' AND g.status = 'active' AND g.geom IS NOT NULL {level_filter}
        ),
        ranked AS (SELECT base.*, {ranks} FROM base),
        scored AS (SELECT id, 100 * ({score}) AS score, jsonb_build_object({components}) AS components
                   FROM ranked)
        INSERT INTO grid_ratings (grid_id, scheme_id, score, grade, components)
        SELECT id, :scheme, round(score::numeric, 2),
               CASE WHEN score >= :a THEN 'A' WHEN score >= :b THEN 'B' WHEN score >= :c THEN 'C' ELSE 'D' END,
               components
        FROM scored {"WHERE id = :only" if only_level_of else ""}
    """


def rate_grids(session: Session, scheme: RatingScheme, *, grid_id: int | None = None) -> int:
    """Rate every active physical grid (or just `grid_id`, ranked among its level). Returns rows written."""
    params: dict[str, Any] = {"scheme": scheme.id, **{g.lower(): float(scheme.grade_thresholds[g]) for g in GRADES}}
    if grid_id is not None:
        params["only"] = grid_id
    if grid_id is None:
        session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    result = session.execute(text(_rating_sql(scheme, grid_id)), params)
    if grid_id is None:
        session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return result.rowcount or 0


def latest_rating(session: Session, grid_id: int) -> GridRating | None:
    return session.scalar(
        select(GridRating).where(GridRating.grid_id == grid_id).order_by(GridRating.computed_at.desc(),
                                                                         GridRating.id.desc()).limit(1)
    )


def describe(rating: GridRating, scheme: RatingScheme | None) -> dict[str, Any]:
    comps = {
        key: {**value, "label": DIMENSIONS[key].label, "unit": DIMENSIONS[key].unit,
              "higher_is_better": DIMENSIONS[key].higher_is_better}
        for key, value in (rating.components or {}).items() if key in DIMENSIONS
    }
    return {"grid_id": rating.grid_id, "score": rating.score, "grade": rating.grade, "components": comps,
            "scheme": scheme.code if scheme else None, "computed_at": rating.computed_at}


def scheme_dict(scheme: RatingScheme) -> dict[str, Any]:
    return {"id": scheme.id, "code": scheme.code, "name": scheme.name, "is_active": scheme.is_active,
            "dimensions": scheme.dimensions, "grade_thresholds": scheme.grade_thresholds,
            "available_dimensions": {k: {"label": d.label, "unit": d.unit, "higher_is_better": d.higher_is_better}
                                     for k, d in DIMENSIONS.items()}}

