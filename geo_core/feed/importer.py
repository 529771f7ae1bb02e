"""Import one business day of the big-data platform's feed, set-based and idempotent.

The validated rows are COPYed into temporary tables; customers are matched by customer number, then by the
blind index of the ID number / credit code (potential customers become formal); then one statement per
table inserts what is new and updates only rows whose values differ (`IS DISTINCT FROM`), so re-running
the same day changes nothing and the audit triggers see no writes. Accounts and loans of a listed customer
that are missing from the day's files are deleted (the files are complete for the customers they list).
Everything runs in the caller's transaction: any error leaves nothing behind.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.customers import identifiers as ids
from geo_core.errors import DomainError
from geo_core.feed.files import FeedDay, day_of, read_feed
from geo_core.feed.models import FeedRun, FeedRunStatus
from geo_core.orgs.models import Org
from geo_core.users.models import User

MASKS = {"id_number": ids.mask_id_number, "uscc": ids.mask_uscc, "phone": ids.mask_phone}
LOCK_KEY = 0x47_4D_46_45  # "GMFE": one feed import at a time


class FeedRejected(DomainError):
    """Rows failed validation: nothing was written; `errors` lists file, line, field and message."""

    status = 422
    code = "FEED_REJECTED"


@dataclass(frozen=True)
class FeedKeys:
    sm4: str
    blind: str


@dataclass(frozen=True)
class FeedResult:
    run_id: int
    status: str  # done | unchanged (same files as an earlier successful run of the day: nothing to do)
    counts: dict[str, Any]
    checksum: str


TMP_SQL = """
CREATE TEMP TABLE tmp_fc (line int, customer_no text, kind customer_kind, name text,
  id_number_enc bytea, id_number_bidx text, id_number_mask text, uscc_enc bytea, uscc_bidx text, uscc_mask text,
  phone_enc bytea, phone_bidx text, phone_mask text, birth_date date, gender text, address text, org_id int,
  owner_user_id int, profile_type profile_type, industry text, credit_limit numeric(18,2), deposit numeric(18,2),
  loan numeric(18,2), overdue numeric(18,2), products varchar(32)[], customer_id int) ON COMMIT DROP;
CREATE TEMP TABLE tmp_fa (line int, account_no text, customer_no text, product_code text, account_type text,
  balance numeric(18,2), currency text, opened_on date, status text) ON COMMIT DROP;
CREATE TEMP TABLE tmp_fl (line int, loan_no text, customer_no text, product_code text, principal numeric(18,2),
  balance numeric(18,2), due_date date, overdue_amount numeric(18,2), overdue_days int, status text) ON COMMIT DROP
