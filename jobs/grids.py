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


def rate_all_grids(scheme_code: str | None = None) -> dict:
    """Rate every active physical grid with the (default) active scheme. One statement, one transaction."""
    from geo_core.grids.rating import get_scheme, rate_grids

    with job_session("rate_all_grids") as session:
        scheme = get_scheme(session, scheme_code)
        rows = rate_grids(session, scheme)
    progress(rows, rows)
    log.info("rated %d grids with scheme %s", rows, scheme.code)
    return {"scheme": scheme.code, "rated": rows}
