"""Merge two customer archives (客户合并) and undo a merge exactly.

`merge_customers` runs in the caller's transaction:
1. both customers must be visible to the caller (RLS; otherwise 404), active or closed, of the same kind;
2. full row images of both are taken (`row_image`: to_jsonb with geometry columns as hex EWKB, so a
   restore is byte-identical);
3. the merged row gives up its unique identifiers (ID number, credit code, customer number), becomes
   status 'merged' with merged_into = survivor; the survivor takes the chosen field groups from the
   merged row's image;
4. every reference to the merged customer is moved to the survivor. The referencing columns are found in
   the catalog at merge time (pg_constraint: single-column foreign keys to customers.id), so tables
   added by later migrations are covered. A row that would collide with a unique constraint (the
   survivor already has that tag, that list row ...) is deleted instead and its full image kept.
   References are moved in an elevated (audited) context: rows the caller cannot see must not be left
   pointing at a merged archive;
5. a customer_merges row records the choices, before/after images and every moved key / deleted image.

`undo_merge` first checks that nothing changed since: both customers still equal their after-images,
every moved row still points at the survivor, every deleted row can come back (no new row took its unique
key). Any difference refuses the undo with 409 and the list of conflicts (a later edit would otherwise be
silently lost). Then references move back, deleted rows are re-inserted and both rows are restored from
their before-images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geo_core.customers.models import Customer, CustomerKind, CustomerStatus
from geo_core.customers.ownership import ownership_reason
from geo_core.db import elevated
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.paging import valid_id
from geo_core.scope import Principal

# field groups the caller may take from the merged customer (default: the survivor's)
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "customer_no": ("customer_no",),
    "category": ("category",),
    "profile_type": ("profile_type",),
    "industry": ("industry",),
    "id_number": ("id_number_enc", "id_number_bidx", "id_number_mask", "birth_date", "gender"),
    "uscc": ("uscc_enc", "uscc_bidx", "uscc_mask"),
    "phone": ("phone_enc", "phone_bidx", "phone_mask"),
    "address": ("address",),
    "location": ("geom", "h3_r10", "location_source", "grid_id", "grid_override_by", "grid_override_reason"),
    "owner": ("owner_user_id", "org_id"),
    "holdings": ("deposit_balance", "loan_balance", "credit_limit", "overdue_amount", "products", "holdings_as_of"),
}
UNIQUE_ON_MERGED = ("id_number_enc", "id_number_bidx", "id_number_mask", "uscc_enc", "uscc_bidx", "uscc_mask",
                    "customer_no")
# references that belong to the archive itself, not to the customer it describes
NOT_MOVED = {("customers", "merged_into"), ("customer_merges", "survivor_id"), ("customer_merges", "merged_id"),
             ("duplicate_candidates", "customer_a_id"), ("duplicate_candidates", "customer_b_id"),
             ("customer_ownerships", "customer_id"), ("customer_match_keys", "customer_id")}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Reference:
    schema: str
    table: str
    column: str
    key: tuple[str, ...]  # primary key columns; () = the table has none (rows matched by full image)
    spatial: tuple[str, ...]  # geometry/geography columns (imaged as hex EWKB)

    @property
    def qualified(self) -> str:
        return f"{_q(self.schema)}.{_q(self.table)}"

    def key_sql(self, alias: str = "t") -> str:
        if not self.key:
            return image_sql(alias, self.spatial)
        return "jsonb_build_object(" + ", ".join(f"'{k}', {alias}.{_q(k)}" for k in self.key) + ")"


def image_sql(alias: str, spatial: tuple[str, ...]) -> str:
    extra = "".join(f" || jsonb_build_object('{c}', {alias}.{_q(c)}::text)" for c in spatial)
    return f"to_jsonb({alias}){extra}"


def discover_references(session: Session) -> list[Reference]:
    """Single-column foreign keys to customers.id, read from the catalog now (later tables included)."""
    rows = session.execute(text("""
        SELECT n.nspname, r.relname, a.attname,
               coalesce((SELECT array_agg(ka.attname ORDER BY array_position(i.indkey::int2[], ka.attnum))
                         FROM pg_index i JOIN pg_attribute ka ON ka.attrelid = i.indrelid
                              AND ka.attnum = ANY (i.indkey::int2[])
                         WHERE i.indrelid = r.oid AND i.indisprimary), '{}'),
               coalesce((SELECT array_agg(ga.attname) FROM pg_attribute ga JOIN pg_type gt ON gt.oid = ga.atttypid
                         WHERE ga.attrelid = r.oid AND ga.attnum > 0 AND NOT ga.attisdropped
                               AND gt.typname IN ('geometry', 'geography')), '{}')
        FROM pg_constraint con
        JOIN pg_class r ON r.oid = con.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
        WHERE con.contype = 'f' AND con.confrelid = 'customers'::regclass AND cardinality(con.conkey) = 1
        ORDER BY r.relname, a.attname""")).all()
    return [Reference(s, t, c, tuple(k), tuple(g)) for s, t, c, k, g in rows if (t, c) not in NOT_MOVED]


def row_image(session: Session, table: str, where: str, params: dict[str, Any],
              spatial: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return list(session.scalars(text(f"SELECT {image_sql('t', spatial)} FROM {table} t WHERE {where}"), params))


def customer_image(session: Session, customer_id: int) -> dict[str, Any]:
    return row_image(session, "customers", "t.id = :i", {"i": customer_id}, ("geom",))[0]


def _restore_customer(session: Session, image: dict[str, Any], columns: tuple[str, ...] | None = None) -> None:
    """Set the customer's columns (all in the image, or `columns`) from an image, byte for byte."""
    cols = [c for c in (columns or tuple(image)) if c != "id" and c in image]
    targets = ", ".join(_q(c) for c in cols)
    sources = ", ".join(f"r.{_q(c)}" for c in cols)
    session.execute(text(f"""UPDATE customers SET ({targets}) = (SELECT {sources}
                             FROM jsonb_populate_record(NULL::customers, CAST(:img AS jsonb)) r) WHERE id = :id"""),
                    {"img": json.dumps(image, ensure_ascii=False), "id": image["id"]})


