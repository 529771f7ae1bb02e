"""「我的网格」: what is in a grid, counted within the caller's data scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geo_core.grids.models import Grid
from geo_core.grids.service import get_grid, properties
from geo_core.orgs.models import Org, OrgLevel

# Banks size grids at about 500-1,000 households (国内农商行网格化实践); outside this range is flagged.
HOUSEHOLDS_RANGE = (500, 1000)


def grid_summary(session: Session, grid_id: int) -> dict[str, Any]:
    grid = get_grid(session, grid_id)
    children = dict(session.execute(
        select(Grid.level, func.count()).where(Grid.parent_id == grid.id).group_by(Grid.level)).all())
    pois = dict(session.execute(text(
        "SELECT p.category, count(*) FROM pois p JOIN grids g ON g.id = p.grid_id "
        "WHERE g.path <@ CAST(:path AS ltree) GROUP BY 1"), {"path": str(grid.path)}).all())
    watch = session.scalar(text(
        "SELECT count(*) FROM watch_items w JOIN grids g ON g.id = w.grid_id WHERE g.path <@ CAST(:path AS ltree)"),
        {"path": str(grid.path)})
    outlets = list(session.execute(
        select(Org.id, Org.code, Org.name).join(Grid, Grid.id == grid.id)
        .where(Org.level == OrgLevel.outlet, func.ST_Intersects(Grid.geom, Org.location))
        .order_by(Org.code)).all())
    low, high = HOUSEHOLDS_RANGE
    households = grid.households_estimate
    flag = None
    if households is not None and not low <= households <= high:
        flag = "too_small" if households < low else "too_large"
    return {
        "grid": properties(grid),
        "children": {getattr(k, "value", k): v for k, v in children.items()},
        "households": {"estimate": households, "range": [low, high], "flag": flag},
        "pois": {"total": sum(pois.values()), "by_category": pois},
        "outlets": [{"id": i, "code": c, "name": n} for i, c, n in outlets],
        "watch_items": watch,
        "layers": [
            {"id": "grids", "name": "下级网格", "url": f"/api/v1/grids/geojson?parent_id={grid.id}"},
            {"id": "outlets", "name": "营业网点", "url": "/api/v1/orgs/geojson?level=outlet"},
            {"id": "pois", "name": "经济单元", "url": "/api/v1/pois/geojson"},
            {"id": "watch_items", "name": "我的关注", "url": f"/api/v1/watch-items/geojson?grid_id={grid.id}"},
        ],
    }
