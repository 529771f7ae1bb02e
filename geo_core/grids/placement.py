"""Place points in grids: each point gets the finest active physical grid containing it.

One set-based SQL statement per table: candidate grids come from a hash join of the point's H3 cell
(at the cover resolutions 10, 9 and 8) with grid_h3; interior cells need no polygon test, boundary
cells are settled with ST_Intersects on the few candidates. The deepest grid wins (then the smallest).
Idempotent: re-running yields the same assignment and changes no row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

# tables holding points: geometry column, H3 column, grid column
POINT_TABLES = {
    "pois": ("geom", "h3_r10", "grid_id"),
    "watch_items": ("geom", "h3_r10", "grid_id"),
}


@dataclass(frozen=True)
class PlacementResult:
    table: str
    points: int
    placed: int
    changed: int


def fill_h3(session: Session, table: str) -> int:
    """Compute missing H3 cells in SQL-free Python batches (h3 has no PostgreSQL extension here)."""
    import h3

    geom, h3col, _ = POINT_TABLES[table]
    rows = session.execute(text(
        f"SELECT id, ST_X({geom}), ST_Y({geom}) FROM {table} WHERE {h3col} IS NULL AND {geom} IS NOT NULL"
    )).all()
    if rows:
        session.execute(
            text(f"UPDATE {table} SET {h3col} = v.cell FROM (SELECT unnest(CAST(:ids AS integer[])) AS id,"
                 f" unnest(CAST(:cells AS bigint[])) AS cell) v WHERE {table}.id = v.id"),
            {"ids": [r[0] for r in rows], "cells": [h3.str_to_int(h3.latlng_to_cell(r[2], r[1], 10)) for r in rows]},
        )
    return len(rows)


def place_points(session: Session, table: str) -> PlacementResult:
    if table not in POINT_TABLES:
        raise ValueError(f"not a point table: {table}")
    geom, h3col, gridcol = POINT_TABLES[table]
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    session.execute(text("DROP TABLE IF EXISTS gm_placement"))
    session.execute(text(f"""
        CREATE TEMP TABLE gm_placement ON COMMIT DROP AS
        SELECT DISTINCT ON (p.id) p.id, g.id AS grid_id
        FROM {table} p
        CROSS JOIN LATERAL (VALUES (p.{h3col}, 10), (gm_h3_parent(p.{h3col}, 9), 9),
                                   (gm_h3_parent(p.{h3col}, 8), 8)) c(cell, res)
        JOIN grid_h3 h ON h.cell = c.cell AND h.res = c.res
        JOIN grids g ON g.id = h.grid_id
        WHERE g.kind = 'physical' AND g.status = 'active'
          AND (h.is_interior OR ST_Intersects(g.geom, p.{geom}))
        ORDER BY p.id, nlevel(g.path) DESC, g.area_m2
    """))
    session.execute(text("ALTER TABLE gm_placement ADD PRIMARY KEY (id)"))
    session.execute(text("ANALYZE gm_placement"))
    placed = session.scalar(text("SELECT count(*) FROM gm_placement"))
    changed = session.execute(text(f"""
        UPDATE {table} t SET {gridcol} = c.grid_id FROM gm_placement c
        WHERE t.id = c.id AND t.{gridcol} IS DISTINCT FROM c.grid_id
    """)).rowcount
    changed += session.execute(text(f"""
        UPDATE {table} t SET {gridcol} = NULL
        WHERE t.{gridcol} IS NOT NULL AND t.{geom} IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM gm_placement c WHERE c.id = t.id)
    """)).rowcount
    total = session.scalar(text(f"SELECT count(*) FROM {table}"))
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return PlacementResult(table, total, placed, changed)
