"""Grid use cases: create, edit, delete, split, merge, rebuild; topology rules; H3 cover; point lookup.

Every operation is one transaction owned by the caller; the database triggers audit each row change.
Topology facts that involve grids outside the caller's scope (the parent, siblings) come from the
SECURITY DEFINER function gm_grid_topology, which reveals only codes, names and overlap shapes.
"""

from __future__ import annotations

import json
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import Select, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.grids import spatial
from geo_core.grids.models import LEVEL_ORDER, Grid, GridKind, GridLevel, GridMember, GridStatus, grid_h3
from geo_core.orgs.models import Org
from geo_core.paging import Page, key_taken, like_pattern, paginate, valid_id
from geo_core.scope import Principal

TOLERANCE_M2 = 10.0  # overlaps / overhangs smaller than this are digitising noise
LEVEL_LABELS = {"city": "市", "district": "区县", "township": "街道/乡镇", "community": "社区/村",
                "building_group": "楼盘/组"}
EDITABLE = ("code", "name", "business_line", "org_id", "parent_id", "division_code", "households_estimate",
            "status")


def get_grid(session: Session, grid_id: int) -> Grid:
    grid = session.get(Grid, grid_id) if valid_id(grid_id) else None
    if grid is None:
        raise NotFound("网格不存在", code="GRID_NOT_FOUND")
    return grid


def select_grids(q: str | None = None, kind: str | None = None, level: str | None = None,
                 virtual_type: str | None = None, business_line: str | None = None, parent_id: int | None = None,
                 under_id: int | None = None, org_id: int | None = None, status: str | None = None,
                 bbox: tuple[float, float, float, float] | None = None, roots: bool = False) -> Select[Any]:
    stmt = select(Grid).order_by(Grid.path)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(Grid.name.ilike(pattern), Grid.code.ilike(pattern), Grid.division_code.ilike(pattern)))
    for column, value in ((Grid.kind, kind), (Grid.level, level), (Grid.virtual_type, virtual_type),
                          (Grid.business_line, business_line), (Grid.parent_id, parent_id), (Grid.status, status)):
        if value is not None:
            stmt = stmt.where(column == value)
    if roots:
        stmt = stmt.where(Grid.parent_id.is_(None))
    if org_id is not None:
        sub = select(Org.path).where(Org.id == org_id).scalar_subquery()
        stmt = stmt.where(Grid.org_id.in_(select(Org.id).where(Org.path.op("<@")(sub))))
    if under_id is not None:
        sub = select(Grid.path).where(Grid.id == under_id).scalar_subquery()
        stmt = stmt.where(Grid.path.op("<@")(sub), Grid.id != under_id)
    if bbox is not None:
        stmt = stmt.where(Grid.geom.op("&&")(func.ST_MakeEnvelope(*bbox, 4326)))
    return stmt


def list_grids(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Grid]:
    return paginate(session, select_grids(**filters), page, page_size)


# -- rules -------------------------------------------------------------------------------------------

def _check_kind_fields(data: dict[str, Any]) -> None:
    kind = GridKind(data["kind"])
    if kind is GridKind.physical:
        if not data.get("level"):
            raise ValidationFailed("实体网格必须指定层级", errors={"level": ["实体网格必须指定层级"]})
        if data.get("virtual_type"):
            raise ValidationFailed("实体网格不能有虚拟类型", errors={"virtual_type": ["实体网格不能有虚拟类型"]})
        if not data.get("geometry"):
            raise ValidationFailed("实体网格必须有边界", errors={"geometry": ["实体网格必须有边界"]})
    else:
        if not data.get("virtual_type"):
            raise ValidationFailed("虚拟网格必须指定类型", errors={"virtual_type": ["虚拟网格必须指定类型"]})
        if data.get("level"):
            raise ValidationFailed("虚拟网格没有层级", errors={"level": ["虚拟网格没有层级"]})


