"""Customer list templates (名单模板): the columns of a list file and the customer column each one fills.

A template lists the columns of a list file - type, required, dictionary, regex, unique key - and the customer
column each one fills (`maps_to`; none = an extra attribute kept on the list entry). Templates of an org are its
own; a scope-all admin's templates are shared by every org. `blank_file` writes an empty file to fill in.
Part of the customer lists (geo_core.customers.lists re-exports the public names).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo_core.customers.lists_models import CustomerImportBatch, CustomerListTemplate
from geo_core.customers.models import CustomerKind, ProfileType
from geo_core.db import elevated
from geo_core.dictionary.models import DictType
from geo_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from geo_core.paging import valid_id
from geo_core.scope import DataScope, Principal

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
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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

