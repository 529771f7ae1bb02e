"""Customer list batches (导入批次): upload, validate, preview, search, rename, delete, submit, saved entries.

An upload is stored SM4-sealed next to its batch; validation results are kept on the batch for the preview.
The import job holds an advisory lock (LOCK_CLASS, batch id) for as long as its transaction lives, so a batch left
"running" by a killed worker is recognisable (`refresh_liveness`). Part of the customer lists
(geo_core.customers.lists re-exports the public names).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.orm import Session

from geo_core import tabular
from geo_core.customers import identifiers as ids
from geo_core.customers.list_reader import map_header, read_table, seal, unseal
from geo_core.customers.list_templates import FieldSpec, TemplateSpec, get_template
from geo_core.customers.list_validation import MAX_STORED_ERRORS, Validation, validate_rows
from geo_core.customers.lists_models import CustomerImportBatch, CustomerImportFile, CustomerListEntry, ImportStatus
from geo_core.customers.service import Keys
from geo_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.scope import DataScope, Principal

LOCK_CLASS = 72_010  # pg advisory lock (LOCK_CLASS, batch id): held by the import transaction while it lives
OPEN_STATUSES = (ImportStatus.uploaded, ImportStatus.validated, ImportStatus.failed, ImportStatus.rejected)
KILLED = "导入进程意外退出，未写入任何数据；可重新提交"


def get_batch(session: Session, batch_id: int) -> CustomerImportBatch:
    batch = session.get(CustomerImportBatch, batch_id) if valid_id(batch_id) else None
    if batch is None:
        raise NotFound("导入批次不存在", code="IMPORT_BATCH_NOT_FOUND")
    return batch


def upload_batch(session: Session, actor: Principal, keys: Keys, *, template_id: int, name: str | None,
                 filename: str, data: bytes) -> CustomerImportBatch:
    """Store a list file's rows against a template (header checked, sealed); rows are checked by `validate_batch`."""
    spec = TemplateSpec.of(get_template(session, template_id))
    table = read_table(filename, data)
    map_header(spec, table[0][1])
    if len(table) < 2:
        raise tabular.reject("文件没有数据行")
    batch = CustomerImportBatch(
        name=(name or filename.rsplit(".", 1)[0]).strip()[:100] or "名单", template_id=template_id,
        template_snapshot=spec.snapshot(), importer_user_id=actor.user_id, org_id=actor.org_id,
        status=ImportStatus.uploaded, filename=filename[-255:], file_size=len(data),
        file_sha256=hashlib.sha256(data).hexdigest(), total_rows=len(table) - 1)
    session.add(batch)
    session.flush()
    session.add(CustomerImportFile(batch_id=batch.id, data_enc=seal(keys, table)))
    session.flush()
    return batch


def batch_table(session: Session, keys: Keys, batch: CustomerImportBatch) -> list[tuple[int, list[str]]]:
    blob = session.scalar(select(CustomerImportFile.data_enc).where(CustomerImportFile.batch_id == batch.id))
    if blob is None:
        raise NotFound("导入文件不存在", code="IMPORT_FILE_NOT_FOUND")
    return unseal(keys, blob)


def store_validation(batch: CustomerImportBatch, validation: Validation) -> None:
    invalid = len(validation.invalid)
    batch.total_rows = len(validation.rows)
    batch.invalid_rows, batch.valid_rows = invalid, len(validation.rows) - invalid
    batch.matched_rows = sum(1 for r in validation.valid if r.customer_id)
    batch.validation = validation.stored()
    batch.validated_at = func.now()


def validate_batch(session: Session, actor: Principal, keys: Keys, batch: CustomerImportBatch) -> Validation:
    if batch.status not in OPEN_STATUSES:
        raise Conflict("该批次已导入或正在导入", code="IMPORT_NOT_OPEN")
    spec = TemplateSpec.from_snapshot(batch.template_snapshot)
    validation = validate_rows(session, actor, keys, spec, batch_table(session, keys, batch))
    store_validation(batch, validation)
    batch.status = ImportStatus.validated
    session.flush()
    session.refresh(batch)
    return validation