def _lock(session: Session, survivor_id: int, merged_id: int) -> tuple[Customer, Customer]:
    found = {}
    for cid in sorted((survivor_id, merged_id)):
        customer = session.get(Customer, cid, with_for_update=True) if valid_id(cid) else None
        if customer is None:
            raise NotFound("客户不存在", code="CUSTOMER_NOT_FOUND")
        found[cid] = customer
    return found[survivor_id], found[merged_id]


def _savepoint_update(session: Session, sql: str, params: dict[str, Any]) -> list[Any] | None:
    """Run an UPDATE in a savepoint; None if it hit a unique constraint (rolled back to the savepoint)."""
    try:
        with session.begin_nested():
            return list(session.scalars(text(sql), params))
    except DBAPIError as exc:
        if isinstance(exc.orig, pg_errors.UniqueViolation | pg_errors.ExclusionViolation):
            return None
        raise Conflict(f"无法迁移引用数据（{sql.split()[1]}）", code="MERGE_REFERENCE_FAILED") from exc


def _move(session: Session, ref: Reference, source: int, target: int) -> dict[str, Any]:
    """Point ref's rows from `source` to `target`; colliding rows are deleted (images kept)."""
    col = _q(ref.column)
    bulk = f"UPDATE {ref.qualified} t SET {col} = :target WHERE t.{col} = :source RETURNING {ref.key_sql()}"
    moved = _savepoint_update(session, bulk, {"source": source, "target": target})
    deleted: list[dict[str, Any]] = []
    if moved is None:  # some row collides with one of the target's: row by row
        moved = []
        keys = list(session.scalars(text(f"SELECT {ref.key_sql()} FROM {ref.qualified} t WHERE t.{col} = :s"),
                                    {"s": source}))
        for key in keys:
            match = f"t.{col} = :source AND {ref.key_sql()} = CAST(:k AS jsonb)"
            params = {"source": source, "target": target, "k": json.dumps(key)}
            one = _savepoint_update(session, f"UPDATE {ref.qualified} t SET {col} = :target WHERE {match} "
                                             f"RETURNING {ref.key_sql()}", params)
            if one is None:
                deleted += row_image(session, ref.qualified, match, params, ref.spatial)
                session.execute(text(f"DELETE FROM {ref.qualified} t WHERE {match}"), params)
            else:
                moved += one
    return {"schema": ref.schema, "table": ref.table, "column": ref.column, "moved": moved, "deleted": deleted}


