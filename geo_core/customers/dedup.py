"""Duplicate detection (客户查重): candidate pairs by identifier, or similar name near by / at the same address.

A pair of customers of the same kind is a candidate when
- they share a blind index (ID number, credit code: cannot happen inside the table, which keeps one archive
  per identifier, but the same SQL serves imports) or a phone number, or
- their names are similar (`matching.name_similarity` >= 0.85: same name after normalisation, same fuzzy
  pinyin as in 张伟/章伟 or 王芳/汪芳, containment for firms, edit distance) AND they are within 50 m
  (ST_DWithin on geography after a lon/lat box on the GiST index of geom) or at the same normalised address,
and they do not carry *different* ID numbers or credit codes (two people sharing a phone or a name).

Generation is set-based: SQL joins on the spatial index, on the address key and on the blind indexes give
the neighbour pairs, a cheap name prefilter in SQL (same fuzzy pinyin key, same initials, pinyin trigram
similarity, containment) keeps the plausible ones, and only those are scored in Python. Matching keys
(pinyin needs Python) live in customer_match_keys and are recomputed only for customers whose name or
address changed since (`refresh_keys`). Everything runs as the caller, so RLS limits both sides of a pair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.customers.matching import KEY_VERSION, SIMILAR, NameKeys, address_key, name_keys, name_similarity
from geo_core.customers.models import Customer, CustomerStatus
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.paging import Page, valid_id
from geo_core.scope import Principal

RADIUS_M = 50.0
# the radius as a lon/lat box around a.geom (2 % margin): `&&` on geometry is LEAKPROOF (migration 0002), so the
# GiST index on customers.geom serves the spatial join under row-level security (see _pairs_sql); ST_DWithin on
# geography then decides in metres
NEAR_BOX = ("ST_Expand(a.geom, :radius * 1.02 / (111320 * greatest(cos(radians(ST_Y(a.geom))), 0.01)), "
            ":radius * 1.02 / 110574)")
KEY_CHUNK = 5000

_UPSERT_KEYS = text("""
    INSERT INTO customer_match_keys (customer_id, version, name_src, address_src, name_core, pinyin, initials,
                                     name_key, address_key)
    SELECT r.customer_id, r.version, r.name_src, r.address_src, r.name_core, r.pinyin, r.initials, r.name_key,
           r.address_key
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(customer_id int, version smallint, name_src text,
         address_src text, name_core text, pinyin text, initials text, name_key text, address_key text)
    ON CONFLICT (customer_id) DO UPDATE SET version = EXCLUDED.version, name_src = EXCLUDED.name_src,
        address_src = EXCLUDED.address_src, name_core = EXCLUDED.name_core, pinyin = EXCLUDED.pinyin,
        initials = EXCLUDED.initials, name_key = EXCLUDED.name_key, address_key = EXCLUDED.address_key,
        updated_at = now()""")


@dataclass(frozen=True)
class Scope:
    """Which customers a detection covers: one customer (and its neighbourhood), an org or grid subtree, or all
    visible ones. `where` is a SQL predicate over alias `c` with bound parameters."""

    where: str
    params: dict[str, Any]
    focus: int | None = None

    @classmethod
    def of(cls, *, customer_id: int | None = None, org_id: int | None = None, grid_id: int | None = None) -> Scope:
        if customer_id is not None:
            return cls("c.id = :focus", {"focus": customer_id}, focus=customer_id)
        if org_id is not None:
            return cls("c.org_id IN (SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs WHERE id = :org))",
                       {"org": org_id})
        if grid_id is not None:
            return cls("c.grid_id IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :grid))",
                       {"grid": grid_id})
        return cls("TRUE", {})

    def on(self, alias: str) -> str:
        return self.where.replace("c.", f"{alias}.")


def refresh_keys(session: Session, where: str, params: dict[str, Any]) -> int:
    """(Re)compute matching keys of the customers matching `where` whose name/address/key version changed."""
    rows = session.execute(text(f"""
        SELECT c.id, c.kind::text, c.name, c.address FROM customers c
        LEFT JOIN customer_match_keys k ON k.customer_id = c.id
        WHERE c.status <> 'merged' AND ({where}) AND (k.customer_id IS NULL OR k.version <> :version
              OR k.name_src IS DISTINCT FROM c.name OR k.address_src IS DISTINCT FROM c.address)"""),
        {**params, "version": KEY_VERSION}).all()
    if not rows:
        return 0
    payload = []
    for cid, kind, name, address in rows:
        keys = name_keys(name, company=True if kind == "company" else None)
        payload.append({"customer_id": cid, "version": KEY_VERSION, "name_src": name, "address_src": address,
                        "name_core": keys.core[:100], "pinyin": keys.pinyin[:600], "initials": keys.initials[:100],
                        "name_key": keys.fuzzy[:600], "address_key": address_key(address)})
    # derived data: one summary audit row per statement instead of one per key row
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    try:
        for start in range(0, len(payload), KEY_CHUNK):
            chunk = payload[start:start + KEY_CHUNK]
            session.execute(_UPSERT_KEYS, {"rows": json.dumps(chunk, ensure_ascii=False)})
    finally:
        session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return len(payload)


def _pairs_sql(scope: Scope) -> str:
    """CTEs giving neighbour pairs (a, b) in the scope: spatial, same address, same blind index; index-driven."""
    a_side = f"a.status <> 'merged' AND ({scope.on('a')})"
    if scope.focus is not None:
        b_side = "b.status <> 'merged' AND b.id <> a.id"
    else:
        b_side = f"b.status <> 'merged' AND b.id > a.id AND ({scope.on('b')})"
    same_kind = "b.kind = a.kind"
    unions = [
        f"""SELECT a.id AS a, b.id AS b FROM near_src a JOIN customers b
            ON {same_kind} AND b.geom && a.box AND ST_DWithin(a.geom::geography, b.geom::geography, :radius)
            WHERE {b_side}""",
        f"""SELECT a.id, b.id FROM customers a
            JOIN customer_match_keys ka ON ka.customer_id = a.id AND ka.address_key IS NOT NULL
            JOIN customer_match_keys kb ON kb.address_key = ka.address_key AND kb.customer_id <> ka.customer_id
            JOIN customers b ON b.id = kb.customer_id AND {same_kind}
            WHERE {a_side} AND {b_side}""",
    ]
    for column in ("phone_bidx", "id_number_bidx", "uscc_bidx"):
        unions.append(f"""SELECT a.id, b.id FROM customers a JOIN customers b ON b.{column} = a.{column}
                          AND {same_kind} WHERE a.{column} IS NOT NULL AND {a_side} AND {b_side}""")
    # the box is computed once per customer in a materialised CTE: `b.geom && a.box` holds no function call
    # over a column, so under RLS it is leakproof and becomes an index condition on ix_customers_geom
    near_src = (f"near_src AS MATERIALIZED (SELECT a.id, a.kind, a.geom, {NEAR_BOX} AS box FROM customers a "
                f"WHERE a.geom IS NOT NULL AND {a_side})")
    return near_src + ", pairs AS (" + " UNION ".join(unions) + ")"


def _evidence_sql(scope: Scope) -> str:
    return f"""
        WITH {_pairs_sql(scope)},
        ordered AS (SELECT DISTINCT least(a, b) AS a, greatest(a, b) AS b FROM pairs)
        SELECT p.a, p.b, ka.name_core, ka.pinyin, ka.initials, ka.name_key,
               kb.name_core, kb.pinyin, kb.initials, kb.name_key,
               ST_Distance(ca.geom::geography, cb.geom::geography) AS distance_m,
               coalesce(ka.address_key = kb.address_key, false) AS same_address,
               coalesce(ca.phone_bidx = cb.phone_bidx, false) AS same_phone,
               coalesce(ca.id_number_bidx = cb.id_number_bidx, false) AS same_id_number,
               coalesce(ca.uscc_bidx = cb.uscc_bidx, false) AS same_uscc,
               coalesce(ca.id_number_bidx <> cb.id_number_bidx, false)
                 OR coalesce(ca.uscc_bidx <> cb.uscc_bidx, false) AS different_identifiers
        FROM ordered p
        JOIN customers ca ON ca.id = p.a JOIN customers cb ON cb.id = p.b
        JOIN customer_match_keys ka ON ka.customer_id = p.a JOIN customer_match_keys kb ON kb.customer_id = p.b
        WHERE coalesce(ca.phone_bidx = cb.phone_bidx, false) OR ka.name_key = kb.name_key
              OR ka.initials = kb.initials OR similarity(ka.pinyin, kb.pinyin) >= 0.3
              OR strpos(ka.name_core, kb.name_core) > 0 OR strpos(kb.name_core, ka.name_core) > 0
              OR coalesce(ca.id_number_bidx = cb.id_number_bidx, false) OR coalesce(ca.uscc_bidx = cb.uscc_bidx, false)
        ORDER BY p.a, p.b"""


def assess(row: Any, radius_m: float = RADIUS_M) -> dict[str, Any] | None:
    """Reasons and score of one evidence row, or None when the pair is no candidate."""
    (a, b, core_a, pinyin_a, initials_a, key_a, core_b, pinyin_b, initials_b, key_b, distance, same_address,
     same_phone, same_id_number, same_uscc, different_identifiers) = row
    if different_identifiers:
        return None
    sim, why = name_similarity(NameKeys(core_a, pinyin_a, initials_a, key_a),
                               NameKeys(core_b, pinyin_b, initials_b, key_b))
    near = distance is not None and distance <= radius_m
    similar_here = sim >= SIMILAR and (near or same_address)
    reasons = [r for r, on in (("same_id_number", same_id_number), ("same_uscc", same_uscc),
                               ("same_phone", same_phone)) if on]
    if similar_here:
        reasons.append(why if why in ("same_name", "same_pinyin") else "similar_name")
        reasons += [r for r, on in (("within_50m", near), ("same_address", same_address)) if on]
    if not reasons:
        return None
    if same_id_number or same_uscc:
        score = 1.0
    else:
        name_part = sim if similar_here else 0.0
        score = 0.55 * name_part + 0.25 * (0.5 * near + 0.5 * same_address) * (name_part > 0) + 0.2 * same_phone
        if same_phone:
            score = max(score, 0.5)
    return {"a": a, "b": b, "reasons": reasons, "score": round(min(score, 1.0), 3), "sim": sim,
            "dist": None if distance is None else round(float(distance), 1)}


def detect(session: Session, actor_id: int | None, scope: Scope, *, radius_m: float = RADIUS_M) -> list[int]:
    """Find candidate pairs in `scope` (as the caller: RLS bounds both sides) and upsert them; returns their ids.

    Dismissed and merged pairs stay as decided; open ones get fresh reasons and score."""
    if scope.focus is not None:
        customer = session.get(Customer, scope.focus) if valid_id(scope.focus) else None
        if customer is None:
            raise NotFound("客户不存在", code="CUSTOMER_NOT_FOUND")
        if customer.status is CustomerStatus.merged:
            raise Conflict("该客户已被合并", code="CUSTOMER_MERGED")
        # the customer, its neighbours and those sharing its grid or phone get fresh keys
        refresh_keys(session, f"""c.id = :focus OR c.id IN (
            SELECT n.id FROM customers n WHERE n.geom && (SELECT {NEAR_BOX} FROM customers a WHERE a.id = :focus)
            UNION SELECT n.id FROM customers a JOIN customers n ON n.grid_id = a.grid_id WHERE a.id = :focus
            UNION SELECT n.id FROM customers a JOIN customers n ON n.phone_bidx = a.phone_bidx WHERE a.id = :focus)""",
                     {**scope.params, "radius": radius_m})
    else:
        refresh_keys(session, scope.where, scope.params)
    rows = session.execute(text(_evidence_sql(scope)), {**scope.params, "radius": radius_m}).all()
    found = [c for c in (assess(r, radius_m) for r in rows) if c is not None]
    if not found:
        return []
    for c in found:
        c["by"] = actor_id
    ids = session.scalars(text("""
        INSERT INTO duplicate_candidates (customer_a_id, customer_b_id, reasons, score, name_similarity, distance_m,
                                          detected_by)
        SELECT r.a, r.b, r.reasons, r.score, r.sim, r.dist, r.by
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(a int, b int, reasons text[], score numeric, sim numeric,
                                                           dist numeric, by int)
        ON CONFLICT (customer_a_id, customer_b_id) DO UPDATE SET reasons = EXCLUDED.reasons, score = EXCLUDED.score,
            name_similarity = EXCLUDED.name_similarity, distance_m = EXCLUDED.distance_m,
            detected_at = now(), detected_by = EXCLUDED.detected_by
        WHERE duplicate_candidates.status = 'open'
        RETURNING id"""), {"rows": json.dumps(found)}).all()
    return sorted(ids)


# -- reading and deciding --------------------------------------------------------------------------------

SUMMARY = ("id", "kind", "category", "name", "customer_no", "id_number_mask", "uscc_mask", "phone_mask",
           "address", "owner_user_id", "org_id", "grid_id", "status")
_LIST = """
    FROM duplicate_candidates d
    JOIN customers ca ON ca.id = d.customer_a_id JOIN customers cb ON cb.id = d.customer_b_id
    WHERE d.status = CAST(:status AS duplicate_status)
      AND (d.status <> 'open' OR (ca.status <> 'merged' AND cb.status <> 'merged'))
      AND (CAST(:customer AS integer) IS NULL OR :customer IN (d.customer_a_id, d.customer_b_id))
      AND d.score >= :min_score"""


def _summary(alias: str) -> str:
    cols = ", ".join(f"'{c}', {alias}.{c}" for c in SUMMARY)
    return f"jsonb_build_object({cols})"


def list_candidates(session: Session, *, status: str = "open", customer_id: int | None = None,
                    min_score: float = 0.0, page: int = 1, page_size: int = 20) -> Page[dict[str, Any]]:
    """Candidate pairs whose two customers the caller can see (RLS), best score first."""
    params = {"status": status, "customer": customer_id, "min_score": min_score}
    total = session.scalar(text(f"SELECT count(*) {_LIST}"), params) or 0
    rows = session.execute(text(f"""
        SELECT d.id, d.reasons, d.score, d.name_similarity, d.distance_m, d.status::text, d.detected_at,
               d.decided_at, d.decided_by, d.note, d.merge_id, {_summary('ca')}, {_summary('cb')} {_LIST}
        ORDER BY d.score DESC, d.id LIMIT :limit OFFSET :offset"""),
        {**params, "limit": page_size, "offset": (page - 1) * page_size}).all()
    return Page([_candidate(r) for r in rows], total, page, page_size)


def _candidate(row: Any) -> dict[str, Any]:
    keys = ("id", "reasons", "score", "name_similarity", "distance_m", "status", "detected_at", "decided_at",
            "decided_by", "note", "merge_id", "customer_a", "customer_b")
    out = dict(zip(keys, row, strict=True))
    for k in ("score", "name_similarity", "distance_m"):
        out[k] = None if out[k] is None else float(out[k])
    return out


def get_candidate(session: Session, candidate_id: int) -> dict[str, Any]:
    row = session.execute(text(f"""
        SELECT d.id, d.reasons, d.score, d.name_similarity, d.distance_m, d.status::text, d.detected_at,
               d.decided_at, d.decided_by, d.note, d.merge_id, {_summary('ca')}, {_summary('cb')}
        FROM duplicate_candidates d
        JOIN customers ca ON ca.id = d.customer_a_id JOIN customers cb ON cb.id = d.customer_b_id
        WHERE d.id = :id"""), {"id": candidate_id}).one_or_none() if valid_id(candidate_id) else None
    if row is None:
        raise NotFound("疑似重复记录不存在", code="DUPLICATE_NOT_FOUND")
    return _candidate(row)


COMPARED = ("kind", "category", "name", "customer_no", "profile_type", "industry", "id_number", "uscc", "phone",
            "address", "location", "grid_id", "owner_user_id", "org_id", "status", "deposit_balance", "loan_balance",
            "credit_limit", "created_at", "updated_at")


def compare(session: Session, candidate_id: int) -> dict[str, Any]:
    """The pair side by side, field by field (identifiers masked; 'same' for them compares blind indexes)."""
    cand = get_candidate(session, candidate_id)
    a, b = (session.get(Customer, cand[k]["id"]) for k in ("customer_a", "customer_b"))
    if a is None or b is None:  # pragma: no cover - the join above saw both
        raise NotFound("客户不存在", code="CUSTOMER_NOT_FOUND")
    fields = []
    for f in COMPARED:
        if f in ("id_number", "uscc", "phone"):
            va, vb = getattr(a, f"{f}_mask"), getattr(b, f"{f}_mask")
            ia, ib = getattr(a, f"{f}_bidx"), getattr(b, f"{f}_bidx")
            same = ia is not None and ia == ib
        elif f == "location":
            va, vb = _point(session, a.id), _point(session, b.id)
            same = va is not None and va == vb
        else:
            va, vb = (getattr(getattr(c, f), "value", getattr(c, f)) for c in (a, b))
            same = va == vb
        fields.append({"field": f, "a": _plain(va), "b": _plain(vb), "same": bool(same)})
    return {**cand, "fields": fields}


def _point(session: Session, customer_id: int) -> list[float] | None:
    row = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM customers WHERE id = :i AND geom IS NOT NULL"),
                          {"i": customer_id}).one_or_none()
    return None if row is None else [round(row[0], 7), round(row[1], 7)]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list):
        return value
    return str(value)


def dismiss(session: Session, actor: Principal, candidate_id: int, note: str) -> dict[str, Any]:
    """Not a duplicate: the pair stays dismissed (a later detection does not reopen it)."""
    cand = get_candidate(session, candidate_id)
    if cand["status"] != "open":
        raise Conflict("该疑似重复记录已处理", code="DUPLICATE_DECIDED")
    if not note or len(note.strip()) < 2:
        raise ValidationFailed.on("note", "请填写不是重复客户的理由")
    session.execute(text("""UPDATE duplicate_candidates SET status = 'dismissed', decided_at = now(),
                            decided_by = :u, note = :n WHERE id = :id"""),
                    {"u": actor.user_id, "n": note.strip()[:200], "id": candidate_id})
    return get_candidate(session, candidate_id)
