"""Profile templates (建档模板): the bank's field list per profile type, versioned.

A field is `{key, label, type, required, options, regex, min, max, max_length, group, unit, weight, help}`.
Editing a template inserts version n+1 (profiles keep the version they were filled against); at most one
template is active per profile type, and new profiles are filled against it. `check_data` validates profile
data against a template version and `score` gives the completeness and the missing fields.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo_core.customers.identifiers import normalise_phone
from geo_core.customers.models import ProfileType
from geo_core.customers.profile_models import ProfileTemplate
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.paging import valid_id
from geo_core.scope import Principal

FIELD_TYPES = ("string", "text", "integer", "decimal", "date", "boolean", "enum", "multi_enum", "phone")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_FIELDS = 200
MAX_NUMBER = 10**15  # beyond any amount in yuan; keeps values exact as JSON numbers
DEFAULT_MAX_LENGTH = {"string": 200, "text": 2000}
FIELD_KEYS = ("key", "label", "type", "required", "options", "regex", "min", "max", "max_length", "group", "unit",
              "weight", "help")


# -- field specifications -----------------------------------------------------------------------------

def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_field(raw: Any, errors: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        errors.append("字段定义必须是对象")
        return None
    unknown = sorted(set(raw) - set(FIELD_KEYS))
    if unknown:
        errors.append(f"未知属性：{', '.join(map(str, unknown))[:100]}")
    key, label, type_ = raw.get("key"), raw.get("label"), raw.get("type")
    if not isinstance(key, str) or not KEY_RE.match(key):
        errors.append("key 须为小写字母开头的字母、数字、下划线，最长 40 位")
    if not isinstance(label, str) or not 1 <= len(label.strip()) <= 50:
        errors.append("label 须为 1-50 个字符")
    if type_ not in FIELD_TYPES:
        errors.append(f"type 须为 {'/'.join(FIELD_TYPES)} 之一")
    field = {k: raw.get(k) for k in FIELD_KEYS}
    field["required"] = raw.get("required", False)
    if not isinstance(field["required"], bool):
        errors.append("required 须为布尔值")
    options = raw.get("options")
    if type_ in ("enum", "multi_enum"):
        if not isinstance(options, list) or not 1 <= len(options) <= 200:
            errors.append("枚举字段须提供 1-200 个选项")
        else:
            values = []
            for option in options:
                if (not isinstance(option, dict) or not isinstance(option.get("value"), str)
                        or not 1 <= len(option["value"]) <= 40 or not isinstance(option.get("label"), str)
                        or not 1 <= len(option["label"]) <= 50 or set(option) - {"value", "label"}):
                    errors.append("选项须为 {value, label}（各 1-40 / 1-50 个字符）")
                    break
                values.append(option["value"])
            if len(set(values)) != len(values):
                errors.append("选项值不能重复")
    elif options not in (None, []):
        errors.append("只有枚举字段可以设置选项")
    else:
        field["options"] = None
    regex = raw.get("regex")
    if regex is not None:
        if type_ not in ("string", "text", "phone") or not isinstance(regex, str) or len(regex) > 200:
            errors.append("regex 只能用于文本字段，最长 200 个字符")
        else:
            try:
                re.compile(regex)
            except re.error:
                errors.append("regex 不是合法的正则表达式")
    for bound in ("min", "max"):
        value = raw.get(bound)
        if value is not None and (type_ not in ("integer", "decimal") or not _number(value)):
            errors.append(f"{bound} 只能用于数值字段，且须为数字")
    if _number(raw.get("min")) and _number(raw.get("max")) and raw["min"] > raw["max"]:
        errors.append("min 不能大于 max")
    max_length = raw.get("max_length")
    if max_length is not None and (type_ not in ("string", "text") or not isinstance(max_length, int)
                                   or isinstance(max_length, bool) or not 1 <= max_length <= 2000):
        errors.append("max_length 只能用于文本字段，取值 1-2000")
    weight = raw.get("weight")
    if weight is not None and (not _number(weight) or not 0 < weight <= 100):
        errors.append("weight 须为 (0, 100] 之间的数字")
    for name, limit in (("group", 30), ("unit", 10), ("help", 200)):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors.append(f"{name} 须为不超过 {limit} 个字符的文本")
    return field


def check_fields(raw_fields: Any) -> list[dict[str, Any]]:
    """Validate a template's field list; 422 with messages per field position."""
    if not isinstance(raw_fields, list) or not 1 <= len(raw_fields) <= MAX_FIELDS:
        raise ValidationFailed.on("fields", f"须提供 1-{MAX_FIELDS} 个字段")
    errors: dict[str, list[str]] = {}
    out, seen = [], set()
    for i, raw in enumerate(raw_fields):
        problems: list[str] = []
        field = _check_field(raw, problems)
        if field and isinstance(field.get("key"), str):
            if field["key"] in seen:
                problems.append(f"key {field['key']} 重复")
            seen.add(field["key"])
        if problems:
            errors[str(i)] = problems
        elif field:
            out.append(field)
    if errors:
        raise ValidationFailed("模板字段定义有误", errors={"fields": errors})
    return out