def _choices(raw: dict[str, str]) -> dict[str, str]:
    errors = {k: ["未知字段"] for k in raw if k not in FIELD_GROUPS}
    errors.update({k: ["取值须为 survivor 或 merged"] for k, v in raw.items()
                   if k in FIELD_GROUPS and v not in ("survivor", "merged")})
    if errors:
        raise ValidationFailed("合并字段选择无效", errors={"choices": errors})
    return {k: raw.get(k, "survivor") for k in FIELD_GROUPS}


def merge_customers(session: Session, actor: Principal, survivor_id: int, merged_id: int, *,
                    choices: dict[str, str] | None = None, reason: str | None = None,
                    candidate_id: int | None = None) -> int:
    """Merge `merged_id` into `survivor_id` (one transaction); returns the customer_merges id."""
    if survivor_id == merged_id:
        raise ValidationFailed.on("merged_id", "不能与自身合并")
    picked = _choices(choices or {})
    survivor, merged = _lock(session, survivor_id, merged_id)
    for c in (survivor, merged):
        if c.status is CustomerStatus.merged:
            raise Conflict("该客户已被合并到其他客户", code="CUSTOMER_MERGED", detail={"customer_id": c.id})
    if CustomerKind(survivor.kind) is not CustomerKind(merged.kind):
        raise ValidationFailed.on("merged_id", "个人客户与公司客户不能合并")
    session.flush()
    s_before, m_before = customer_image(session, survivor_id), customer_image(session, merged_id)
    taken = tuple(col for group, side in picked.items() if side == "merged" for col in FIELD_GROUPS[group])
    # the tombstone first (it frees the unique identifiers), then the survivor takes the chosen values
    session.execute(text(f"""UPDATE customers SET status = 'merged', merged_into = :s, updated_by = :u,
                             updated_at = now(), {', '.join(f'{_q(c)} = NULL' for c in UNIQUE_ON_MERGED)}
                             WHERE id = :m"""), {"s": survivor_id, "m": merged_id, "u": actor.user_id})
    with ownership_reason(session, f"客户合并：#{merged_id} 并入 #{survivor_id}", source="merge"):
        if taken:
            _restore_customer(session, {**m_before, "id": survivor_id}, taken)
        session.execute(text("UPDATE customers SET updated_by = :u, updated_at = now() WHERE id = :s"),
                        {"u": actor.user_id, "s": survivor_id})
    with elevated(session, reason=f"customer merge {merged_id}->{survivor_id}"):
        moves = [_move(session, ref, merged_id, survivor_id) for ref in discover_references(session)]
    moves = [m for m in moves if m["moved"] or m["deleted"]]
    merge_id = session.scalar(text("""
        INSERT INTO customer_merges (survivor_id, merged_id, candidate_id, choices, reason, survivor_before,
                                     merged_before, survivor_after, merged_after, moved_refs, merged_by)
        VALUES (:s, :m, :cand, CAST(:choices AS jsonb), :reason, CAST(:sb AS jsonb), CAST(:mb AS jsonb),
                CAST(:sa AS jsonb), CAST(:ma AS jsonb), CAST(:refs AS jsonb), :u) RETURNING id"""), {
        "s": survivor_id, "m": merged_id, "cand": candidate_id, "choices": json.dumps(picked), "reason": reason,
        "sb": json.dumps(s_before, ensure_ascii=False), "mb": json.dumps(m_before, ensure_ascii=False),
        "sa": json.dumps(customer_image(session, survivor_id), ensure_ascii=False),
        "ma": json.dumps(customer_image(session, merged_id), ensure_ascii=False),
        "refs": json.dumps(moves, ensure_ascii=False), "u": actor.user_id})
    # the pair's candidate (whichever order) is settled by this merge
    session.execute(text("""UPDATE duplicate_candidates SET status = 'merged', decided_at = now(), decided_by = :u,
                            merge_id = :mid WHERE customer_a_id = least(:s, :m) AND customer_b_id = greatest(:s, :m)
                            AND status = 'open'"""),
                    {"u": actor.user_id, "mid": merge_id, "s": survivor_id, "m": merged_id})
    session.expire(survivor)
    session.expire(merged)
    return merge_id


