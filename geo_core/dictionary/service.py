"""Parameter settings (参数设置): typed code tables and their items. Global tables, guarded by permissions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from geo_core import tabular
from geo_core.dictionary.models import DictItem, DictType, ValueType
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.paging import Page, like_pattern, paginate, valid_id

TYPE_FIELDS = ("code", "name", "value_type", "description")
ITEM_FIELDS = ("code", "label", "value", "sort_order", "is_active")
MAX_VALUE_LEN = 200
TRUE_WORDS = {"true", "1", "yes", "是"}
FALSE_WORDS = {"false", "0", "no", "否"}


# -- values ---------------------------------------------------------------------------------------

def normalize_value(value_type: ValueType | str, raw: Any) -> str | None:
    """The canonical text of `raw` for a value type; ValueError with a Chinese message if it does not fit."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    kind = ValueType(value_type)
    if kind is ValueType.boolean:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        word = str(raw).strip().lower()
        if word in TRUE_WORDS | FALSE_WORDS:
            return "true" if word in TRUE_WORDS else "false"
        raise ValueError("布尔值须为 true 或 false")
    text = str(raw).strip()
    if kind is ValueType.integer:
        try:
            if isinstance(raw, bool | float):
                raise ValueError(text)
            return str(int(text))
        except ValueError as exc:
            raise ValueError("须为整数") from exc
    if kind is ValueType.decimal:
        try:
            number = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError("须为数字") from exc
        if isinstance(raw, bool) or not number.is_finite():
            raise ValueError("须为数字")
        return str(number)
    if kind is ValueType.date:
        try:
            parsed = date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError("日期格式须为 YYYY-MM-DD") from exc
        if len(text) != 10:
            raise ValueError("日期格式须为 YYYY-MM-DD")
        return parsed.isoformat()
    if len(str(raw)) > MAX_VALUE_LEN:
        raise ValueError(f"长度不能超过 {MAX_VALUE_LEN}")
    return str(raw)


def _checked_value(value_type: ValueType | str, raw: Any) -> str | None:
    try:
        return normalize_value(value_type, raw)
    except ValueError as exc:
        label = {"string": "文本", "integer": "整数", "decimal": "数字", "boolean": "布尔", "date": "日期"}
        raise ValidationFailed(f"参数值不符合类型（{label[ValueType(value_type).value]}）",
                               errors={"value": [str(exc)]}) from exc


# -- types ------------------------------------------------------------------------------------------

def get_type(session: Session, type_id: int) -> DictType:
    dtype = session.get(DictType, type_id) if valid_id(type_id) else None
    if dtype is None:
        raise NotFound("参数类型不存在", code="DICT_TYPE_NOT_FOUND")
    return dtype


def get_type_by_code(session: Session, code: str) -> DictType:
    dtype = session.scalar(select(DictType).where(DictType.code == code))
    if dtype is None:
        raise NotFound("参数类型不存在", code="DICT_TYPE_NOT_FOUND")
    return dtype


def select_types(q: str | None = None) -> Select[Any]:
    stmt = select(DictType).options(selectinload(DictType.items)).order_by(DictType.code)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(DictType.code.ilike(pattern), DictType.name.ilike(pattern)))
    return stmt


def list_types(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[DictType]:
    return paginate(session, select_types(**filters), page, page_size)


def _check_type_code_free(session: Session, code: str, own_id: int | None = None) -> None:
    taken = session.scalar(select(DictType.id).where(DictType.code == code, DictType.id != (own_id or 0)))
    if taken is not None:
        raise Conflict(f"参数类型代码 {code} 已存在", code="DICT_TYPE_CODE_TAKEN",
                       errors={"code": ["类型代码已存在"]})


def create_type(session: Session, data: dict[str, Any]) -> DictType:
    _check_type_code_free(session, data["code"])
    dtype = DictType(**{k: data.get(k) for k in TYPE_FIELDS}, is_system=False)
    dtype.value_type = ValueType(data.get("value_type") or ValueType.string)
    session.add(dtype)
    session.flush()
    return dtype


def update_type(session: Session, type_id: int, data: dict[str, Any]) -> DictType:
    dtype = get_type(session, type_id)
    if "code" in data and data["code"] != dtype.code:
        if dtype.is_system:
            raise Conflict("系统参数类型的代码不能修改", code="DICT_TYPE_SYSTEM",
                           errors={"code": ["系统类型代码不能修改"]})
        _check_type_code_free(session, data["code"], dtype.id)
    if "value_type" in data and data["value_type"] != dtype.value_type:
        bad = []
        for item in dtype.items:
            try:
                normalize_value(data["value_type"], item.value)
            except ValueError:
                bad.append(item.code)
        if bad:
            raise ValidationFailed("已有参数值不符合新的值类型",
                                   errors={"value_type": [f"以下参数值不符合新类型：{', '.join(bad)}"]})
    for key in TYPE_FIELDS:
        if key in data:
            setattr(dtype, key, ValueType(data[key]) if key == "value_type" else data[key])
    session.flush()
    return dtype


def delete_type(session: Session, type_id: int) -> None:
    dtype = get_type(session, type_id)
    if dtype.is_system:
        raise Conflict("系统参数类型不能删除", code="DICT_TYPE_SYSTEM")
    session.delete(dtype)  # its items go with it
    session.flush()


# -- items ----------------------------------------------------------------------------------------

def get_item(session: Session, item_id: int) -> DictItem:
    item = session.get(DictItem, item_id) if valid_id(item_id) else None
    if item is None:
        raise NotFound("参数项不存在", code="DICT_ITEM_NOT_FOUND")
    return item


def select_items(q: str | None = None, type_code: str | None = None,
                 is_active: bool | None = None) -> Select[Any]:
    stmt = select(DictItem).join(DictType).order_by(DictType.code, DictItem.sort_order, DictItem.id)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(DictItem.code.ilike(pattern), DictItem.label.ilike(pattern),
                              DictItem.value.ilike(pattern)))
    if type_code:
        stmt = stmt.where(DictType.code == type_code)
    if is_active is not None:
        stmt = stmt.where(DictItem.is_active == is_active)
    return stmt