def _check_parent(session: Session, kind: GridKind, level: str | None, parent_id: int | None,
                  own_id: int | None = None) -> None:
    if parent_id is None:
        return
    if parent_id == own_id:
        raise ValidationFailed("上级网格不能是自己", errors={"parent_id": ["上级网格不能是自己"]})
    facts = session.scalar(text("SELECT gm_grid_topology(NULL, :p, NULL, 0)"), {"p": parent_id}) or {}
    parent = facts.get("parent")
    if parent is None:
        raise ValidationFailed("上级网格不存在", errors={"parent_id": ["上级网格不存在"]})
    if kind is GridKind.physical:
        if parent["kind"] != GridKind.physical:
            raise ValidationFailed.on("parent_id", "实体网格的上级必须是实体网格")
        expected = LEVEL_ORDER.index(GridLevel(parent["level"])) + 1
        if expected >= len(LEVEL_ORDER) or LEVEL_ORDER[expected] != GridLevel(level):
            allowed = LEVEL_LABELS[LEVEL_ORDER[expected].value] if expected < len(LEVEL_ORDER) else "无"
            raise ValidationFailed(f"{LEVEL_LABELS[parent['level']]}网格的下级只能是：{allowed}",
                                   errors={"level": [f"应为 {allowed}"]})


def check_topology(session: Session, *, kind: GridKind, parent_id: int | None, geometry: dict[str, Any],
                   exclude_id: int | None = None) -> None:
    """Physical grids: inside the parent (within tolerance) and no overlap with siblings. 422 otherwise."""
    if kind is not GridKind.physical:
        return
    facts = session.scalar(
        text("SELECT gm_grid_topology(ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326), :p, :x, :tol)"),
        {"g": json.dumps(geometry), "p": parent_id, "x": exclude_id, "tol": TOLERANCE_M2},
    )
    errors: list[str] = []
    detail: dict[str, Any] = {}
    parent = facts.get("parent")
    if parent and parent["kind"] == "physical" and parent["outside_m2"] > TOLERANCE_M2:
        errors.append(f"超出上级网格 {parent['code']} 边界 {parent['outside_m2']:.1f} 平方米")
        detail["outside_parent"] = {"parent_code": parent["code"], "area_m2": round(parent["outside_m2"], 1),
                                    "geometry": parent["outside"]}
    if facts["overlaps"]:
        listing = "、".join(f"{o['code']}（{o['overlap_m2']} 平方米）" for o in facts["overlaps"])
        errors.append(f"与同级网格重叠：{listing}")
        detail["overlaps"] = [{"id": o["id"], "code": o["code"], "name": o["name"], "area_m2": float(o["overlap_m2"]),
                               "geometry": o["overlap"]} for o in facts["overlaps"]]
    if errors:
        raise ValidationFailed("；".join(errors), code="TOPOLOGY_VIOLATION", errors={"geometry": errors},
                               detail=detail)


def _check_org(session: Session, org_id: int) -> None:
    if not valid_id(org_id) or session.get(Org, org_id) is None:
        raise ValidationFailed("机构不存在或不在权限范围内", errors={"org_id": ["机构不存在或不在权限范围内"]})


def _check_code(session: Session, code: str, own_id: int | None = None) -> None:
    if key_taken(session, "grids.code", code, own_id):
        raise Conflict(f"网格编码 {code} 已存在", code="GRID_CODE_TAKEN", errors={"code": ["网格编码已存在"]})


# -- writes ------------------------------------------------------------------------------------------

def _set_geometry(grid: Grid, geometry: dict[str, Any] | None) -> None:
    grid.geom = None if geometry is None else func.ST_SetSRID(func.ST_GeomFromGeoJSON(json.dumps(geometry)), 4326)


def refresh_h3(session: Session, grid: Grid) -> None:
    """Recompute the grid's H3 cover (called after every geometry change)."""
    session.execute(delete(grid_h3).where(grid_h3.c.grid_id == grid.id))
    if grid.geom is None:
        return
    geom = to_shape(grid.geom)
    cover = spatial.h3_cover(geom, grid.area_m2 or 0.0)
    rows = [{"grid_id": grid.id, "cell": c, "res": cover.res, "is_interior": True} for c in cover.interior]
    rows += [{"grid_id": grid.id, "cell": c, "res": cover.res, "is_interior": False} for c in cover.boundary]
    if rows:
        session.execute(insert(grid_h3), rows)


def _flush_geometry(session: Session, grid: Grid) -> None:
    session.flush()
    session.refresh(grid)
    refresh_h3(session, grid)