"""
FC_COLS = ("line", "customer_no", "kind", "name", "id_number_enc", "id_number_bidx", "id_number_mask", "uscc_enc",
           "uscc_bidx", "uscc_mask", "phone_enc", "phone_bidx", "phone_mask", "birth_date", "gender", "address",
           "org_id", "owner_user_id", "profile_type", "industry", "credit_limit", "deposit", "loan", "overdue",
           "products")
FA_COLS = ("line", "account_no", "customer_no", "product_code", "account_type", "balance", "currency", "opened_on",
           "status")
FL_COLS = ("line", "loan_no", "customer_no", "product_code", "principal", "balance", "due_date", "overdue_amount",
           "overdue_days", "status")

# customers: the value each column takes from the feed row t (c = the stored row); a row is written only
# when one of these differs from what is stored
HOLDINGS = ("credit_limit", "deposit_balance", "loan_balance", "overdue_amount", "products")
CUSTOMER_SET = {
    "name": "t.name",
    "category": "'formal'::customer_category",
    "customer_no": "t.customer_no",
    "status": "'active'::customer_status",
    "address": "coalesce(t.address, c.address)",
    "org_id": "t.org_id",
    "owner_user_id": "coalesce(t.owner_user_id, c.owner_user_id)",
    "profile_type": "coalesce(t.profile_type, c.profile_type)",
    "industry": "coalesce(t.industry, c.industry)",
    "credit_limit": "t.credit_limit",
    "deposit_balance": "t.deposit",
    "loan_balance": "t.loan",
    "overdue_amount": "t.overdue",
    "products": "t.products",
    "birth_date": "CASE WHEN t.id_number_bidx IS DISTINCT FROM c.id_number_bidx AND t.id_number_bidx IS NOT NULL "
                  "THEN t.birth_date ELSE c.birth_date END",
    "gender": "CASE WHEN t.id_number_bidx IS DISTINCT FROM c.id_number_bidx AND t.id_number_bidx IS NOT NULL "
              "THEN t.gender ELSE c.gender END",
}
for _f in ("id_number", "uscc", "phone"):
    # ciphertext is re-written only when the identifier itself changed (its blind index differs): SM4-GCM uses a
    # fresh nonce, so re-encrypting the same value would be a needless write
    CUSTOMER_SET[f"{_f}_enc"] = (f"CASE WHEN t.{_f}_bidx IS NOT NULL AND (t.{_f}_bidx IS DISTINCT FROM c.{_f}_bidx "
                                 f"OR c.{_f}_enc IS NULL) THEN t.{_f}_enc ELSE c.{_f}_enc END")
    CUSTOMER_SET[f"{_f}_bidx"] = f"coalesce(t.{_f}_bidx, c.{_f}_bidx)"
    CUSTOMER_SET[f"{_f}_mask"] = f"coalesce(t.{_f}_mask, c.{_f}_mask)"


def _copy(session: Session, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _run_all(session: Session, sql: str) -> None:
    for statement in sql.split(";"):
        if statement.strip():
            session.execute(text(statement))


def _indexed(keys: FeedKeys, field: str, value: str | None) -> tuple[None, str | None, str | None]:
    """(ciphertext placeholder, blind index, mask): ciphertext is made later, only where it must be written."""
    if not value:
        return None, None, None
    return None, crypto.blind_index(value, keys.blind, field), MASKS[field](value)


ENC_FIELDS = ("id_number", "uscc", "phone")
NEEDS_ENC_SQL = """
SELECT t.line, {flags} FROM tmp_fc t LEFT JOIN customers c ON c.id = t.customer_id
WHERE {any_flag}
"""


def _encrypt_needed(session: Session, keys: FeedKeys, feed: FeedDay) -> None:
    """SM4-encrypt only the identifiers that will be written (new customers, changed identifiers): SM4-GCM has a
    fresh nonce, so unchanged ones keep their stored ciphertext and cost nothing."""
    flags = [f"(t.{f}_bidx IS NOT NULL AND (c.id IS NULL OR c.{f}_bidx IS DISTINCT FROM t.{f}_bidx "
             f"OR c.{f}_enc IS NULL))" for f in ENC_FIELDS]
    rows = session.execute(text(NEEDS_ENC_SQL.format(flags=", ".join(flags), any_flag=" OR ".join(flags)))).all()
    if not rows:
        return
    by_line = {c["_line"]: c for c in feed.customers}
    out = []
    for line, *needed in rows:
        c = by_line[line]
        out.append((line, *(crypto.sm4_encrypt(c[f], keys.sm4, aad=f.encode()) if need else None
                            for f, need in zip(ENC_FIELDS, needed, strict=True))))
    _run_all(session, "CREATE TEMP TABLE tmp_fenc (line int PRIMARY KEY, id_number_enc bytea, uscc_enc bytea, "
                      "phone_enc bytea) ON COMMIT DROP")
    _copy(session, "tmp_fenc", ("line", "id_number_enc", "uscc_enc", "phone_enc"), out)
    session.execute(text("UPDATE tmp_fc t SET id_number_enc = e.id_number_enc, uscc_enc = e.uscc_enc, "
                         "phone_enc = e.phone_enc FROM tmp_fenc e WHERE e.line = t.line"))


def _holdings(feed: FeedDay) -> dict[str, tuple[Decimal, Decimal, Decimal, list[str]]]:
    """Per customer: CNY deposits (open deposit accounts), loan balance and overdue (unsettled), products held."""
    deposit: dict[str, Decimal] = defaultdict(Decimal)
    loan: dict[str, Decimal] = defaultdict(Decimal)
    overdue: dict[str, Decimal] = defaultdict(Decimal)
    products: dict[str, set[str]] = defaultdict(set)
    for a in feed.accounts:
        if a["status"] == "closed":
            continue
        products[a["customer_no"]].add(a["product_code"])
        if a["account_type"] == "deposit" and a["currency"] == "CNY":
            deposit[a["customer_no"]] += a["balance"]
    for ln in feed.loans:
        if ln["status"] == "settled":
            continue
        products[ln["customer_no"]].add(ln["product_code"])
        loan[ln["customer_no"]] += ln["balance"]
        overdue[ln["customer_no"]] += ln["overdue_amount"]
    return {c["customer_no"]: (deposit[c["customer_no"]], loan[c["customer_no"]], overdue[c["customer_no"]],
                               sorted(products[c["customer_no"]])) for c in feed.customers}


def _resolve(session: Session, feed: FeedDay) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Org codes -> ids and manager employee numbers -> (user id, org id); unknown ones are row errors."""
    codes = {c["org_code"] for c in feed.customers}
    emps = {c["manager_employee_no"] for c in feed.customers if c["manager_employee_no"]}
    orgs = dict(session.execute(select(Org.code, Org.id).where(Org.code.in_(codes))).all())
    users = {e: (u, o) for e, u, o in session.execute(
        select(User.employee_no, User.id, User.org_id).where(User.employee_no.in_(emps)))}
    for c in feed.customers:
        if c["org_code"] not in orgs:
            feed.error("customers.csv", c["_line"], "org_code", f"机构号不存在：{c['org_code']}")
        if c["manager_employee_no"] and c["manager_employee_no"] not in users:
            feed.error("customers.csv", c["_line"], "manager_employee_no",
                       f"客户经理工号不存在：{c['manager_employee_no']}")
    return orgs, users


