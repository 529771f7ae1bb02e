"""Grid jobs: re-place every point in its finest grid after grid edits; rate all grids; import a large grid file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from rq import get_current_job
from sqlalchemy.orm import Session

from geo_core.db import transaction
from geo_core.grids.placement import POINT_TABLES, fill_h3, place_points
from geo_core.scope import Principal
from jobs.queues import _factory, job_session, log, progress, retire_layers, settings


@contextmanager
def acting_session(actor: Principal, job_id: str | None) -> Iterator[Session]:
    """One transaction as `actor` (his data scope, audited under the job's id): commit on success."""
    with transaction(_factory(settings().sa_app_database_url), actor.db_context().with_request(job_id, None)) as s:
        yield s


LAYERS_OF_TABLE = {"pois": ("pois",)}  # point tables that are map layers (their grid_id is a tile attribute)


def place_all_points() -> list[dict]:
    """Re-place points of every point table (idempotent). Progress counts tables done."""
    results = []
    tables = list(POINT_TABLES)
    for done, table in enumerate(tables, start=1):
        with job_session(f"place_points:{table}", retires=LAYERS_OF_TABLE.get(table, ())) as session:
            fill_h3(session, table)
            result = place_points(session, table)
        results.append(asdict(result))
        log.info("placed %s: %d of %d points, %d changed", table, result.placed, result.points, result.changed)
        progress(done, len(tables))
    return results


def rate_all_grids(scheme_code: str | None = None) -> dict:
    """Rate every active physical grid with the (default) active scheme. One statement, one transaction."""
    from geo_core.grids.rating import get_scheme, rate_grids

    with job_session("rate_all_grids", retires=("grids",)) as session:
        scheme = get_scheme(session, scheme_code)
        rows = rate_grids(session, scheme)
    progress(rows, rows)
    log.info("rated %d grids with scheme %s", rows, scheme.code)
    return {"scheme": scheme.code, "rated": rows}


def import_grid_file(key: str, filename: str, crs: str | None = None, repair: bool = False,
                     mode: str = "upsert") -> dict[str, Any]:
    """Import a large grid file (stored in Redis under `key` by POST /grids/import-jobs) as the user who sent it.

    All rows or none, in one transaction under his data scope (he must still be active and hold grid:import).
    Progress: job.meta phase (read / write / done / rejected), done / total rows. A rejected file is a normal
    result (`status: rejected` with the per-row errors), not a failed job; the stored file is deleted either way.
    """
    from geo_core.errors import DomainError, ValidationFailed
    from geo_core.grids import files
    from geo_core.grids.import_jobs import load_importer

    job = get_current_job()
    user_id = job.meta.get("user_id") if job else None
    connection = job.connection if job else None

    def meter(phase: str, done: int, total: int) -> None:
        if job is not None:
            job.meta.update({"phase": phase, "done": done, "total": total})
            job.save_meta()

    try:
        data = connection.get(key) if connection is not None else None
        if data is None:
            return {"status": "rejected", "message": "上传的文件已过期或不存在，请重新上传", "errors": []}
        meter("read", 0, 0)
        try:
            with job_session(f"grid_import:{filename}:actor", actor_id=user_id) as side:
                actor = load_importer(side, user_id)
            with acting_session(actor, job.id if job else None) as session:
                counts = files.import_grids(session, actor, filename, data, crs=crs, repair=repair, mode=mode,
                                            max_features=files.MAX_JOB_FEATURES,
                                            on_progress=lambda done, total: meter("write", done, total))
            retire_layers(("grids",))
        except ValidationFailed as exc:
            errors = exc.errors if isinstance(exc.errors, list) else [
                {"row": None, "field": k, "message": "；".join(map(str, v))} for k, v in (exc.errors or {}).items()]
            meter("rejected", 0, len(errors))
            log.info("grid import %s rejected: %s", filename, exc.message)
            return {"status": "rejected", "message": exc.message, "errors": errors[:1000],
                    "error_count": len(errors)}
        except DomainError as exc:
            meter("rejected", 0, 0)
            return {"status": "rejected", "message": exc.message, "errors": []}
        total = counts["created"] + counts["updated"]
        meter("done", total, total)
        log.info("grid import %s: %s", filename, counts)
        return {"status": "done", **counts}
    finally:
        if connection is not None:
            connection.delete(key)