def create_grid(session: Session, actor: Principal, data: dict[str, Any], *, repair: bool = False) -> Grid:
    _check_kind_fields(data)
    kind = GridKind(data["kind"])
    org_id = data.get("org_id") or actor.org_id
    _check_org(session, org_id)
    _check_code(session, data["code"])
    _check_parent(session, kind, data.get("level"), data.get("parent_id"))
    geometry = data.get("geometry")
    if geometry is not None:
        geometry = spatial.checked_multipolygon(session, geometry, repair=repair)
        check_topology(session, kind=kind, parent_id=data.get("parent_id"), geometry=geometry)
    grid = Grid(kind=kind, level=data.get("level"), virtual_type=data.get("virtual_type"),
                created_by=actor.user_id, updated_by=actor.user_id,
                **{k: data[k] for k in EDITABLE if k in data and k != "org_id"}, org_id=org_id)
    _set_geometry(grid, geometry)
    session.add(grid)
    _flush_geometry(session, grid)
    return grid


def update_grid(session: Session, actor: Principal, grid_id: int, data: dict[str, Any], *,
                repair: bool = False) -> Grid:
    grid = get_grid(session, grid_id)
    if data.get("version") is not None and data["version"] != grid.version:
        raise Conflict(f"网格已被他人修改（当前版本 {grid.version}），请刷新后重试", code="GRID_VERSION_CONFLICT",
                       detail={"version": grid.version})
    if "code" in data and data["code"] != grid.code:
        _check_code(session, data["code"], grid.id)
    if "org_id" in data and data["org_id"] != grid.org_id:
        _check_org(session, data["org_id"])
    parent_id = data.get("parent_id", grid.parent_id)
    if "parent_id" in data and parent_id != grid.parent_id:
        _check_parent(session, grid.kind, grid.level, parent_id, grid.id)
        if parent_id is not None and session.scalar(
            select(func.count()).select_from(Grid).where(Grid.id == parent_id, Grid.path.op("<@")(grid.path))
        ):
            raise ValidationFailed("不能移动到自己的下级之下", errors={"parent_id": ["不能移动到自己的下级之下"]})
    geometry_changed = "geometry" in data
    if geometry_changed:
        geometry = data["geometry"]
        if geometry is None and grid.kind is GridKind.physical:
            raise ValidationFailed("实体网格必须有边界", errors={"geometry": ["实体网格必须有边界"]})
        if geometry is not None:
            geometry = spatial.checked_multipolygon(session, geometry, repair=repair)
    else:
        geometry = current_geometry(session, grid)
    if geometry is not None and (geometry_changed or parent_id != grid.parent_id):
        check_topology(session, kind=grid.kind, parent_id=parent_id, geometry=geometry, exclude_id=grid.id)
    for key in EDITABLE:
        if key in data:
            setattr(grid, key, data[key])
    grid.updated_by = actor.user_id
    if geometry_changed:
        _set_geometry(grid, geometry)
        _flush_geometry(session, grid)
    else:
        session.flush()
        session.refresh(grid)
    return grid


def current_geometry(session: Session, grid: Grid) -> dict[str, Any] | None:
    raw = session.scalar(select(func.ST_AsGeoJSON(Grid.geom, 9)).where(Grid.id == grid.id))
    return json.loads(raw) if raw else None


def _dependents(session: Session, grid_id: int) -> dict[str, int]:
    return session.scalar(text("SELECT gm_grid_dependents(:id)"), {"id": grid_id})


def delete_grid(session: Session, grid_id: int) -> None:
    grid = get_grid(session, grid_id)
    deps = _dependents(session, grid.id)
    if deps["children"] or deps["members"] or deps.get("customers"):
        raise Conflict(f"网格下仍有 {deps['children']} 个下级网格、{deps['members']} 个成员、"
                       f"{deps.get('customers', 0)} 个客户，请先移走", code="GRID_HAS_DEPENDENTS", detail=deps)
    session.delete(grid)
    session.flush()