def _load(session: Session, keys: FeedKeys, feed: FeedDay, orgs: dict[str, int],
          users: dict[str, tuple[int, int]]) -> None:
    _run_all(session, TMP_SQL)
    holdings = _holdings(feed)
    rows = []
    for c in feed.customers:
        id_enc = _indexed(keys, "id_number", c["id_number"])
        uscc_enc = _indexed(keys, "uscc", c["uscc"])
        phone_enc = _indexed(keys, "phone", c["phone"])
        person_id = c["id_number"]
        owner = users.get(c["manager_employee_no"] or "")
        rows.append((c["_line"], c["customer_no"], c["kind"], c["name"], *id_enc, *uscc_enc, *phone_enc,
                     ids.birth_date_of(person_id) if person_id else None,
                     ids.gender_of(person_id) if person_id else None, c["address"], orgs[c["org_code"]],
                     owner[0] if owner else None, c["profile_type"], c["industry"], c["credit_limit"],
                     *holdings[c["customer_no"]]))
    _copy(session, "tmp_fc", FC_COLS, rows)
    _copy(session, "tmp_fa", FA_COLS, [(a["_line"], *(a[k] for k in FA_COLS[1:])) for a in feed.accounts])
    _copy(session, "tmp_fl", FL_COLS, [(ln["_line"], *(ln[k] for k in FL_COLS[1:])) for ln in feed.loans])
    _run_all(session, "CREATE UNIQUE INDEX ON tmp_fc (customer_no); CREATE UNIQUE INDEX ON tmp_fa (account_no);"
                      "CREATE UNIQUE INDEX ON tmp_fl (loan_no); ANALYZE tmp_fc; ANALYZE tmp_fa; ANALYZE tmp_fl")


MATCH_SQL = """
UPDATE tmp_fc t SET customer_id = c.id FROM customers c WHERE c.customer_no = t.customer_no;
UPDATE tmp_fc t SET customer_id = c.id FROM customers c
 WHERE t.customer_id IS NULL AND t.id_number_bidx IS NOT NULL AND c.id_number_bidx = t.id_number_bidx;
UPDATE tmp_fc t SET customer_id = c.id FROM customers c
 WHERE t.customer_id IS NULL AND t.uscc_bidx IS NOT NULL AND c.uscc_bidx = t.uscc_bidx
"""
CONFLICT_SQL = """
SELECT t.line, 'customer_no', '证件号已属于另一客户号 ' || c.customer_no
  FROM tmp_fc t JOIN customers c ON c.id = t.customer_id
 WHERE c.customer_no IS NOT NULL AND c.customer_no <> t.customer_no
UNION ALL
SELECT t.line, 'kind', '客户类型与系统中的客户不一致'
  FROM tmp_fc t JOIN customers c ON c.id = t.customer_id WHERE c.kind <> t.kind
UNION ALL
SELECT t.line, 'id_number', '身份证号已属于另一客户' FROM tmp_fc t JOIN customers c
  ON c.id_number_bidx = t.id_number_bidx AND c.id IS DISTINCT FROM t.customer_id
UNION ALL
SELECT t.line, 'uscc', '统一社会信用代码已属于另一客户' FROM tmp_fc t JOIN customers c
  ON c.uscc_bidx = t.uscc_bidx AND c.id IS DISTINCT FROM t.customer_id
UNION ALL
SELECT t.line, 'customer_no', '与第 ' || min(o.line) || ' 行是同一客户' FROM tmp_fc t JOIN tmp_fc o
  ON o.customer_id = t.customer_id AND o.line < t.line GROUP BY t.line
ORDER BY 1
"""


