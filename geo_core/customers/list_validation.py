"""Customer list rows: parse every cell by its template field, check each row, match existing customers.

`validate_rows` checks every row (types, regexes, dictionaries, identifier checksums, duplicates within the
file, owners and orgs inside the importer's scope) and matches rows to existing customers by blind index (ID
number / credit code, then customer number, then phone). Part of the customer lists (geo_core.customers.lists
re-exports the public names).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo_core import crypto, tabular
from geo_core.crs import get_transform
from geo_core.customers import identifiers as ids
from geo_core.customers.list_reader import map_header
from geo_core.customers.list_templates import CHOICES, UNIQUE_COLUMNS, FieldSpec, TemplateSpec
from geo_core.customers.service import SENSITIVE, Keys
from geo_core.db import elevated
from geo_core.dictionary.models import DictItem, DictType
from geo_core.scope import Principal

MAX_STORED_ERRORS = 10_000  # rows whose messages are kept for the preview and the report
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y-%m-%d %H:%M:%S")


@dataclass
class RowResult:
    row_no: int
    data: dict[str, Any] = field(default_factory=dict)  # customer columns (maps_to -> normalised value)
    extra: dict[str, Any] = field(default_factory=dict)  # fields mapped to no column, by key
    errors: dict[str, list[str]] = field(default_factory=dict)
    customer_id: int | None = None  # the existing customer this row matched
    matched_by: str | None = None

    def error(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)


@dataclass
class Validation:
    rows: list[RowResult]
    ignored_columns: list[str]

    @property
    def invalid(self) -> list[RowResult]:
        return [r for r in self.rows if r.errors]

    @property
    def valid(self) -> list[RowResult]:
        return [r for r in self.rows if not r.errors]

    def stored(self) -> dict[str, Any]:
        """What the preview needs later: row statuses, and the messages of the first MAX_STORED_ERRORS bad rows."""
        invalid = self.invalid
        return {"ignored_columns": self.ignored_columns, "invalid": [r.row_no for r in invalid],
                "matched": [[r.row_no, r.customer_id, r.matched_by] for r in self.valid if r.customer_id],
                "errors": {str(r.row_no): r.errors for r in invalid[:MAX_STORED_ERRORS]},
                "errors_truncated": len(invalid) > MAX_STORED_ERRORS}


def _parser(session: Session, spec: FieldSpec) -> Callable[[str], Any]:
    """Cell text -> value: length, regex, type, then the customer column's own rule (no-op steps left out)."""
    limit = spec.limit
    steps: list[Callable[[Any], Any]] = []
    if spec.regex:
        pattern = re.compile(spec.regex)

        def match(raw: str) -> str:
            if not pattern.fullmatch(raw):
                raise ValueError("格式不符合模板规则")
            return raw

        steps.append(match)
    steps += [f for f in (_type_parser(session, spec), _column_parser(spec.maps_to)) if f is not None]

    def parse(raw: str) -> Any:
        if len(raw) > limit:
            raise ValueError(f"长度 {len(raw)} 超过上限 {limit}")
        for step in steps:
            raw = step(raw)
        return raw

    return parse


def _type_parser(session: Session, spec: FieldSpec) -> Callable[[str], Any] | None:
    if spec.value_type == "integer":
        return _parse_int
    if spec.value_type == "decimal":
        return _parse_decimal
    if spec.value_type == "date":
        return _parse_date
    if spec.value_type == "boolean":
        return tabular.parse_bool
    if spec.value_type == "enum":
        items = session.execute(select(DictItem.code, DictItem.label).join(DictType)
                                .where(DictType.code == spec.dict_code, DictItem.is_active)).all()
        return _choice({c: c for c, _ in items} | {label: c for c, label in items})
    return None  # string


def _column_parser(column: str | None) -> Callable[[Any], Any] | None:
    if column in ("id_number", "uscc", "phone"):
        return SENSITIVE[column][0]
    if column in CHOICES:
        return _choice(CHOICES[column])
    if column == "lon":
        return lambda v: _in_range(v, 180)
    if column == "lat":
        return lambda v: _in_range(v, 90)
    return None


def _parse_int(raw: str) -> int:
    try:
        value = int(raw.replace(",", ""))
    except ValueError as exc:
        raise ValueError("不是整数") from exc
    if abs(value) >= 2**63:
        raise ValueError("超出整数范围")
    return value


def _parse_decimal(raw: str) -> float:
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation as exc:
        raise ValueError("不是数字") from exc
    if not value.is_finite() or abs(value) >= Decimal(10) ** 15:
        raise ValueError("超出数值范围")
    return float(value)