def preview_batch(session: Session, actor: Principal, keys: Keys, batch_id: int, *, only: str = "all",
                  page: int = 1, page_size: int = 50, refresh: bool = False) -> dict[str, Any]:
    """Per-row, per-field errors and matches (validating first if needed); values shown masked and shortened."""
    batch = get_batch(session, batch_id)
    if batch.validation is None or (refresh and batch.status in OPEN_STATUSES):
        validate_batch(session, actor, keys, batch)
    stored = batch.validation or {}
    table = batch_table(session, keys, batch)
    columns, _ = map_header(TemplateSpec.from_snapshot(batch.template_snapshot), table[0][1])
    invalid, matched = set(stored["invalid"]), {m[0]: m[1:] for m in stored["matched"]}
    wanted = {"all": lambda n: True, "invalid": lambda n: n in invalid, "matched": lambda n: n in matched,
              "new": lambda n: n not in invalid and n not in matched}[only]
    selected = [(n, cells) for n, cells in table[1:] if wanted(n)]
    items = []
    for row_no, cells in selected[(page - 1) * page_size: page * page_size]:
        status = "invalid" if row_no in invalid else "matched" if row_no in matched else "new"
        errors = stored["errors"].get(str(row_no)) if status == "invalid" else None
        if status == "invalid" and errors is None:
            errors = {"_row": [f"错误行过多，仅保留前 {MAX_STORED_ERRORS} 行的错误明细"]}
        customer_id, how = matched.get(row_no, (None, None))
        items.append({"row": row_no, "status": status, "errors": errors, "customer_id": customer_id,
                      "matched_by": how, "values": _display(columns, cells)})
    return {"batch": batch, "ignored_columns": stored.get("ignored_columns", []), "items": items,
            "total": len(selected), "page": page, "page_size": page_size}


def _display(columns: list[tuple[int, FieldSpec]], cells: list[str]) -> dict[str, str]:
    """Cell text for the preview: identifiers masked, long cells cut."""
    out = {}
    for index, spec in columns:
        raw = cells[index].strip() if index < len(cells) else ""
        if spec.maps_to == "uscc":
            raw = ids.mask(raw, 4, 4) if raw else raw
        elif spec.maps_to in ("id_number", "phone"):
            raw = ids.mask(raw, 3, 4) if raw else raw
        out[spec.key] = raw if len(raw) <= 60 else raw[:60] + f"…（共 {len(raw)} 字）"
    return out