def _counts(rows: list[Any], total: int) -> dict[str, int]:
    inserted = sum(1 for r in rows if r[0])
    return {"inserted": inserted, "updated": len(rows) - inserted, "unchanged": total - len(rows)}


def _write_customers(session: Session, day: date, actor_id: int | None, total: int) -> dict[str, int]:
    insert_cols = ("kind", "category", "name", "customer_no", "profile_type", "gender", "birth_date", "industry",
                   "id_number_enc", "id_number_bidx", "id_number_mask", "uscc_enc", "uscc_bidx", "uscc_mask",
                   "phone_enc", "phone_bidx", "phone_mask", "address", "org_id", "owner_user_id", "credit_limit",
                   "deposit_balance", "loan_balance", "overdue_amount", "products", "holdings_as_of", "created_by",
                   "updated_by")
    values = ("t.kind", "'formal'", "t.name", "t.customer_no", "t.profile_type", "t.gender", "t.birth_date",
              "t.industry", "t.id_number_enc", "t.id_number_bidx", "t.id_number_mask", "t.uscc_enc", "t.uscc_bidx",
              "t.uscc_mask", "t.phone_enc", "t.phone_bidx", "t.phone_mask", "t.address", "t.org_id",
              "t.owner_user_id", "t.credit_limit", "t.deposit", "t.loan", "t.overdue", "t.products", ":day", ":actor",
              ":actor")
    inserted = session.execute(text(f"""
        WITH ins AS (INSERT INTO customers ({', '.join(insert_cols)})
                     SELECT {', '.join(values)} FROM tmp_fc t WHERE t.customer_id IS NULL ORDER BY t.line
                     RETURNING id, customer_no)
        UPDATE tmp_fc t SET customer_id = ins.id FROM ins WHERE ins.customer_no = t.customer_no"""),
        {"day": day, "actor": actor_id}).rowcount
    new = ", ".join(CUSTOMER_SET.values())
    old = ", ".join(f"c.{k}" for k in CUSTOMER_SET)
    holdings_changed = (f"({', '.join(CUSTOMER_SET[k] for k in HOLDINGS)}) IS DISTINCT FROM "
                        f"({', '.join(f'c.{k}' for k in HOLDINGS)})")
    assignments = ", ".join(f"{k} = {v}" for k, v in CUSTOMER_SET.items())
    updated = session.execute(text(f"""
        UPDATE customers c SET {assignments},
               holdings_as_of = CASE WHEN {holdings_changed} OR c.holdings_as_of IS NULL THEN :day
                                     ELSE c.holdings_as_of END,
               updated_by = :actor, updated_at = now()
        FROM tmp_fc t WHERE c.id = t.customer_id
          AND (({new}) IS DISTINCT FROM ({old}) OR c.holdings_as_of IS NULL)"""),
        {"day": day, "actor": actor_id}).rowcount
    return {"inserted": inserted, "updated": updated, "unchanged": total - inserted - updated}


def _upsert(session: Session, table: str, key: str, columns: tuple[str, ...], source: str, day: date,
            total: int) -> dict[str, int]:
    cols = ", ".join(columns)
    rows = session.execute(text(f"""
        INSERT INTO {table} AS x ({key}, customer_id, {cols}, as_of)
        SELECT s.{key}, t.customer_id, {', '.join(f's.{c}' for c in columns)}, :day
        FROM {source} s JOIN tmp_fc t ON t.customer_no = s.customer_no
        ON CONFLICT ({key}) DO UPDATE SET customer_id = EXCLUDED.customer_id,
            {', '.join(f'{c} = EXCLUDED.{c}' for c in columns)}, as_of = EXCLUDED.as_of, updated_at = now()
        WHERE (x.customer_id, {', '.join(f'x.{c}' for c in columns)})
              IS DISTINCT FROM (EXCLUDED.customer_id, {', '.join(f'EXCLUDED.{c}' for c in columns)})
        RETURNING (xmax = 0)"""), {"day": day}).all()
    deleted = session.execute(text(f"""
        DELETE FROM {table} x
        WHERE x.customer_id IN (SELECT customer_id FROM tmp_fc)
          AND NOT EXISTS (SELECT 1 FROM {source} s WHERE s.{key} = x.{key})""")).rowcount
    return {**_counts(rows, total), "deleted": deleted}


