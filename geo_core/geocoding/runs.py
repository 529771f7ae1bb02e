"""Batch geocoding of customers (geocode runs): targets, chunks, results written to customers and known addresses.

A run targets customer ids, the customers of a list batch, or every customer in scope lacking a point
("missing"). It is processed in chunks of CHUNK customers in id order, **one transaction per chunk** (the job
commits each chunk with the run's counts and `cursor` = the last id processed), so a run of 100,000 addresses
neither holds one huge transaction nor loses finished work when a worker dies: re-running the job continues after
the cursor, and customers that got a point are not geocoded again (idempotent).

Everything that reads or writes customers runs under the requester's row-level security (`acting_as`), so a run
can never touch a customer he cannot see. Grid lookups for the new points are elevated (audited), like the
single-customer placement, because the finest grid may belong to another org.

Which customers are (re)geocoded: by default those lacking a point, plus — when named by id — those whose point
was itself geocoded; `force` includes every targeted customer with an address, even corrected/GPS points. A
result is applied only if at least as precise as `min_level` (default community: a street- or district-level
point would drop the customer into an arbitrary community grid). Manual grid overrides are kept.
"""

from __future__ import annotations

from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from geo_core.customers import lists_models  # noqa: F401  (customer_import_batches for the FK)
from geo_core.customers.lists import acting_as
from geo_core.customers.lists_models import CustomerListEntry
from geo_core.customers.models import Customer, LocationSource
from geo_core.db import elevated
from geo_core.errors import NotFound, ValidationFailed
from geo_core.geocoding.gazetteer import LEVEL_RANK, LEVELS, GeocodeResult, parser_for
from geo_core.geocoding.models import GeocodeRun
from geo_core.geocoding.service import Geocoder
from geo_core.grids.service import find_grid_for_point
from geo_core.grids.spatial import point_cell
from geo_core.paging import Page, paginate
from geo_core.scope import Principal
from geo_core.users.job_actor import load_job_actor

CHUNK = 200
MAX_IDS = 50_000
PROTECTED = (LocationSource.corrected, LocationSource.gps)
PERMISSION = "geocode:run"


# -- runs ---------------------------------------------------------------------------------------------------------

def create_run(session: Session, actor: Principal, *, customer_ids: list[int] | None = None,
               batch_id: int | None = None, missing: bool = False, force: bool = False, online: bool = True,
               min_level: str = "community") -> GeocodeRun:
    """Record a run (status queued) after checking its target is inside the caller's scope."""
    chosen = [customer_ids is not None, batch_id is not None, missing]
    if sum(chosen) != 1:
        raise ValidationFailed("请指定且只指定一种范围：customer_ids、batch_id 或 missing",
                               errors={"customer_ids": ["customer_ids、batch_id、missing 三选一"]})
    if min_level not in LEVELS[:-1]:
        raise ValidationFailed.on("min_level", f"可选：{', '.join(LEVELS[:-1])}")
    params: dict[str, Any] = {"force": force, "online": online, "min_level": min_level}
    if customer_ids is not None:
        ids = sorted(set(customer_ids))
        visible = set(session.scalars(select(Customer.id).where(Customer.id.in_(ids))))
        unknown = [i for i in ids if i not in visible]
        if unknown:  # out of scope is indistinguishable from missing
            raise ValidationFailed.on("customer_ids", f"客户不存在或不在权限范围内：{unknown[:20]}")
        params["customer_ids"] = ids
        target = "ids"
    elif batch_id is not None:
        from geo_core.customers.lists import get_batch

        get_batch(session, batch_id)  # 404 outside the caller's scope
        target = "batch"
    else:
        target = "missing"
    run = GeocodeRun(status="queued", target=target, params=params, batch_id=batch_id, requested_by=actor.user_id,
                     org_id=actor.org_id, counts={}, done=0, cursor=0)
    session.add(run)
    session.flush()
    session.refresh(run)
    return run


def get_run(session: Session, run_id: int) -> GeocodeRun:
    run = session.get(GeocodeRun, run_id) if 0 < run_id < 2**31 else None
    if run is None:
        raise NotFound("地址解析任务不存在", code="GEOCODE_RUN_NOT_FOUND")
    return run


def list_runs(session: Session, *, status: str | None = None, page: int = 1, page_size: int = 20) -> Page:
    stmt = select(GeocodeRun).order_by(GeocodeRun.id.desc())
    if status:
        stmt = stmt.where(GeocodeRun.status == status)
    return paginate(session, stmt, page, page_size)


_RESULTS_FROM = """
    FROM geocode_results r JOIN customers c ON c.id = r.customer_id
    WHERE r.run_id = :run AND (CAST(:level AS text) IS NULL OR r.level = :level)
      AND (CAST(:applied AS boolean) IS NULL OR r.applied = :applied)
      AND (CAST(:max_confidence AS float8) IS NULL OR r.confidence <= :max_confidence)"""