def select_batches(*, created_from: datetime | None = None, created_to: datetime | None = None,
                   importer_user_id: int | None = None, template_id: int | None = None, q: str | None = None,
                   status: str | None = None) -> Select[Any]:
    """Batches in scope, newest first, by time range, importer, template, name and status."""
    stmt = select(CustomerImportBatch).order_by(CustomerImportBatch.created_at.desc(), CustomerImportBatch.id.desc())
    if created_from is not None:
        stmt = stmt.where(CustomerImportBatch.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(CustomerImportBatch.created_at < created_to)
    for column, value in ((CustomerImportBatch.importer_user_id, importer_user_id),
                          (CustomerImportBatch.template_id, template_id), (CustomerImportBatch.status, status)):
        if value is not None:
            stmt = stmt.where(column == value)
    if q:
        stmt = stmt.where(CustomerImportBatch.name.ilike(like_pattern(q)))
    return stmt


def list_batches(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Any]:
    result = paginate(session, select_batches(**filters), page, page_size)
    for batch in result.items:
        refresh_liveness(session, batch)
    return result


def rename_batch(session: Session, batch_id: int, name: str) -> CustomerImportBatch:
    batch = get_batch(session, batch_id)
    if not name.strip():
        raise ValidationFailed.on("name", "名称不能为空")
    batch.name = name.strip()[:100]
    session.flush()
    return batch


def delete_batch(session: Session, batch_id: int) -> None:
    batch = get_batch(session, batch_id)
    if batch.submitted_at is not None or batch.status not in (ImportStatus.uploaded, ImportStatus.validated):
        raise Conflict("已提交过的批次不能删除", code="IMPORT_SUBMITTED")
    session.delete(batch)
    session.flush()


def refresh_liveness(session: Session, batch: CustomerImportBatch) -> CustomerImportBatch:
    """A batch 'running' whose import transaction is gone (worker killed: no advisory lock) is marked failed."""
    if batch.status is not ImportStatus.running:
        return batch
    if not session.scalar(text("SELECT pg_try_advisory_lock(:c, :b)"), {"c": LOCK_CLASS, "b": batch.id}):
        return batch  # the import transaction is alive
    try:
        session.execute(update(CustomerImportBatch)
                        .where(CustomerImportBatch.id == batch.id, CustomerImportBatch.status == ImportStatus.running)
                        .values(status=ImportStatus.failed, error=KILLED, finished_at=func.now()))
    finally:
        session.execute(text("SELECT pg_advisory_unlock(:c, :b)"), {"c": LOCK_CLASS, "b": batch.id})
    session.refresh(batch)
    return batch


def submit_batch(session: Session, actor: Principal, keys: Keys, batch_id: int, *,
                 skip_invalid: bool) -> CustomerImportBatch:
    """Check the batch may be imported now (by its importer); the caller enqueues the job."""
    batch = refresh_liveness(session, get_batch(session, batch_id))
    if batch.importer_user_id != actor.user_id and actor.scope is not DataScope.all:
        raise PermissionDenied("只有导入人可以提交该批次", code="IMPORT_NOT_IMPORTER")
    if batch.status is ImportStatus.running:
        raise Conflict("该批次正在导入", code="IMPORT_RUNNING")
    if batch.status is ImportStatus.done:
        raise Conflict("该批次已导入", code="IMPORT_DONE")
    if batch.validation is None or batch.status is ImportStatus.uploaded:
        validate_batch(session, actor, keys, batch)
    if batch.invalid_rows and not skip_invalid:
        raise ValidationFailed(f"名单有 {batch.invalid_rows} 行错误：请修正后重新上传，或选择跳过错误行",
                               code="IMPORT_HAS_ERRORS", detail={"invalid_rows": batch.invalid_rows})
    if not batch.valid_rows:
        raise ValidationFailed("没有可导入的行", code="IMPORT_EMPTY")
    batch.skip_invalid, batch.submitted_at, batch.error = skip_invalid, func.now(), None
    session.flush()
    session.refresh(batch)
    return batch


def set_job(session: Session, batch: CustomerImportBatch, job_id: str) -> None:
    batch.job_id = job_id
    session.flush()


ENTRY_SQL = text("""
    SELECT e.row_no, e.matched, e.extra, c.id, c.name, c.kind::text, c.category::text, c.id_number_mask,
           c.uscc_mask, c.phone_mask, c.address, c.grid_id, c.owner_user_id, c.org_id
    FROM customer_list_entries e LEFT JOIN customers c ON c.id = e.customer_id
    WHERE e.batch_id = :b AND (CAST(:m AS boolean) IS NULL OR e.matched = CAST(:m AS boolean))
    ORDER BY e.row_no LIMIT :limit OFFSET :offset""")


def list_entries(session: Session, batch_id: int, *, matched: bool | None = None, page: int = 1,
                 page_size: int = 50) -> Page[dict[str, Any]]:
    """The saved list's rows with their customers (masks only; customers out of scope show no details)."""
    batch = get_batch(session, batch_id)
    total = session.scalar(select(func.count()).select_from(CustomerListEntry).where(
        CustomerListEntry.batch_id == batch.id, *([CustomerListEntry.matched == matched] if matched is not None
                                                  else [])))
    rows = session.execute(ENTRY_SQL, {"b": batch.id, "m": matched, "limit": page_size,
                                       "offset": (page - 1) * page_size}).mappings()
    items = [{**{k: v for k, v in r.items() if k not in ("id",)}, "customer_id": r["id"]} for r in rows]
    return Page(items, total or 0, page, page_size)
