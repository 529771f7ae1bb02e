"""Grid jobs: re-place every point in its finest grid after grid edits."""

from __future__ import annotations

from dataclasses import asdict

from geo_core.grids.placement import POINT_TABLES, fill_h3, place_points
from jobs.queues import job_session, log, progress


def place_all_points() -> list[dict]:
    """Re-place points of every point table (idempotent). Progress counts tables done."""
    results = []
    tables = list(POINT_TABLES)
    for done, table in enumerate(tables, start=1):
        with job_session(f"place_points:{table}") as session:
            fill_h3(session, table)
            result = place_points(session, table)
        results.append(asdict(result))
        log.info("placed %s: %d of %d points, %d changed", table, result.placed, result.points, result.changed)
        progress(done, len(tables))
    return results