def get_merge(session: Session, merge_id: int) -> dict[str, Any]:
    row = session.execute(text("""
        SELECT id, survivor_id, merged_id, candidate_id, status, choices, reason, moved_refs, merged_by, merged_at,
               undone_by, undone_at FROM customer_merges WHERE id = :i"""),
        {"i": merge_id}).mappings().one_or_none() if valid_id(merge_id) else None
    if row is None:
        raise NotFound("合并记录不存在", code="MERGE_NOT_FOUND")
    out = dict(row)
    # row keys of other tables stay server-side: the caller sees which tables and how many rows
    out["references"] = [{"table": m["table"], "column": m["column"], "moved": len(m["moved"]),
                          "deleted": len(m["deleted"])} for m in out.pop("moved_refs")]
    return out


def _diff(now: dict[str, Any], then: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))


def undo_merge(session: Session, actor: Principal, merge_id: int) -> dict[str, Any]:
    """Restore both archives and every moved reference exactly, or refuse (409) listing what changed since."""
    info = get_merge(session, merge_id)
    record = session.execute(text("SELECT * FROM customer_merges WHERE id = :i FOR UPDATE"),
                             {"i": merge_id}).mappings().one()
    if record["status"] != "done":
        raise Conflict("该合并已撤销", code="MERGE_ALREADY_UNDONE")
    survivor_id, merged_id = record["survivor_id"], record["merged_id"]
    _lock(session, survivor_id, merged_id)
    session.flush()
    conflicts: list[dict[str, Any]] = []
    for cid, after in ((survivor_id, record["survivor_after"]), (merged_id, record["merged_after"])):
        changed = _diff(customer_image(session, cid), after)
        if changed:
            conflicts.append({"customer_id": cid, "changed": changed})
    refs = {(r.schema, r.table, r.column): r for r in discover_references(session)}
    with elevated(session, reason=f"customer merge undo {merge_id}"):
        plan = []
        for m in record["moved_refs"]:
            ref = refs.get((m["schema"], m["table"], m["column"]))
            if ref is None:
                conflicts.append({"table": m["table"], "problem": "reference no longer exists"})
                continue
            col = _q(ref.column)
            present = session.scalar(text(f"SELECT count(*) FROM {ref.qualified} t WHERE t.{col} = :s AND "
                                          f"{ref.key_sql()} = ANY (SELECT jsonb_array_elements(CAST(:k AS jsonb)))"),
                                     {"s": survivor_id, "k": json.dumps(m["moved"])})
            if present != len(m["moved"]):
                conflicts.append({"table": m["table"], "problem": "moved rows changed or deleted since the merge",
                                  "missing": len(m["moved"]) - present})
            plan.append((ref, m))
        if conflicts:
            raise Conflict("合并后数据已有变更，不能撤销", code="MERGE_UNDO_CONFLICT", detail={"conflicts": conflicts})
        for ref, m in plan:
            col = _q(ref.column)
            session.execute(text(f"""UPDATE {ref.qualified} t SET {col} = :m WHERE t.{col} = :s
                                     AND {ref.key_sql()} = ANY (SELECT jsonb_array_elements(CAST(:k AS jsonb)))"""),
                            {"m": merged_id, "s": survivor_id, "k": json.dumps(m["moved"])})
        # the archives first (the survivor gives the identifiers back), then deleted rows come back
        with ownership_reason(session, f"撤销客户合并 #{merge_id}", source="merge_undo"):
            _restore_customer(session, record["survivor_before"])
            _restore_customer(session, record["merged_before"])
        for ref, m in plan:
            for image in m["deleted"]:
                ok = _savepoint_update(session, f"""INSERT INTO {ref.qualified} SELECT * FROM
                    jsonb_populate_record(NULL::{ref.qualified}, CAST(:img AS jsonb)) RETURNING 1""",
                                       {"img": json.dumps(image, ensure_ascii=False)})
                if ok is None:
                    raise Conflict("合并后数据已有变更，不能撤销", code="MERGE_UNDO_CONFLICT",
                                   detail={"conflicts": [{"table": ref.table, "problem": "deleted row taken"}]})
    session.execute(text("""UPDATE customer_merges SET status = 'undone', undone_by = :u, undone_at = now()
                            WHERE id = :i"""), {"u": actor.user_id, "i": merge_id})
    session.execute(text("""UPDATE duplicate_candidates SET status = 'open', decided_at = NULL, decided_by = NULL,
                            merge_id = NULL WHERE merge_id = :i"""), {"i": merge_id})
    session.expire_all()
    return {**info, "status": "undone"}