def weight_of(field: dict[str, Any]) -> float:
    """A field's weight in the completeness score: explicit, else 2 for required fields and 1 for others."""
    weight = field.get("weight")
    return float(weight) if weight else (2.0 if field.get("required") else 1.0)


# -- profile data against a template ---------------------------------------------------------------------

def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _check_value(field: dict[str, Any], value: Any) -> tuple[Any, str | None]:  # noqa: C901 - one branch per type
    type_ = field["type"]
    if type_ in ("string", "text", "phone"):
        if not isinstance(value, str):
            return None, "须为文本"
        value = value.strip()
        limit = field.get("max_length") or DEFAULT_MAX_LENGTH.get(type_, 30)
        if len(value) > limit:
            return None, f"不能超过 {limit} 个字符"
        if type_ == "phone":
            try:
                value = normalise_phone(value)
            except ValueError:
                return None, "不是有效的手机号或固定电话"
        if field.get("regex") and not re.fullmatch(field["regex"], value):
            return None, "格式不正确"
        return value, None
    if type_ in ("integer", "decimal"):
        if isinstance(value, bool):
            return None, "须为数字"
        if type_ == "integer":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                return None, "须为整数"
            number: Any = value
        else:
            try:
                number = Decimal(str(value)) if isinstance(value, int | float | str) else None
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                return None, "须为数字"
            if number.as_tuple().exponent < -4:  # type: ignore[operator]
                return None, "最多 4 位小数"
        if abs(number) > MAX_NUMBER:
            return None, "数值过大"
        if field.get("min") is not None and number < Decimal(str(field["min"])):
            return None, f"不能小于 {field['min']}"
        if field.get("max") is not None and number > Decimal(str(field["max"])):
            return None, f"不能大于 {field['max']}"
        return (number if type_ == "integer" else float(number)), None
    if type_ == "date":
        if isinstance(value, str) and len(value) == 10:
            try:
                return date.fromisoformat(value).isoformat(), None
            except ValueError:
                pass
        return None, "须为 YYYY-MM-DD 格式的日期"
    if type_ == "boolean":
        return (value, None) if isinstance(value, bool) else (None, "须为 true 或 false")
    allowed = {o["value"] for o in field.get("options") or ()}
    if type_ == "enum":
        return (value, None) if isinstance(value, str) and value in allowed else (None, "不是可选的值")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None, "须为选项值的列表"
    if not set(value) <= allowed:
        return None, f"不是可选的值：{', '.join(sorted(set(value) - allowed))[:100]}"
    return list(dict.fromkeys(value)), None


def check_data(template: ProfileTemplate, data: Any) -> dict[str, Any]:
    """Validated, normalised data (blank values dropped); 422 {data: {key: [message]}} otherwise."""
    if not isinstance(data, dict):
        raise ValidationFailed.on("data", "须为对象")
    by_key = {f["key"]: f for f in template.fields}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for key, value in data.items():
        field = by_key.get(key)
        if field is None:
            errors[str(key)[:50]] = ["模板中没有该字段"]
            continue
        if is_blank(value):
            continue
        checked, problem = _check_value(field, value)
        if problem:
            errors[key] = [f"{field['label']}{problem}"]
        else:
            clean[key] = checked
    if errors:
        raise ValidationFailed("建档信息校验失败", errors={"data": errors})
    return clean


@dataclass(frozen=True)
class Score:
    completeness: Decimal  # weighted share of fields filled, 0..1
    missing: list[str]  # unfilled keys, template order
    missing_required: list[str]

    @property
    def is_complete(self) -> bool:
        return not self.missing_required


