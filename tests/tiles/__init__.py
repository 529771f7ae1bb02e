"""Helpers for the feature/tile server tests: tile arithmetic and ground truth read as the table owner."""

from __future__ import annotations

import math

from sqlalchemy import text

EXTENT = 4096
YUELU = (112.60, 27.95, 112.97, 28.30)  # 岳麓区 customers and grids of branch n1.n22 lie in here
FURONG_CENTRE = (113.03, 28.20)  # 芙蓉区, sub-branch n1.n2.n3 (文艺路支行) and its outlets


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    lat_r = math.radians(lat)
    y = int((1 - math.log(math.tan(lat_r) + 1 / math.cos(lat_r)) / math.pi) / 2 * n)
    return z, x, y


def tile_px(lon: float, lat: float, z: int, x: int, y: int) -> tuple[float, float]:
    """Position of lon/lat in tile (z, x, y) coordinates (extent 4096, y down)."""
    n = 1 << z
    fx = (lon + 180) / 360 * n
    lat_r = math.radians(lat)
    fy = (1 - math.log(math.tan(lat_r) + 1 / math.cos(lat_r)) / math.pi) / 2 * n
    return (fx - x) * EXTENT, (fy - y) * EXTENT


def visible_customer_ids(owner_engine, username: str) -> set[int]:  # noqa: ANN001
    """What the customers RLS policy lets a sub-branch / branch user see: his org subtree or customers he manages."""
    with owner_engine.connect() as conn:
        return set(conn.scalars(text(
            "SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id, users u JOIN orgs uo ON uo.id = u.org_id "
            "WHERE u.username = :u AND (o.path <@ uo.path OR c.owner_user_id = u.id)"), {"u": username}))


def customers_of_branch(owner_engine, branch_path: str) -> dict[int, tuple[float, float]]:  # noqa: ANN001
    with owner_engine.connect() as conn:
        rows = conn.execute(text("SELECT c.id, ST_X(c.geom), ST_Y(c.geom) FROM customers c JOIN orgs o "
                                 "ON o.id = c.org_id WHERE o.path <@ CAST(:p AS ltree) AND c.geom IS NOT NULL"),
                            {"p": branch_path})
        return {r[0]: (r[1], r[2]) for r in rows}


def customer_points(owner_engine) -> dict[int, tuple[float, float]]:  # noqa: ANN001
    with owner_engine.connect() as conn:
        rows = conn.execute(text("SELECT id, ST_X(geom), ST_Y(geom) FROM customers WHERE geom IS NOT NULL"))
        return {r[0]: (r[1], r[2]) for r in rows}


def clear_tile_cache(redis_url: str, namespace: str) -> None:
    """Drop this test database's cached tiles, fingerprints and extents (other databases' keys are left alone)."""
    from redis import Redis

    conn = Redis.from_url(redis_url)
    keys = list(conn.scan_iter(f"gm:tiles:{namespace}:*", count=1000))
    if keys:
        conn.delete(*keys)
