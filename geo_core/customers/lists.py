"""Customer lists (名单): templates, uploads, preview with per-row errors, and the one-transaction import.

A template lists the columns of a list file - type, required, dictionary, regex, unique key - and the customer
column each one fills (`maps_to`; none = an extra attribute kept on the list entry). An upload is stored
SM4-sealed next to its batch. `validate_rows` checks every row (identifier checksums, duplicates within the file,
owners and orgs inside the importer's scope) and matches rows to existing customers by blind index (ID number /
credit code, then customer number, then phone). `import_batch` - run by the RQ job - validates again and writes
everything in the caller's one transaction: new customers through a COPY-fed staging table, then the list
entries; all rows or none, unless `skip_invalid`. The job holds an advisory lock on the batch for as long as its
transaction lives, so a batch left "running" by a killed worker is recognisable (`refresh_liveness`).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select, text, update
from sqlalchemy.orm import Session

from geo_core import crypto, tabular
from geo_core.auth.service import audit_event
from geo_core.crs import get_transform
from geo_core.customers import identifiers as ids
from geo_core.customers.lists_models import (
    CustomerImportBatch,
    CustomerImportFile,
    CustomerListEntry,
    CustomerListTemplate,
    ImportStatus,
)
from geo_core.customers.models import CustomerKind, ProfileType
from geo_core.customers.service import SENSITIVE, Keys
from geo_core.db import elevated, get_context, set_context
from geo_core.dictionary.models import DictItem, DictType
from geo_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from geo_core.grids.spatial import point_cell
from geo_core.orgs.models import Org
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.scope import DataScope, Principal, widest
from geo_core.users.models import User, UserStatus

FIELD_TYPES = ("string", "integer", "decimal", "date", "boolean", "enum")
# customer columns a list field may fill: allowed field types, longest accepted cell
MAPS_TO: dict[str, tuple[tuple[str, ...], int]] = {
    "name": (("string",), 100), "kind": (("string",), 16), "category": (("string",), 16),
    "id_number": (("string",), 30), "uscc": (("string",), 30), "phone": (("string",), 30),
    "address": (("string",), 300), "lon": (("decimal",), 32), "lat": (("decimal",), 32),
    "customer_no": (("string",), 32), "industry": (("string", "enum"), 64),
    "profile_type": (("string",), 32), "owner": (("string",), 64), "org": (("string",), 32),
}
CHOICES = {  # accepted values (and Chinese labels) of the enum-like customer columns
    "kind": {"person": "person", "company": "company", "个人": "person", "对私": "person", "公司": "company",
             "企业": "company", "对公": "company"},
    "category": {"formal": "formal", "potential": "potential", "正式": "formal", "正式客户": "formal",
                 "潜在": "potential", "潜在客户": "potential"},
    "profile_type": {"farmer": "farmer", "merchant": "merchant", "micro_enterprise": "micro_enterprise",
                     "农户": "farmer", "商户": "merchant", "小微企业": "micro_enterprise"},
}
UNIQUE_COLUMNS = ("id_number", "uscc", "customer_no")  # unique in `customers`, so never twice in one file
EXTRA_MAX_LENGTH = 500
MAX_FIELD_LENGTH = 2000
MAX_IMPORT_ROWS = 200_000
MAX_IMPORT_BYTES = 40 * 1024 * 1024
MAX_STORED_ERRORS = 10_000  # rows whose messages are kept for the preview and the report
CHUNK = 5_000
LOCK_CLASS = 72_010  # pg advisory lock (LOCK_CLASS, batch id): held by the import transaction while it lives
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FILE_AAD = b"customer_import_file"
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y-%m-%d %H:%M:%S")
OPEN_STATUSES = (ImportStatus.uploaded, ImportStatus.validated, ImportStatus.failed, ImportStatus.rejected)
KILLED = "导入进程意外退出，未写入任何数据；可重新提交"


# -- templates ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    """One column of a list file (`value_type` is "type" in JSON)."""

    key: str
    label: str
    value_type: str = "string"
    required: bool = False
    dict_code: str | None = None
    regex: str | None = None
    unique: bool = False
    maps_to: str | None = None
    max_length: int | None = None

    @classmethod
    def of(cls, data: dict[str, Any]) -> FieldSpec:
        return cls(key=data["key"], label=data["label"], value_type=data.get("type", data.get("value_type", "string")),
                   required=bool(data.get("required")), dict_code=data.get("dict_code") or None,
                   regex=data.get("regex") or None, unique=bool(data.get("unique")),
                   maps_to=data.get("maps_to") or None, max_length=data.get("max_length") or None)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["type"] = out.pop("value_type")
        return out

    @property
    def limit(self) -> int:
        if self.max_length:
            return self.max_length
        return MAPS_TO[self.maps_to][1] if self.maps_to else EXTRA_MAX_LENGTH


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    customer_kind: str
    profile_type: str | None
    crs: str
    fields: tuple[FieldSpec, ...]

    @classmethod
    def of(cls, template: CustomerListTemplate) -> TemplateSpec:
        return cls(template.name, value_of(template.customer_kind), value_of(template.profile_type), template.crs,
                   tuple(FieldSpec.of(f) for f in template.fields))

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> TemplateSpec:
        return cls(snap["name"], snap["customer_kind"], snap.get("profile_type"), snap.get("crs", "wgs84"),
                   tuple(FieldSpec.of(f) for f in snap["fields"]))

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "customer_kind": self.customer_kind, "profile_type": self.profile_type,
                "crs": self.crs, "fields": [f.as_json() for f in self.fields]}

    def by_column(self) -> dict[str, FieldSpec]:
        return {f.maps_to: f for f in self.fields if f.maps_to}


def value_of(v: Any) -> Any:
    """An enum's value (or the value itself)."""
    return getattr(v, "value", v)


