"""The customer list import (run by jobs/customer_imports.py): validate again, then write in one transaction.

`import_batch` writes everything in the caller's one transaction: new customers through a COPY-fed staging
table, then the list entries; all rows or none, unless `skip_invalid`. It first takes the batch's advisory lock,
which lives exactly as long as that transaction. Part of the customer lists (geo_core.customers.lists re-exports
the public names).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, text, update
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.auth.service import audit_event
from geo_core.customers.list_batches import LOCK_CLASS, batch_table, get_batch, store_validation
from geo_core.customers.list_templates import TemplateSpec, value_of
from geo_core.customers.list_validation import MAX_STORED_ERRORS, RowResult, validate_rows
from geo_core.customers.lists_models import CustomerImportBatch, ImportStatus
from geo_core.customers.service import SENSITIVE, Keys
from geo_core.db import elevated
from geo_core.grids.spatial import point_cell
from geo_core.scope import Principal
from geo_core.users.job_actor import acting_as, load_job_actor

CHUNK = 5_000


def load_actor(session: Session, user_id: int) -> Principal:
    """The importer as a principal (current roles and scope); he must still be active and hold list:edit."""
    return load_job_actor(session, user_id, permission="list:edit", inactive="导入人账户不存在或已停用",
                          inactive_code="IMPORTER_INACTIVE", denied="导入人已没有导入名单的权限")


def mark_running(session: Session, batch_id: int, job_id: str | None) -> None:
    session.execute(update(CustomerImportBatch).where(CustomerImportBatch.id == batch_id).values(
        status=ImportStatus.running, job_id=job_id, started_at=func.now(), finished_at=None, error=None))


def mark_failed(session: Session, batch_id: int, message: str) -> None:
    session.execute(update(CustomerImportBatch).where(
        CustomerImportBatch.id == batch_id, CustomerImportBatch.status != ImportStatus.done
    ).values(status=ImportStatus.failed, error=message[:1000], finished_at=func.now()))


Progress = Callable[[str, int, int], None]


def import_batch(session: Session, keys: Keys, batch_id: int, *, skip_invalid: bool,
                 on_running: Callable[[], None], on_progress: Progress) -> dict[str, Any]:
    """Validate and write a batch in `session`'s one transaction (an elevated job session); nothing commits here.

    The advisory lock taken first lives exactly as long as this transaction: it keeps a second job off the batch
    and tells `refresh_liveness` whether a 'running' batch still has a live importer."""
    if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:c, :b)"), {"c": LOCK_CLASS, "b": batch_id}):
        return {"batch_id": batch_id, "status": "busy"}
    batch = get_batch(session, batch_id)
    if batch.status is ImportStatus.done:
        return batch_summary(batch)
    actor = load_actor(session, batch.importer_user_id)
    on_running()  # committed apart, so everyone sees 'running' while this transaction works
    with acting_as(session, actor):
        on_progress("validate", 0, batch.total_rows)
        validation = validate_rows(session, actor, keys, TemplateSpec.from_snapshot(batch.template_snapshot),
                                   batch_table(session, keys, batch))
        store_validation(batch, validation)
        if validation.invalid and not skip_invalid:
            batch.status, batch.finished_at = ImportStatus.rejected, func.now()
            batch.error = f"名单有 {len(validation.invalid)} 行错误，未写入任何数据"
        else:
            created = write_rows(session, keys, actor, batch, validation.valid, on_progress)
            skipped = validation.invalid
            batch.status, batch.finished_at, batch.error = ImportStatus.done, func.now(), None
            batch.created_rows, batch.skipped_rows = created, len(skipped)
            batch.report = {"skipped": [{"row": r.row_no, "errors": r.errors} for r in skipped[:MAX_STORED_ERRORS]],
                            "skipped_truncated": len(skipped) > MAX_STORED_ERRORS}
        session.flush()
    session.refresh(batch)
    return batch_summary(batch)


def batch_summary(batch: CustomerImportBatch) -> dict[str, Any]:
    return {"batch_id": batch.id, "status": value_of(batch.status), "total_rows": batch.total_rows,
            "valid_rows": batch.valid_rows, "invalid_rows": batch.invalid_rows, "matched_rows": batch.matched_rows,
            "created_rows": batch.created_rows, "skipped_rows": batch.skipped_rows}


STAGE_COLUMNS = ("row_no", "customer_id", "matched", "extra", "kind", "category", "name", "customer_no",
                 "profile_type", "gender", "birth_date", "industry", "id_number_enc", "id_number_bidx",
                 "id_number_mask", "uscc_enc", "uscc_bidx", "uscc_mask", "phone_enc", "phone_bidx", "phone_mask",
                 "address", "lon", "lat", "h3_r10", "owner_user_id", "org_id")
STAGE_DDL = """
    CREATE TEMP TABLE gm_list_stage (
      row_no integer PRIMARY KEY, customer_id integer NOT NULL, matched boolean NOT NULL, extra jsonb,
      kind text, category text, name text, customer_no text, profile_type text, gender text, birth_date date,
      industry text, id_number_enc bytea, id_number_bidx text, id_number_mask text, uscc_enc bytea, uscc_bidx text,
      uscc_mask text, phone_enc bytea, phone_bidx text, phone_mask text, address text, lon float8, lat float8,
      h3_r10 bigint, owner_user_id integer, org_id integer, grid_id integer
    ) ON COMMIT DROP"""
# the finest active physical grid of each new point, from H3 candidates (as geo_core.grids.placement does), in
# steps through analysed temp tables: one statement over RLS-filtered `grids` can be misestimated into a cross join
PLACE_SQL = (
    "DROP TABLE IF EXISTS gm_list_cand, gm_list_grids",
    """CREATE TEMP TABLE gm_list_cand ON COMMIT DROP AS
       SELECT s.row_no, s.lon, s.lat, h.grid_id, h.is_interior
       FROM gm_list_stage s
       CROSS JOIN LATERAL (VALUES (s.h3_r10, 10), (gm_h3_parent(s.h3_r10, 9), 9),
                                  (gm_h3_parent(s.h3_r10, 8), 8)) c(cell, res)
       JOIN grid_h3 h ON h.cell = c.cell AND h.res = c.res
       WHERE NOT s.matched AND s.h3_r10 IS NOT NULL""",
    """CREATE TEMP TABLE gm_list_grids ON COMMIT DROP AS
       SELECT id, geom, nlevel(path) AS depth, area_m2 FROM grids
       WHERE kind = 'physical' AND status = 'active' AND id IN (SELECT grid_id FROM gm_list_cand)""",
    "ANALYZE gm_list_cand",
    "ANALYZE gm_list_grids",
    """UPDATE gm_list_stage s SET grid_id = p.grid_id FROM (
         SELECT DISTINCT ON (c.row_no) c.row_no, g.id AS grid_id
         FROM gm_list_cand c JOIN gm_list_grids g ON g.id = c.grid_id
         WHERE c.is_interior OR ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326))
         ORDER BY c.row_no, g.depth DESC, g.area_m2
       ) p WHERE s.row_no = p.row_no""",
)
INSERT_CUSTOMERS_SQL = """
    INSERT INTO customers (id, kind, category, name, customer_no, profile_type, gender, birth_date, industry,
      id_number_enc, id_number_bidx, id_number_mask, uscc_enc, uscc_bidx, uscc_mask, phone_enc, phone_bidx,
      phone_mask, address, geom, h3_r10, location_source, grid_id, owner_user_id, org_id, status, created_by,
      updated_by)
    SELECT customer_id, kind::customer_kind, category::customer_category, name, customer_no,
      profile_type::profile_type, gender, birth_date, industry, id_number_enc, id_number_bidx, id_number_mask,
      uscc_enc, uscc_bidx, uscc_mask, phone_enc, phone_bidx, phone_mask, address,
      CASE WHEN lon IS NOT NULL THEN ST_SetSRID(ST_MakePoint(lon, lat), 4326) END, h3_r10,
      CASE WHEN lon IS NOT NULL THEN 'imported'::location_source END, grid_id, owner_user_id, org_id, 'active',
      :actor, :actor
    FROM gm_list_stage WHERE NOT matched ORDER BY row_no"""
INSERT_ENTRIES_SQL = """
    INSERT INTO customer_list_entries (batch_id, row_no, customer_id, matched, extra)
    SELECT :batch, row_no, customer_id, matched, coalesce(extra, '{}'::jsonb) FROM gm_list_stage ORDER BY row_no"""


def write_rows(session: Session, keys: Keys, actor: Principal, batch: CustomerImportBatch, rows: list[RowResult],
               on_progress: Progress) -> int:
    """Stage rows with COPY (identifiers encrypted here), place them in grids, insert customers and entries.

    Runs in the caller's transaction under the importer's scope: RLS checks every new customer's org/owner."""
    new = [r for r in rows if r.customer_id is None]
    ids_ = session.scalars(text("SELECT nextval('customers_id_seq') FROM generate_series(1, :n)"),
                           {"n": len(new)}).all() if new else []
    defaults = {"category": "potential", "profile_type": batch.template_snapshot.get("profile_type")}
    session.execute(text("DROP TABLE IF EXISTS gm_list_stage"))
    session.execute(text(STAGE_DDL))
    new_ids = dict(zip((r.row_no for r in new), ids_, strict=True))
    raw = session.connection().connection.driver_connection
    on_progress("write", 0, len(rows))
    with raw.cursor() as cursor, cursor.copy(f"COPY gm_list_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
        for start in range(0, len(rows), CHUNK):
            for row in rows[start:start + CHUNK]:
                copy.write_row(_stage_row(keys, defaults, row, new_ids.get(row.row_no)))
            on_progress("write", min(start + CHUNK, len(rows)), len(rows))
    on_progress("commit", len(rows), len(rows))
    session.execute(text("ANALYZE gm_list_stage"))
    with elevated(session, reason="customer list: place new customers in grids", actor_id=actor.user_id):
        for statement in PLACE_SQL:  # grids of other orgs count too
            session.execute(text(statement))
    # one audit row per statement (insert_bulk, with the job id) plus an import event naming the batch: a
    # row-by-row audit of 100,000 new customers would cost more than the rest of the import (docs/CUSTOMER_LISTS.md);
    # which customers a batch created stays in customer_list_entries (matched = false) and customers.created_by
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    session.execute(text(INSERT_CUSTOMERS_SQL), {"actor": actor.user_id})
    session.execute(text(INSERT_ENTRIES_SQL), {"batch": batch.id})
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    audit_event(session, "import", "customer_import_batches", batch.id,
                {"created": len(new), "matched": len(rows) - len(new), "template": batch.template_snapshot["name"]})
    return len(new)


def _stage_row(keys: Keys, defaults: dict[str, Any], row: RowResult, new_id: int | None) -> tuple[Any, ...]:
    extra = json.dumps(row.extra, ensure_ascii=False) if row.extra else None
    if new_id is None:  # matched: only the list entry is written
        return (row.row_no, row.customer_id, True, extra) + (None,) * (len(STAGE_COLUMNS) - 4)
    d = row.data
    sealed: list[Any] = []
    for column in ("id_number", "uscc", "phone"):
        value = d.get(column)
        if value is None:
            sealed += [None, None, None]
            continue
        _, masker, purpose, _ = SENSITIVE[column]
        sealed += [crypto.sm4_encrypt(value, keys.sm4, aad=purpose.encode()), d[f"{column}_bidx"], masker(value)]
    lon, lat = d.get("lon"), d.get("lat")
    return (row.row_no, new_id, False, extra, d["kind"], d.get("category", defaults["category"]), d["name"],
            d.get("customer_no"), d.get("profile_type", defaults["profile_type"]), d.get("gender"),
            d.get("birth_date"), d.get("industry"), *sealed, d.get("address"), lon, lat,
            point_cell(lon, lat) if lon is not None else None, d["owner_user_id"], d["org_id"])