def split_grid(session: Session, actor: Principal, grid_id: int, line: dict[str, Any]) -> list[Grid]:
    """Cut a grid with a line. The largest part keeps the grid (id, code, assignments); others are new."""
    grid = get_grid(session, grid_id)
    if grid.geom is None:
        raise ValidationFailed("无边界的网格不能拆分", errors={"line": ["无边界的网格不能拆分"]})
    if not isinstance(line, dict) or line.get("type") not in ("LineString", "MultiLineString"):
        raise ValidationFailed("拆分线必须是 LineString", errors={"line": ["拆分线必须是 LineString"]})
    if _dependents(session, grid.id)["children"]:
        raise Conflict("网格有下级网格，请先拆分或移动下级网格", code="GRID_HAS_DEPENDENTS")
    rows = session.execute(
        text("""SELECT ST_AsGeoJSON(ST_Multi(d.geom), 9) AS g, ST_Area(d.geom::geography) AS a
                FROM grids, ST_Dump(ST_CollectionExtract(ST_Split(grids.geom,
                     ST_SetSRID(ST_GeomFromGeoJSON(:line), 4326)), 3)) d
                WHERE grids.id = :id ORDER BY a DESC"""),
        {"line": json.dumps(line), "id": grid.id},
    ).all()
    parts = [json.loads(g) for g, a in rows if a > TOLERANCE_M2]
    if len(parts) < 2:
        raise ValidationFailed.on("line", "拆分线没有把网格分成两部分（需完整穿过网格）")
    # components of a MultiPolygon on the same side of nothing stay separate: each part becomes a grid
    _set_geometry(grid, parts[0])
    grid.updated_by = actor.user_id
    _flush_geometry(session, grid)
    result = [grid]
    for n, part in enumerate(parts[1:], start=2):
        code = _free_code(session, grid.code, n)
        new = Grid(code=code, name=f"{grid.name}（{n}）", kind=grid.kind, level=grid.level,
                   virtual_type=grid.virtual_type, business_line=grid.business_line, org_id=grid.org_id,
                   parent_id=grid.parent_id, division_code=None, status=grid.status,
                   created_by=actor.user_id, updated_by=actor.user_id)
        _set_geometry(new, part)
        session.add(new)
        _flush_geometry(session, new)
        result.append(new)
    return result


def _free_code(session: Session, base: str, n: int) -> str:
    while key_taken(session, "grids.code", f"{base}-{n}"):
        n += 1
    return f"{base}-{n}"


def merge_grids(session: Session, actor: Principal, grid_ids: list[int], *, name: str | None = None) -> Grid:
    """Merge adjacent sibling grids into the first one; the others' children move to it."""
    if len(set(grid_ids)) < 2:
        raise ValidationFailed("至少选择两个网格", errors={"grid_ids": ["至少选择两个不同的网格"]})
    grids = [get_grid(session, gid) for gid in dict.fromkeys(grid_ids)]
    target, others = grids[0], grids[1:]
    for g in others:
        if (g.kind, g.level, g.virtual_type, g.parent_id) != (target.kind, target.level, target.virtual_type,
                                                             target.parent_id):
            raise ValidationFailed.on("grid_ids", f"只能合并同一上级下、同层级的网格：{g.code} 与 {target.code} 不同级")
        if g.geom is None or target.geom is None:
            raise ValidationFailed("无边界的网格不能合并", errors={"grid_ids": [f"{g.code} 无边界"]})
    ids = [g.id for g in grids]
    union = session.execute(
        text("""SELECT ST_AsGeoJSON(ST_Multi(ST_Union(geom)), 9), ST_NumGeometries(ST_Union(geom))
                FROM grids WHERE id = ANY(:ids)"""), {"ids": ids}).one()
    if union[1] != 1:
        raise ValidationFailed("所选网格不相邻，不能合并", code="GRIDS_NOT_ADJACENT",
                               errors={"grid_ids": ["所选网格不相邻"]})
    for g in others:
        session.execute(update(Grid).where(Grid.parent_id == g.id).values(parent_id=target.id))
        session.execute(update(GridMember).where(GridMember.grid_id == g.id).values(grid_id=target.id))
    session.flush()
    for g in others:
        session.delete(g)
    session.flush()
    _set_geometry(target, json.loads(union[0]))
    if name:
        target.name = name
    target.updated_by = actor.user_id
    _flush_geometry(session, target)
    return target