def list_items(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[DictItem]:
    return paginate(session, select_items(**filters), page, page_size)


def _type_for_item(session: Session, type_code: str) -> DictType:
    dtype = session.scalar(select(DictType).where(DictType.code == type_code))
    if dtype is None:
        raise ValidationFailed("参数类型不存在", errors={"type_code": [f"参数类型 {type_code} 不存在"]})
    return dtype


def _check_item_code_free(session: Session, type_id: int, code: str, own_id: int | None = None) -> None:
    taken = session.scalar(select(DictItem.id).where(DictItem.type_id == type_id, DictItem.code == code,
                                                     DictItem.id != (own_id or 0)))
    if taken is not None:
        raise Conflict(f"参数项代码 {code} 在该类型下已存在", code="DICT_ITEM_CODE_TAKEN",
                       errors={"code": ["该类型下参数项代码已存在"]})


def create_item(session: Session, data: dict[str, Any]) -> DictItem:
    dtype = _type_for_item(session, data["type_code"])
    _check_item_code_free(session, dtype.id, data["code"])
    values = {k: data[k] for k in ITEM_FIELDS if k in data}
    values["value"] = _checked_value(dtype.value_type, data.get("value"))
    item = DictItem(type_id=dtype.id, **values)
    session.add(item)
    session.flush()
    return item


def update_item(session: Session, item_id: int, data: dict[str, Any]) -> DictItem:
    item = get_item(session, item_id)
    dtype = _type_for_item(session, data["type_code"]) if "type_code" in data else item.dict_type
    if dtype.id != item.type_id or data.get("code", item.code) != item.code:
        _check_item_code_free(session, dtype.id, data.get("code", item.code), item.id)
    value = _checked_value(dtype.value_type, data.get("value", item.value))
    for key in ITEM_FIELDS:
        if key in data:
            setattr(item, key, data[key])
    item.value = value
    item.dict_type = dtype
    session.flush()
    return item


def delete_item(session: Session, item_id: int) -> None:
    session.delete(get_item(session, item_id))
    session.flush()


# -- import / export --------------------------------------------------------------------------------

COLUMNS = (
    tabular.TableColumn("type_code", "参数类型代码", True, tabular.max_len(64)),
    tabular.TableColumn("code", "参数项代码", True, tabular.max_len(64)),
    tabular.TableColumn("label", "显示名称", True, tabular.max_len(100)),
    tabular.TableColumn("value", "参数值", False, tabular.max_len(MAX_VALUE_LEN)),
    tabular.TableColumn("sort_order", "排序", False, tabular.parse_int),
    tabular.TableColumn("is_active", "是否启用", False, tabular.parse_bool),
)


def export_rows(session: Session, **filters: Any) -> list[dict[str, Any]]:
    stmt = select_items(**filters).add_columns(DictType.code)
    return [{**{k: getattr(item, k) for k in ITEM_FIELDS}, "type_code": type_code}
            for item, type_code in session.execute(stmt)]


def import_items(session: Session, filename: str, data: bytes) -> dict[str, int]:
    """Upsert items by (type_code, code). Every row is checked first; then all rows or none."""
    sheet = tabular.parse_rows(tabular.drop_key_row(tabular.read_sheet(filename, data), COLUMNS), COLUMNS)
    types = {t.code: t for t in session.scalars(select(DictType))}
    seen: dict[tuple[str, str], int] = {}
    for row, v in sheet.rows:
        key = (v.get("type_code") or "", v.get("code") or "")
        if key in seen and all(key):
            sheet.error(row, "code", f"参数项 {key[0]}/{key[1]} 与第 {seen[key]} 行重复")
        seen.setdefault(key, row)
        dtype = types.get(key[0])
        if key[0] and dtype is None:
            sheet.error(row, "type_code", f"参数类型 {key[0]} 不存在")
        elif dtype is not None and "value" in v:
            try:
                v["value"] = normalize_value(dtype.value_type, v.get("value"))
            except ValueError as exc:
                sheet.error(row, "value", f"参数值：{exc}")
    sheet.raise_if_errors()
    existing = {(t.code, i.code): i for t in types.values() for i in t.items}
    created = updated = 0
    for _, v in sheet.rows:
        item = existing.get((v["type_code"], v["code"]))
        values = {k: v[k] for k in ITEM_FIELDS if k in v and (v[k] is not None or k == "value")}
        if item is None:
            session.add(DictItem(type_id=types[v["type_code"]].id, **values))
            created += 1
        else:
            for key, value in values.items():
                setattr(item, key, value)
            updated += 1
    session.flush()
    return {"created": created, "updated": updated}