def score(fields: list[dict[str, Any]], data: dict[str, Any]) -> Score:
    total = sum(weight_of(f) for f in fields)
    filled = sum(weight_of(f) for f in fields if not is_blank(data.get(f["key"])))
    missing = [f["key"] for f in fields if is_blank(data.get(f["key"]))]
    required = [f["key"] for f in fields if f.get("required") and f["key"] in missing]
    value = Decimal(str(round(filled / total, 4))) if total else Decimal(1)
    return Score(value, missing, required)


# -- template CRUD ---------------------------------------------------------------------------------

def get_template(session: Session, template_id: int) -> ProfileTemplate:
    template = session.get(ProfileTemplate, template_id) if valid_id(template_id) else None
    if template is None:
        raise NotFound("建档模板不存在", code="PROFILE_TEMPLATE_NOT_FOUND")
    return template


def active_template(session: Session, profile_type: ProfileType | str) -> ProfileTemplate:
    template = session.scalar(select(ProfileTemplate).where(ProfileTemplate.profile_type == ProfileType(profile_type),
                                                            ProfileTemplate.is_active))
    if template is None:
        raise ValidationFailed.on("profile_type", "该建档类型没有启用的模板", code="NO_ACTIVE_TEMPLATE")
    return template


def list_templates(session: Session, *, profile_type: str | None = None, code: str | None = None,
                   all_versions: bool = False) -> list[ProfileTemplate]:
    stmt = select(ProfileTemplate).order_by(ProfileTemplate.profile_type, ProfileTemplate.code,
                                            ProfileTemplate.version.desc())
    if not all_versions:
        stmt = stmt.where(ProfileTemplate.is_current)
    if profile_type:
        stmt = stmt.where(ProfileTemplate.profile_type == ProfileType(profile_type))
    if code:
        stmt = stmt.where(ProfileTemplate.code == code)
    return list(session.scalars(stmt))


def _deactivate_others(session: Session, profile_type: ProfileType, keep_code: str | None) -> None:
    for other in session.scalars(select(ProfileTemplate).where(ProfileTemplate.profile_type == profile_type,
                                                               ProfileTemplate.is_active)):
        if other.code != keep_code:
            other.is_active = False
    session.flush()


def create_template(session: Session, actor: Principal, data: dict[str, Any]) -> ProfileTemplate:
    """A new template (version 1); `activate` makes it the one its profile type is filled against."""
    if session.scalar(select(func.count()).where(ProfileTemplate.code == data["code"])):
        raise Conflict("模板编码已存在", code="PROFILE_TEMPLATE_EXISTS", errors={"code": ["模板编码已存在"]})
    fields = check_fields(data["fields"])
    profile_type = ProfileType(data["profile_type"])
    activate = data.get("activate", True)
    if activate:
        _deactivate_others(session, profile_type, None)
    template = ProfileTemplate(code=data["code"], version=1, profile_type=profile_type, name=data["name"],
                               description=data.get("description"), fields=fields, is_current=True,
                               is_active=activate, created_by=actor.user_id)
    session.add(template)
    session.flush()
    return template


def edit_template(session: Session, actor: Principal, template_id: int, data: dict[str, Any]) -> ProfileTemplate:
    """Editing makes a new version of the template's code; the edited version stays for old profiles."""
    old = get_template(session, template_id)
    if not old.is_current:
        raise Conflict("只能修改模板的最新版本", code="PROFILE_TEMPLATE_NOT_CURRENT")
    fields = check_fields(data["fields"]) if "fields" in data else old.fields
    activate = data.get("activate", old.is_active)
    old.is_current = old.is_active = False
    session.flush()
    if activate:
        _deactivate_others(session, old.profile_type, old.code)
    new = ProfileTemplate(code=old.code, version=old.version + 1, profile_type=old.profile_type,
                          name=data.get("name", old.name), description=data.get("description", old.description),
                          fields=fields, is_current=True, is_active=activate, is_builtin=old.is_builtin,
                          created_by=actor.user_id)
    session.add(new)
    session.flush()
    return new


def set_active(session: Session, template_id: int, active: bool) -> ProfileTemplate:
    """Deactivate (profiles of its type cannot be saved until another is active) or re-activate."""
    template = get_template(session, template_id)
    if not template.is_current:
        raise Conflict("只能启用/停用模板的最新版本", code="PROFILE_TEMPLATE_NOT_CURRENT")
    if active:
        _deactivate_others(session, template.profile_type, template.code)
    template.is_active = active
    session.flush()
    return template