def rebuild_from_children(session: Session, actor: Principal, grid_id: int) -> Grid:
    """Make a physical grid's boundary the union of its children's."""
    grid = get_grid(session, grid_id)
    if grid.kind is not GridKind.physical:
        raise ValidationFailed("只有实体网格可以由下级重建", errors={"grid_id": ["只有实体网格可以由下级重建"]})
    union = session.scalar(
        text("SELECT ST_AsGeoJSON(ST_Multi(ST_Union(geom)), 9) FROM grids WHERE parent_id = :id AND geom IS NOT NULL"),
        {"id": grid.id},
    )
    if union is None:
        raise ValidationFailed("该网格没有带边界的下级网格", errors={"grid_id": ["没有下级网格"]})
    geometry = json.loads(union)
    check_topology(session, kind=grid.kind, parent_id=grid.parent_id, geometry=geometry, exclude_id=grid.id)
    _set_geometry(grid, geometry)
    grid.updated_by = actor.user_id
    _flush_geometry(session, grid)
    return grid


# -- reads -------------------------------------------------------------------------------------------

def find_grid_for_point(session: Session, lon: float, lat: float, *, kind: str = "physical",
                        method: str = "gist") -> Grid | None:
    """The finest (deepest) in-scope grid containing the point.

    For one point the GiST index is faster than the H3 pre-filter (bench/point_in_grid.py), so it is the
    default; batches use H3 (geo_core.grids.placement)."""
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    if method == "gist":
        return session.scalar(
            select(Grid).where(Grid.kind == kind, Grid.status == GridStatus.active,
                               func.ST_Intersects(Grid.geom, point))
            .order_by(func.nlevel(Grid.path).desc(), Grid.area_m2).limit(1)
        )
    cells = spatial.point_cells(lon, lat)
    # materialised first, so the plan always starts from the handful of candidate cells
    candidates = (
        select(grid_h3.c.grid_id, grid_h3.c.is_interior).where(grid_h3.c.cell.in_(cells)).cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    stmt = (
        select(Grid)
        .join(candidates, candidates.c.grid_id == Grid.id)
        .where(Grid.kind == kind, Grid.status == GridStatus.active)
        .where(or_(candidates.c.is_interior, func.ST_Intersects(Grid.geom, point)))
        .order_by(func.nlevel(Grid.path).desc(), Grid.area_m2)
        .limit(1)
    )
    return session.scalar(stmt)


def feature(grid: Grid, geometry: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "Feature", "id": grid.id, "geometry": geometry, "properties": properties(grid)}


def properties(grid: Grid) -> dict[str, Any]:
    return {
        "id": grid.id, "code": grid.code, "name": grid.name, "kind": _v(grid.kind), "level": _v(grid.level),
        "virtual_type": _v(grid.virtual_type), "business_line": _v(grid.business_line), "org_id": grid.org_id,
        "parent_id": grid.parent_id, "path": str(grid.path), "division_code": grid.division_code,
        "area_m2": None if grid.area_m2 is None else round(grid.area_m2, 1),
        "households_estimate": grid.households_estimate, "status": _v(grid.status), "version": grid.version,
    }


def _v(value: Any) -> Any:
    return getattr(value, "value", value)


def feature_collection(session: Session, stmt: Select[Any], *, simplify_m: float = 0.0,
                       limit: int = 5000) -> dict[str, Any]:
    """GeoJSON (WGS84) of the selected grids; optional simplification for overview maps."""
    sub = stmt.limit(limit).subquery()
    geom = sub.c.geom if not simplify_m else func.ST_SimplifyPreserveTopology(sub.c.geom, simplify_m / 111_320)
    rows = session.execute(
        select(Grid, func.ST_AsGeoJSON(geom, 7)).join(sub, sub.c.id == Grid.id).order_by(Grid.path)
    ).all()
    return {"type": "FeatureCollection",
            "features": [feature(g, json.loads(gj) if gj else None) for g, gj in rows]}


def children_summary(session: Session, grid_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Grid.parent_id, func.count()).where(Grid.parent_id.in_(grid_ids)).group_by(Grid.parent_id)
    ).all()
    return dict(rows)