def _parse_date(raw: str) -> str:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date().isoformat()
        except ValueError:
            continue
    raise ValueError("日期格式应为 YYYY-MM-DD")


def _choice(choices: dict[str, str]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in choices:
            shown = "、".join(list(dict.fromkeys(choices))[:12])
            raise ValueError(f"取值须为：{shown}")
        return choices[raw]

    return parse


def _in_range(value: float, limit: float) -> float:
    if not -limit <= value <= limit:
        raise ValueError("坐标超出范围")
    return value


def validate_rows(session: Session, actor: Principal, keys: Keys, spec: TemplateSpec,
                  table: list[tuple[int, list[str]]]) -> Validation:
    """Check every row; match valid identifiers to existing customers. `session` carries the actor's scope."""
    columns, ignored = map_header(spec, table[0][1])
    parsers = {f.key: _parser(session, f) for _, f in columns}
    rows = [_parse_cells(columns, parsers, row_no, cells) for row_no, cells in table[1:]]
    by_column = spec.by_column()
    for row in rows:
        _check_row(spec, by_column, row)
    _check_duplicates(spec, rows)
    _to_wgs84(spec.crs, rows)
    _resolve_owners(session, actor, by_column, rows)
    _match_customers(session, actor, keys, by_column, rows)
    return Validation(rows, ignored)


def _parse_cells(columns: list[tuple[int, FieldSpec]], parsers: dict[str, Callable[[str], Any]], row_no: int,
                 cells: list[str]) -> RowResult:
    row = RowResult(row_no)
    for index, spec in columns:
        raw = cells[index].strip() if index < len(cells) else ""
        if not raw:
            if spec.required:
                row.error(spec.key, f"{spec.label}不能为空")
            continue
        try:
            value = parsers[spec.key](raw)
        except (ValueError, TypeError) as exc:
            row.error(spec.key, f"{spec.label}：{exc}")
            continue
        if spec.maps_to:
            row.data[spec.maps_to] = value
        else:
            row.extra[spec.key] = value
    return row


def _check_row(spec: TemplateSpec, by_column: dict[str, FieldSpec], row: RowResult) -> None:
    kind = row.data.setdefault("kind", spec.customer_kind)
    if "name" not in row.data and by_column["name"].key not in row.errors:
        row.error(by_column["name"].key, f"{by_column['name'].label}不能为空")
    if "id_number" in row.data and kind != "person":
        row.error(by_column["id_number"].key, "公司客户不能填写身份证号")
    if "uscc" in row.data and kind != "company":
        row.error(by_column["uscc"].key, "个人客户不能填写统一社会信用代码")
    if ("lon" in row.data) != ("lat" in row.data):
        missing = "lat" if "lon" in row.data else "lon"
        if missing in by_column and by_column[missing].key not in row.errors:
            row.error(by_column[missing].key, "经度和纬度须同时填写")
        row.data.pop("lon", None)
        row.data.pop("lat", None)
    if "id_number" in row.data:
        row.data["birth_date"] = ids.birth_date_of(row.data["id_number"])
        row.data["gender"] = ids.gender_of(row.data["id_number"])


def _check_duplicates(spec: TemplateSpec, rows: list[RowResult]) -> None:
    """Unique keys (and identifiers unique in `customers`) may appear once per file; later rows are errors."""
    for spec_field in spec.fields:
        if not (spec_field.unique or spec_field.maps_to in UNIQUE_COLUMNS):
            continue
        seen: dict[Any, int] = {}
        for row in rows:
            value = row.data.get(spec_field.maps_to) if spec_field.maps_to else row.extra.get(spec_field.key)
            if value is None:
                continue
            first = seen.setdefault(value, row.row_no)
            if first != row.row_no:
                row.error(spec_field.key, f"{spec_field.label}与第 {first} 行重复")


def _to_wgs84(crs: str, rows: list[RowResult]) -> None:
    located = [r for r in rows if "lon" in r.data]
    if crs == "wgs84" or not located:
        return
    lon, lat = get_transform(crs, "wgs84")(np.array([r.data["lon"] for r in located]),
                                           np.array([r.data["lat"] for r in located]))
    for row, x, y in zip(located, np.atleast_1d(lon), np.atleast_1d(lat), strict=True):
        row.data["lon"], row.data["lat"] = float(x), float(y)


def _resolve_owners(session: Session, actor: Principal, by_column: dict[str, FieldSpec],
                    rows: list[RowResult]) -> None:
    """Owner (username or employee number) and org (code) must be inside the importer's scope (RLS decides)."""
    owners: dict[str, tuple[int, int]] = {}
    wanted = sorted({r.data["owner"] for r in rows if "owner" in r.data})
    if wanted:
        found = session.execute(text("SELECT id, username, employee_no, org_id FROM users WHERE username = "
                                     "ANY(CAST(:v AS text[])) OR employee_no = ANY(CAST(:v AS text[]))"), {"v": wanted})
        for user_id, username, employee_no, org_id in found:
            owners[username] = owners[employee_no or username] = (user_id, org_id)
    codes = sorted({r.data["org"] for r in rows if "org" in r.data})
    orgs = dict(session.execute(text("SELECT code, id FROM orgs WHERE code = ANY(CAST(:v AS text[]))"),
                                {"v": codes}).all()) if codes else {}
    for row in rows:
        owner_user_id, org_id = actor.user_id, actor.org_id
        if "owner" in row.data:
            hit = owners.get(row.data.pop("owner"))
            if hit is None:
                row.error(by_column["owner"].key, "客户经理不存在或不在权限范围内")
            else:
                owner_user_id, org_id = hit
        if "org" in row.data:
            org_id = orgs.get(row.data.pop("org"))
            if org_id is None:
                row.error(by_column["org"].key, "机构不存在或不在权限范围内")
        row.data["owner_user_id"], row.data["org_id"] = owner_user_id, org_id


MATCH_SQL = text("""
    SELECT id, id_number_bidx, uscc_bidx, customer_no FROM customers
    WHERE id_number_bidx = ANY(CAST(:i AS text[])) OR uscc_bidx = ANY(CAST(:u AS text[]))
       OR customer_no = ANY(CAST(:n AS text[]))""")
PHONE_SQL = text("""
    SELECT phone_bidx, kind::text, min(id) FROM customers WHERE phone_bidx = ANY(CAST(:p AS text[]))
    GROUP BY 1, 2""")


def _match_customers(session: Session, actor: Principal, keys: Keys, by_column: dict[str, FieldSpec],
                     rows: list[RowResult]) -> None:
    """Blind-index match: ID number / credit code, else customer number, else phone (same kind, in scope)."""
    for row in rows:
        for column in ("id_number", "uscc", "phone"):
            if column in row.data:
                row.data[f"{column}_bidx"] = crypto.blind_index(row.data[column], keys.blind, SENSITIVE[column][2])
    wanted = {c: sorted({r.data[c] for r in rows if c in r.data})
              for c in ("id_number_bidx", "uscc_bidx", "phone_bidx", "customer_no")}
    # identifiers are unique across all orgs: look everywhere (audited), then keep only what the importer sees
    with elevated(session, reason="customer list: match identifiers", actor_id=actor.user_id):
        found = session.execute(MATCH_SQL, {"i": wanted["id_number_bidx"], "u": wanted["uscc_bidx"],
                                            "n": wanted["customer_no"]}).all()
    visible = set(session.scalars(text("SELECT id FROM customers WHERE id = ANY(CAST(:i AS integer[]))"),
                                  {"i": [f[0] for f in found]})) if found else set()
    index = {"id_number": {f[1]: f[0] for f in found if f[1]}, "uscc": {f[2]: f[0] for f in found if f[2]},
             "customer_no": {f[3]: f[0] for f in found if f[3]}}
    phones = {(p, k): i for p, k, i in session.execute(PHONE_SQL, {"p": wanted["phone_bidx"]})} \
        if wanted["phone_bidx"] else {}
    for row in rows:
        _match_row(row, by_column, index, phones, visible)


def _match_row(row: RowResult, by_column: dict[str, FieldSpec], index: dict[str, dict[Any, int]],
               phones: dict[tuple[str, str], int], visible: set[int]) -> None:
    key = "id_number" if "id_number_bidx" in row.data else "uscc" if "uscc_bidx" in row.data else None
    by_key = index[key].get(row.data[f"{key}_bidx"]) if key else None
    by_no = index["customer_no"].get(row.data.get("customer_no"))
    if by_no is not None and key is not None and by_no != by_key:
        row.error(by_column["customer_no"].key, "客户号已属于另一位客户")
        return
    target, how = (by_key, key) if by_key else (by_no, "customer_no") if by_no else (None, None)
    if target is None and key is None and "customer_no" not in row.data and "phone_bidx" in row.data:
        target, how = phones.get((row.data["phone_bidx"], row.data["kind"])), "phone"
    if target is None:
        return
    if how != "phone" and target not in visible:  # phone matches come from in-scope rows only
        row.error(by_column[how].key, "该客户已由其他机构建档，不能导入本名单")  # type: ignore[index]
        return
    row.customer_id, row.matched_by = target, how