RESULTS_SQL = text("SELECT r.customer_id, c.name, c.address, r.level, r.confidence, r.provider, r.applied, "
                   "r.matched" + _RESULTS_FROM + " ORDER BY r.confidence, r.customer_id LIMIT :limit OFFSET :offset")
RESULTS_COUNT_SQL = text("SELECT count(*)" + _RESULTS_FROM)


def list_results(session: Session, run_id: int, *, level: str | None = None, applied: bool | None = None,
                 max_confidence: float | None = None, page: int = 1, page_size: int = 50) -> Page:
    """A run's per-customer results, least confident first (customers outside my scope are not there)."""
    get_run(session, run_id)
    params = {"run": run_id, "level": level, "applied": applied, "max_confidence": max_confidence}
    total = session.scalar(RESULTS_COUNT_SQL, params) or 0
    rows = session.execute(RESULTS_SQL, {**params, "limit": page_size, "offset": (page - 1) * page_size})
    return Page([dict(r) for r in rows.mappings()], total, page, page_size)


def load_actor(session: Session, user_id: int) -> Principal:
    """The requester as a principal (current roles and scope); he must still be active and hold geocode:run."""
    return load_job_actor(session, user_id, permission=PERMISSION, inactive="发起人账户不存在或已停用",
                          inactive_code="REQUESTER_INACTIVE", denied="发起人已没有地址解析的权限")


def mark(session: Session, run_id: int, **values: Any) -> None:
    session.execute(update(GeocodeRun).where(GeocodeRun.id == run_id).values(**values))


# -- targets ------------------------------------------------------------------------------------------------------

def select_targets(run: GeocodeRun, after_id: int = 0):  # noqa: ANN201 - a Select
    """Customers of the run after `after_id`, in id order (run under the requester's RLS)."""
    force = bool(run.params.get("force"))
    stmt = select(Customer.id).where(Customer.id > after_id).order_by(Customer.id)
    if run.target == "ids":
        stmt = stmt.where(Customer.id.in_(run.params.get("customer_ids", [])))
    elif run.target == "batch":
        stmt = stmt.where(Customer.id.in_(select(CustomerListEntry.customer_id)
                                          .where(CustomerListEntry.batch_id == run.batch_id)))
    if not force:
        eligible = [Customer.geom.is_(None)]
        if run.target == "ids":
            eligible.append(Customer.location_source == LocationSource.geocoded)
        stmt = stmt.where(or_(*eligible))
    return stmt


def count_targets(session: Session, run: GeocodeRun) -> int:
    return session.scalar(select(func.count()).select_from(select_targets(run).subquery())) or 0


# -- one chunk ----------------------------------------------------------------------------------------------------