def check_template(session: Session, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate a template's fields against each other and the dictionary; the normalised field list."""
    specs = [FieldSpec.of(f) for f in data["fields"]]
    errors: dict[str, list[str]] = {}

    def err(i: int, attr: str, message: str) -> None:
        errors.setdefault(f"fields.{i}.{attr}", []).append(message)

    if not 1 <= len(specs) <= 100:
        raise ValidationFailed.on("fields", "字段数须在 1 到 100 之间")
    known_dicts = set(session.scalars(select(DictType.code)))
    seen: dict[str, set[str]] = {"key": set(), "label": set(), "maps_to": set()}
    for i, spec in enumerate(specs):
        for attr, value in (("key", spec.key), ("label", spec.label.strip()), ("maps_to", spec.maps_to)):
            if value is not None and value in seen[attr]:
                err(i, attr, "与其他字段重复")
            seen[attr].add(value)  # type: ignore[arg-type]
        if not KEY_RE.fullmatch(spec.key):
            err(i, "key", "须以小写字母开头，仅含小写字母、数字和下划线，最长 40")
        if not 1 <= len(spec.label.strip()) <= 50 or spec.label != spec.label.strip():
            err(i, "label", "须为 1 到 50 个字符，首尾无空格")
        _check_field(spec, known_dicts, lambda attr, message, i=i: err(i, attr, message))
    if "name" not in seen["maps_to"]:
        errors.setdefault("fields", []).append("须有一个字段对应客户名称（maps_to = name）")
    kind, mapped = data["customer_kind"], seen["maps_to"]
    if "kind" not in mapped and ("id_number" in mapped and kind != "person" or "uscc" in mapped and kind != "company"):
        errors.setdefault("fields", []).append("身份证号只用于个人名单，统一社会信用代码只用于公司名单")
    if errors:
        raise ValidationFailed("模板字段校验失败", code="TEMPLATE_INVALID", errors=errors)
    return [s.as_json() for s in specs]


def _check_field(spec: FieldSpec, known_dicts: set[str], err: Callable[[str, str], None]) -> None:
    if spec.value_type not in FIELD_TYPES:
        err("type", "类型须为 " + "、".join(FIELD_TYPES))
    if (spec.value_type == "enum") != (spec.dict_code is not None):
        err("dict_code", "枚举字段须指定参数字典，其他类型不能指定")
    elif spec.dict_code is not None and spec.dict_code not in known_dicts:
        err("dict_code", f"参数字典 {spec.dict_code} 不存在")
    if spec.regex is not None:
        try:
            re.compile(spec.regex)
        except re.error as exc:
            err("regex", f"正则表达式无效：{exc}")
        if len(spec.regex) > 200:
            err("regex", "正则表达式最长 200 个字符")
    if spec.maps_to is not None:
        if spec.maps_to not in MAPS_TO:
            err("maps_to", "可选：" + "、".join(MAPS_TO) + "，或留空（附加属性）")
        elif spec.value_type not in MAPS_TO[spec.maps_to][0]:
            err("type", f"对应 {spec.maps_to} 的字段类型须为 " + "、".join(MAPS_TO[spec.maps_to][0]))
        elif spec.max_length and spec.max_length > MAPS_TO[spec.maps_to][1]:
            err("max_length", f"不能超过 {MAPS_TO[spec.maps_to][1]}")
    if spec.max_length is not None and not 1 <= spec.max_length <= MAX_FIELD_LENGTH:
        err("max_length", f"须在 1 到 {MAX_FIELD_LENGTH} 之间")


def list_templates(session: Session) -> list[CustomerListTemplate]:
    stmt = select(CustomerListTemplate).order_by(CustomerListTemplate.is_builtin.desc(), CustomerListTemplate.id)
    return list(session.scalars(stmt))


def get_template(session: Session, template_id: int) -> CustomerListTemplate:
    template = session.get(CustomerListTemplate, template_id) if valid_id(template_id) else None
    if template is None:
        raise NotFound("名单模板不存在", code="LIST_TEMPLATE_NOT_FOUND")
    return template


def create_template(session: Session, actor: Principal, data: dict[str, Any]) -> CustomerListTemplate:
    """A template of the actor's org (a scope-all admin's templates are shared by every org)."""
    fields = check_template(session, data)
    template = CustomerListTemplate(
        name=data["name"], description=data.get("description"), customer_kind=CustomerKind(data["customer_kind"]),
        profile_type=ProfileType(data["profile_type"]) if data.get("profile_type") else None,
        crs=data.get("crs", "wgs84"), fields=fields, is_builtin=False,
        org_id=None if actor.scope is DataScope.all else actor.org_id, created_by=actor.user_id,
        updated_by=actor.user_id)
    _check_name_free(session, template.org_id, template.name, None)
    session.add(template)
    session.flush()
    return template


def _check_name_free(session: Session, org_id: int | None, name: str, own_id: int | None) -> None:
    with elevated(session, reason="list template name check"):
        taken = session.scalar(select(func.count()).select_from(CustomerListTemplate).where(
            func.coalesce(CustomerListTemplate.org_id, 0) == (org_id or 0), CustomerListTemplate.name == name,
            CustomerListTemplate.id.is_distinct_from(own_id)))
    if taken:
        raise Conflict("同名模板已存在", code="LIST_TEMPLATE_DUPLICATE", errors={"name": ["同名模板已存在"]})


def _writable(actor: Principal, template: CustomerListTemplate) -> None:
    if template.org_id is None and actor.scope is not DataScope.all:
        raise PermissionDenied("共享模板只能由总行管理员维护", code="LIST_TEMPLATE_SHARED")


def update_template(session: Session, actor: Principal, template_id: int,
                    data: dict[str, Any]) -> CustomerListTemplate:
    template = get_template(session, template_id)
    _writable(actor, template)
    merged = {"customer_kind": value_of(template.customer_kind), "fields": template.fields, **data}
    if "fields" in data or "customer_kind" in data:
        template.fields = check_template(session, merged)
    if "name" in data:
        _check_name_free(session, template.org_id, data["name"], template.id)
    for key in ("name", "description", "crs"):
        if key in data:
            setattr(template, key, data[key])
    if "customer_kind" in data:
        template.customer_kind = CustomerKind(data["customer_kind"])
    if "profile_type" in data:
        template.profile_type = ProfileType(data["profile_type"]) if data["profile_type"] else None
    template.updated_by = actor.user_id
    session.flush()
    return template


def delete_template(session: Session, actor: Principal, template_id: int) -> None:
    template = get_template(session, template_id)
    if template.is_builtin:
        raise Conflict("内置模板不能删除", code="LIST_TEMPLATE_BUILTIN")
    _writable(actor, template)
    with elevated(session, reason="list template usage check"):
        used = session.scalar(select(func.count()).select_from(CustomerImportBatch)
                              .where(CustomerImportBatch.template_id == template.id))
    if used:
        raise Conflict(f"模板已被 {used} 个导入批次使用，不能删除", code="LIST_TEMPLATE_IN_USE")
    session.delete(template)
    session.flush()


def blank_file(template: CustomerListTemplate, fmt: str) -> bytes:
    """An empty list file with the field labels as headers (identifier columns formatted as text in XLSX)."""
    labels = [f.label for f in TemplateSpec.of(template).fields]
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerow(labels)
        return buf.getvalue().encode("utf-8-sig")
    if fmt != "xlsx":
        raise ValidationFailed.on("format", "必须是 csv 或 xlsx")
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = re.sub(r"[\[\]:*?/\\]", "_", template.name)[:31] or "名单"
    ws.append(labels)
    for i, spec in enumerate(TemplateSpec.of(template).fields, start=1):
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = max(12, min(40, spec.limit // 2))
        if spec.maps_to in ("id_number", "uscc", "phone", "customer_no") or spec.value_type == "string":
            for row in range(2, 1002):  # text cells, so Excel keeps 18-digit numbers and leading zeros
                ws.cell(row=row, column=i).number_format = "@"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# -- files ------------------------------------------------------------------------------------------------------

def _reject(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="IMPORT_REJECTED", errors={"file": [message]})


def read_table(filename: str, data: bytes) -> list[tuple[int, list[str]]]:
    """(row number, cells) of the non-blank rows; the first is the header. CSV may be UTF-8 (BOM) or GBK."""
    if len(data) > MAX_IMPORT_BYTES:
        raise _reject(f"文件超过 {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    name = filename.lower()
    if name.endswith(".csv"):
        rows = _read_csv(data)
    elif name.endswith(".xlsx"):
        rows = _read_xlsx(data)
    else:
        raise _reject("仅支持 .csv 或 .xlsx 文件")
    table = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not table:
        raise _reject("文件为空")
    if len(table) - 1 > MAX_IMPORT_ROWS:
        raise _reject(f"单个名单最多 {MAX_IMPORT_ROWS} 行")
    return table


def _read_csv(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            decoded = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _reject("CSV 编码无法识别（请使用 UTF-8 或 GBK）")
    reader = csv.reader(io.StringIO(decoded, newline=""))
    try:
        return list(reader)
    except csv.Error as exc:  # e.g. a cell over csv.field_size_limit() (128 KB)
        raise _reject(f"第 {reader.line_num} 行无法解析：{exc}") from exc


def _read_xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = wb.worksheets[0]
        rows = [["" if v is None else _cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        wb.close()
    except Exception as exc:  # openpyxl raises many types for corrupt files
        raise _reject(f"无法读取 Excel 文件：{exc.__class__.__name__}") from exc
    return rows


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    return str(value).strip()


def seal(keys: Keys, table: list[tuple[int, list[str]]]) -> bytes:
    """The rows as read (row number + cells, so XLSX is parsed once), compressed and SM4-GCM encrypted:
    they contain identifiers in clear."""
    buf = io.StringIO()
    csv.writer(buf).writerows([str(row_no), *cells] for row_no, cells in table)
    packed = base64.b64encode(zlib.compress(buf.getvalue().encode("utf-8"), 1)).decode("ascii")
    return crypto.sm4_encrypt(packed, keys.sm4, aad=FILE_AAD)


def unseal(keys: Keys, blob: bytes) -> list[tuple[int, list[str]]]:
    text_ = zlib.decompress(base64.b64decode(crypto.sm4_decrypt(blob, keys.sm4, aad=FILE_AAD))).decode("utf-8")
    return [(int(r[0]), r[1:]) for r in csv.reader(io.StringIO(text_, newline=""))]


def map_header(spec: TemplateSpec, header: list[str]) -> tuple[list[tuple[int, FieldSpec]], list[str]]:
    """Columns by label (or key) -> fields; the ignored headers. Missing required columns reject the file."""
    lookup = {f.label: f for f in spec.fields} | {f.key: f for f in spec.fields}
    columns: list[tuple[int, FieldSpec]] = []
    ignored, taken = [], set()
    for index, cell in enumerate(header):
        spec_field = lookup.get(cell.strip()) or lookup.get(cell.strip().lower())
        if spec_field is None or spec_field.key in taken:
            if cell.strip():
                ignored.append(cell.strip())
            continue
        taken.add(spec_field.key)
        columns.append((index, spec_field))
    missing = [f for f in spec.fields if f.required and f.key not in taken]
    if missing:
        raise _reject("缺少必填列：" + "、".join(f.label for f in missing))
    if not columns:
        raise _reject("表头与模板字段都不匹配（第一行须为字段名称）")
    return columns, ignored


# -- row validation -----------------------------------------------------------------------------------------------

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


# -- batches --------------------------------------------------------------------------------------------------------

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
        raise _reject("文件没有数据行")
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


def _store_validation(batch: CustomerImportBatch, validation: Validation) -> None:
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
    _store_validation(batch, validation)
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


# -- the import (run by jobs/customer_imports.py) ------------------------------------------------------------------

def load_actor(session: Session, user_id: int) -> Principal:
    """The importer as a principal (current roles and scope); he must still be active and hold list:edit."""
    user = session.get(User, user_id)
    if user is None or user.status is not UserStatus.active:
        raise PermissionDenied("导入人账户不存在或已停用", code="IMPORTER_INACTIVE")
    permissions = frozenset(p.code for r in user.roles for p in r.permissions)
    if "list:edit" not in permissions:
        raise PermissionDenied("导入人已没有导入名单的权限", code="PERMISSION_DENIED")
    org_path = session.scalar(select(Org.path).where(Org.id == user.org_id))
    return Principal(user_id=user.id, username=user.username, name=user.name, org_id=user.org_id,
                     org_path=str(org_path), scope=widest(r.data_scope for r in user.roles),
                     permissions=permissions, client="job")


@contextmanager
def acting_as(session: Session, actor: Principal) -> Iterator[Session]:
    """Run under the actor's data scope (RLS), keeping the request/job id for the audit log."""
    previous = get_context(session)
    set_context(session, replace(actor.db_context(), request_id=previous.request_id, client_ip=previous.client_ip))
    try:
        yield session
    finally:
        set_context(session, previous)


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
        _store_validation(batch, validation)
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

