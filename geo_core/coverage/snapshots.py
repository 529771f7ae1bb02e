"""Daily coverage snapshots: the indicators of every grid, org and account manager (and the bank total) stored
per day, so the cockpit can draw them over time. Written by the job `jobs.coverage.snapshot_coverage` in an
elevated (audited) context; read back under row-level security: a snapshot row carries the org owning its
entity (the grid's org, the org itself, the manager's org; none for the bank total) and is visible to callers
whose scope holds that org, and to a manager for his own row.

Snapshot numbers are whole-entity figures computed with scope `all`; the live `/coverage` endpoint computes
the caller's own view instead. Re-running the job on the same day replaces that day's rows (idempotent).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo_core.coverage.indicators import GROUPS, compute, compute_total
from geo_core.coverage.models import CoverageSnapshot

BANK_TZ = ZoneInfo("Asia/Shanghai")
LEVELS = (*GROUPS, "total")
MAX_SERIES_DAYS = 400

UPSERT = text("""
INSERT INTO coverage_snapshots (day, level, key, org_id, name, metrics, computed_at)
SELECT :day, s.level, s.key, s.org_id, s.name, s.metrics, :now
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS s(level text, key integer, org_id integer, name text, metrics jsonb)
ON CONFLICT (day, level, key) DO UPDATE SET org_id = EXCLUDED.org_id, name = EXCLUDED.name,
    metrics = EXCLUDED.metrics, computed_at = EXCLUDED.computed_at""")


def bank_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(BANK_TZ).date()


def write_snapshots(session: Session, *, now: datetime | None = None, not_visited_days: int = 90) -> dict[str, int]:
    """Compute and upsert today's rows for every level. Call in an elevated context (sees everything)."""
    now = now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for level in GROUPS:
        coverage = compute(session, level, not_visited_days=not_visited_days, now=now)
        kept = [r for r in coverage.rows if r["key"] is not None]
        counts[level] = len(kept)
        for r in kept:
            metrics = {k: v for k, v in r.items() if k not in ("key", "name", "org_id")}
            rows.append({"level": level, "key": r["key"], "org_id": r["org_id"], "name": r["name"],
                         "metrics": {**metrics, "not_visited_days": not_visited_days}})
    total = compute_total(session, not_visited_days=not_visited_days, now=now)
    rows.append({"level": "total", "key": 0, "org_id": None, "name": "全行",
                 "metrics": {**total, "not_visited_days": not_visited_days}})
    counts["total"] = 1
    # one summary audit row per statement instead of one per snapshot row
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    session.execute(UPSERT, {"day": bank_today(now), "now": now, "rows": json.dumps(rows, ensure_ascii=False)})
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return counts


def read_series(session: Session, level: str, *, key: int | None = None, since: date | None = None,
                until: date | None = None) -> list[CoverageSnapshot]:
    """Snapshot rows the caller may see, oldest first (at most MAX_SERIES_DAYS days per key)."""
    stmt = select(CoverageSnapshot).where(CoverageSnapshot.level == level).order_by(CoverageSnapshot.key,
                                                                                     CoverageSnapshot.day)
    if key is not None:
        stmt = stmt.where(CoverageSnapshot.key == key)
    if since is not None:
        stmt = stmt.where(CoverageSnapshot.day >= since)
    if until is not None:
        stmt = stmt.where(CoverageSnapshot.day <= until)
    return list(session.scalars(stmt.limit(20000)))