def geocode_chunk(session: Session, actor: Principal, run: GeocodeRun, geocoder: Geocoder, ids: list[int],
                  ) -> dict[str, int]:
    """Geocode these customers and write the results; returns counts by outcome. Caller owns the transaction."""
    counts: dict[str, int] = {}
    min_rank = LEVEL_RANK[run.params.get("min_level", "community")]
    force = bool(run.params.get("force"))

    def bump(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    results: list[tuple[Customer, GeocodeResult]] = []
    found: list[dict[str, Any]] = []
    with acting_as(session, actor):
        customers = list(session.scalars(select(Customer).where(Customer.id.in_(ids)).order_by(Customer.id)
                                         .with_for_update()))
        parser = parser_for(session)
        for customer in customers:
            if not (customer.address or "").strip():
                bump("skipped_no_address")
                continue
            if customer.geom is not None and customer.location_source in PROTECTED and not force:
                bump("skipped_protected")
                continue
            try:
                outcome = geocoder.geocode_parsed(session, parser.parse(customer.address))
            except Exception:  # one bad address must not fail the run: counted, the rest goes on
                bump("failed")
                continue
            best = outcome.best
            bump(best.level)
            applied = best.has_point and LEVEL_RANK[best.level] <= min_rank
            if applied:
                results.append((customer, best))
            elif best.level != "none":
                bump("too_coarse")
            found.append({"run": run.id, "customer": customer.id, "level": best.level,
                          "confidence": best.confidence, "provider": best.provider, "applied": applied,
                          "matched": (best.matched or "")[:200] or None})
        grids = _grids_for(session, [r for _, r in results], geocoder.grid_cache)
        if results:  # one statement for the chunk (RLS-checked, audited per row by the trigger)
            session.execute(_APPLY_SQL, {
                "ids": [c.id for c, _ in results], "lons": [r.lon for _, r in results],
                "lats": [r.lat for _, r in results], "cells": [point_cell(r.lon, r.lat) for _, r in results],
                "grids": [grids.get((r.lon, r.lat)) for _, r in results], "actor": actor.user_id})
            counts["applied"] = len(results)
        if found:  # one audit row for the statement (summary), like other bulk writes
            session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
            session.execute(_RESULTS_SQL, found)
            session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
        learned = [(c, r) for c, r in results if r.provider != "gazetteer" and r.level in ("exact_address", "poi")]
    _learn(session, parser, learned, actor)
    _record_hits(session, [r.known_address_id for _, r in results if r.known_address_id])
    return counts


def _grids_for(session: Session, results: list[GeocodeResult],
               found: dict[tuple[float, float], int | None]) -> dict[tuple[float, float], int | None]:
    """The finest grid of each result point (elevated: it may be another org's); `found` caches across chunks."""
    todo = [r for r in results if (r.lon, r.lat) not in found]
    if not todo:
        return found
    with elevated(session, reason="geocode: place customers in grids"):
        for r in todo:
            key = (r.lon, r.lat)
            if key not in found:
                grid = find_grid_for_point(session, r.lon, r.lat)
                found[key] = grid.id if grid else None
                if grid is not None:
                    session.expunge(grid)
    return found


_APPLY_SQL = text("""
    UPDATE customers c SET geom = ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326), h3_r10 = v.cell,
      location_source = 'geocoded',
      grid_id = CASE WHEN c.grid_override_by IS NULL THEN v.grid_id ELSE c.grid_id END,
      updated_by = :actor, updated_at = now()
    FROM unnest(CAST(:ids AS integer[]), CAST(:lons AS float8[]), CAST(:lats AS float8[]),
                CAST(:cells AS bigint[]), CAST(:grids AS integer[])) AS v(id, lon, lat, cell, grid_id)
    WHERE c.id = v.id""")

_RESULTS_SQL = text("""
    INSERT INTO geocode_results (run_id, customer_id, level, confidence, provider, applied, matched)
    VALUES (:run, :customer, :level, :confidence, :provider, :applied, :matched)
    ON CONFLICT (run_id, customer_id) DO UPDATE SET level = EXCLUDED.level, confidence = EXCLUDED.confidence,
      provider = EXCLUDED.provider, applied = EXCLUDED.applied, matched = EXCLUDED.matched""")

_UPSERT_SQL = text("""
    INSERT INTO known_addresses (address_key, address, geom, h3_r10, level, source, provider, confidence, org_id)
    VALUES (:key, :address, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :h3, :level, :source, :provider,
            :confidence, :org_id)
    ON CONFLICT (org_id, address_key) DO UPDATE SET
      geom = EXCLUDED.geom, h3_r10 = EXCLUDED.h3_r10, level = EXCLUDED.level, source = EXCLUDED.source,
      provider = EXCLUDED.provider, confidence = EXCLUDED.confidence, address = EXCLUDED.address, updated_at = now()
    WHERE known_addresses.source NOT IN ('corrected', 'gps') OR EXCLUDED.source IN ('corrected', 'gps')""")


def _learn(session: Session, parser: Any, learned: list[tuple[Customer, GeocodeResult]], actor: Principal) -> None:
    """Remember successful online geocodes (door or POI level) as known addresses of the customer's org."""
    rows = []
    for customer, result in learned:
        key = parser.parse(customer.address).key()
        if key:
            rows.append({"key": key, "address": customer.address[:300], "lon": result.lon, "lat": result.lat,
                         "h3": point_cell(result.lon, result.lat), "level": result.level, "source": "geocoded",
                         "provider": result.provider, "confidence": result.confidence, "org_id": customer.org_id})
    if rows:
        with elevated(session, reason="geocode: learn known addresses", actor_id=actor.user_id):
            session.execute(_UPSERT_SQL, rows)


def _record_hits(session: Session, ids: list[int]) -> None:
    if ids:
        with elevated(session, reason="geocode: known address hits"):
            session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
            session.execute(text("UPDATE known_addresses SET hits = hits + 1, last_hit_at = now() "
                                 "WHERE id = ANY(:ids)"), {"ids": ids})
            session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))


def learn_confirmed(session: Session, actor: Principal, *, limit: int = 50_000) -> int:
    """Known addresses from confirmed points (纠偏 / GPS) of customers the actor can see, newer than what we have."""
    with acting_as(session, actor):
        since = session.scalar(text("SELECT max(updated_at) FROM known_addresses "
                                    "WHERE source IN ('corrected', 'gps')"))
        stmt = (select(Customer.address, Customer.geom, Customer.location_source, Customer.org_id)
                .where(Customer.location_source.in_(PROTECTED), Customer.geom.is_not(None),
                       Customer.address.is_not(None))
                .order_by(Customer.updated_at).limit(limit))
        if since is not None:
            stmt = stmt.where(Customer.updated_at > since)
        confirmed = session.execute(stmt).all()
        parser = parser_for(session)
    rows = []
    for address, geom, source, org_id in confirmed:
        key = parser.parse(address).key()
        if not key:
            continue
        point = to_shape(geom)
        rows.append({"key": key, "address": address[:300], "lon": point.x, "lat": point.y,
                     "h3": point_cell(point.x, point.y), "level": "exact_address",
                     "source": getattr(source, "value", source), "provider": None, "confidence": 0.95,
                     "org_id": org_id})
    if rows:
        with elevated(session, reason="geocode: learn confirmed points", actor_id=actor.user_id):
            session.execute(_UPSERT_SQL, rows)
    return len(rows)


def merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}