def _snapshots(session: Session, day: date, total: int) -> dict[str, int]:
    """Per-customer day totals: derived from the checksummed files, so audited one row per statement."""
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    rows = session.execute(text("""
        INSERT INTO balance_snapshots AS s (customer_id, day, deposit_total, loan_total)
        SELECT customer_id, :day, deposit, loan FROM tmp_fc
        ON CONFLICT (customer_id, day) DO UPDATE SET deposit_total = EXCLUDED.deposit_total,
            loan_total = EXCLUDED.loan_total
        WHERE (s.deposit_total, s.loan_total) IS DISTINCT FROM (EXCLUDED.deposit_total, EXCLUDED.loan_total)
        RETURNING (xmax = 0)"""), {"day": day}).all()
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return _counts(rows, total)


def import_feed(session: Session, keys: FeedKeys, directory: Path, *, day: date | None = None,
                actor_id: int | None = None, job_id: str | None = None, force: bool = False) -> FeedResult:
    """Validate and import a day directory in the session's transaction (elevated by the caller)."""
    feed = read_feed(directory, day)
    if feed.errors:
        raise FeedRejected(f"数据校验未通过（{len(feed.errors)} 处错误），未写入任何数据", errors=feed.errors,
                           detail={"files": feed.manifest(), "day": feed.day.isoformat()})
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    previous = session.scalar(select(FeedRun).where(
        FeedRun.business_day == feed.day, FeedRun.status == FeedRunStatus.done,
        FeedRun.checksum == feed.checksum).order_by(FeedRun.id.desc()).limit(1))
    if previous is not None and not force:
        return FeedResult(previous.id, "unchanged", previous.counts, feed.checksum)
    orgs, users = _resolve(session, feed)
    if feed.errors:
        raise FeedRejected(f"数据校验未通过（{len(feed.errors)} 处错误），未写入任何数据", errors=feed.errors,
                           detail={"files": feed.manifest(), "day": feed.day.isoformat()})
    _load(session, keys, feed, orgs, users)
    _run_all(session, MATCH_SQL + "; CREATE INDEX ON tmp_fc (customer_id); ANALYZE tmp_fc")
    conflicts = session.execute(text(CONFLICT_SQL)).all()
    if conflicts:
        errors = [{"file": "customers.csv", "line": line, "field": f, "message": m} for line, f, m in conflicts]
        raise FeedRejected(f"数据校验未通过（{len(errors)} 处错误），未写入任何数据", errors=errors,
                           detail={"files": feed.manifest(), "day": feed.day.isoformat()})
    _encrypt_needed(session, keys, feed)
    now = datetime.now(UTC)
    run = FeedRun(business_day=feed.day, directory=str(directory), status=FeedRunStatus.running,
                  files=feed.manifest(), checksum=feed.checksum, requested_by=actor_id, job_id=job_id,
                  started_at=now, counts={}, errors=[])
    session.add(run)
    session.flush()
    n = len(feed.customers)
    counts = {"customers": _write_customers(session, feed.day, actor_id, n)}
    # every row now has its customer id: let the planner know before the joins on it
    _run_all(session, "ANALYZE tmp_fc")
    counts["customer_accounts"] = _upsert(
        session, "customer_accounts", "account_no",
        ("product_code", "account_type", "balance", "currency", "opened_on", "status"), "tmp_fa", feed.day,
        len(feed.accounts))
    counts["customer_loans"] = _upsert(
        session, "customer_loans", "loan_no",
        ("product_code", "principal", "balance", "due_date", "overdue_amount", "overdue_days", "status"), "tmp_fl",
        feed.day, len(feed.loans))
    counts["balance_snapshots"] = _snapshots(session, feed.day, n)
    run.counts, run.status, run.finished_at = counts, FeedRunStatus.done, datetime.now(UTC)
    session.flush()
    return FeedResult(run.id, "done", counts, feed.checksum)


def record_failure(session: Session, directory: str, day: date | None, error: DomainError | Exception,
                   actor_id: int | None, job_id: str | None, files: dict[str, Any] | None = None) -> int:
    """A failed run (its own transaction): what was wrong, per row where known. Nothing else was written."""
    errors = getattr(error, "errors", None) or [{"message": getattr(error, "message", error.__class__.__name__)}]
    detail = getattr(error, "detail", None) or {}
    if day is None and detail.get("day"):
        day = date.fromisoformat(detail["day"])
    if day is None:
        try:
            day = day_of(Path(directory))
        except ValueError:
            day = datetime.now(UTC).date()
    run = FeedRun(business_day=day, directory=directory[:500],
                  status=FeedRunStatus.failed, files=files or detail.get("files") or {}, counts={}, errors=errors,
                  requested_by=actor_id, job_id=job_id, started_at=datetime.now(UTC), finished_at=datetime.now(UTC))
    session.add(run)
    session.flush()
    return run.id
