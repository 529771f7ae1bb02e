"""Rule language for rule tags and group attribute filters: a JSON tree over a whitelist of fields.

    {"all": [{"field": "deposit_balance", "op": ">=", "value": 500000},
             {"field": "age", "op": "between", "value": [22, 35]},
             {"not": {"field": "tag", "op": "has", "value": 7}}]}

A node is `{"all": [...]}`, `{"any": [...]}`, `{"not": node}` or a condition `{"field", "op", "value"}`. Each
field maps to a SQLAlchemy expression over `customers`; every value becomes a bound parameter (nothing from the
rule is ever written into SQL text). `check_rule` reports every problem with the path of the bad node
(`rule.all.1.value`); `compile_rule` returns the boolean expression and the ids the rule refers to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Date, String, and_, cast, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.orm import aliased

from geo_core.customers.models import Customer, CustomerCategory, CustomerKind, ProfileType
from geo_core.errors import ValidationFailed
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org
from geo_core.paging import like_pattern, valid_id
from geo_core.tags.models import CustomerTag

MAX_DEPTH = 6
MAX_NODES = 100
MAX_LIST = 500
MAX_NUMBER = 1e15
MAX_OUTLET_METRES = 5000
NUMBER_OPS = ("=", "!=", ">", ">=", "<", "<=", "between")
NULL_OPS = ("is_null", "not_null")

Expr = ColumnElement[bool]


@dataclass
class Refs:
    """Ids a rule refers to, checked by the caller against what he may see."""

    tag: set[int] = field(default_factory=set)
    grid: set[int] = field(default_factory=set)
    org: set[int] = field(default_factory=set)
    owner: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class FieldSpec:
    label: str
    kind: str  # enum | string | number | integer | ids | products | tag | metres
    ops: tuple[str, ...]
    build: Callable[[str, Any, Refs], Expr]
    choices: tuple[str, ...] = ()
    ref: str | None = None  # Refs attribute the ids go to
    minimum: float = -MAX_NUMBER
    maximum: float = MAX_NUMBER


class RuleErrors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}
        self.nodes = 0

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)


# -- field builders -----------------------------------------------------------------------------------------------

def _compare(column: Any, op: str, value: Any) -> Expr:
    if op == "between":
        return and_(column >= value[0], column <= value[1])
    return {"=": column.__eq__, "!=": column.__ne__, ">": column.__gt__, ">=": column.__ge__, "<": column.__lt__,
            "<=": column.__le__}[op](value)


def _scalar(column: Any) -> Callable[[str, Any, Refs], Expr]:
    def build(op: str, value: Any, refs: Refs) -> Expr:
        if op == "is_null":
            return column.is_(None)
        if op == "not_null":
            return column.is_not(None)
        if op == "in":
            return column.in_(value)
        if op == "not_in":
            return column.not_in(value)
        if op == "contains":
            return column.ilike(like_pattern(value))
        return _compare(column, op, value)
    return build


def _years_ago(years: int) -> Any:
    return cast(func.current_date() - func.make_interval(literal(years)), Date)


def _age(op: str, value: Any, refs: Refs) -> Expr:
    """Age in whole years from birth_date, as ranges on birth_date (index-friendly, no per-row age())."""
    born = Customer.birth_date
    at_least = lambda a: born <= _years_ago(a)  # noqa: E731
    below = lambda a: born > _years_ago(a)  # noqa: E731
    if op == "between":
        return and_(at_least(value[0]), below(value[1] + 1))
    return {"=": lambda a: and_(at_least(a), below(a + 1)), "!=": lambda a: or_(below(a), at_least(a + 1)),
            ">": lambda a: at_least(a + 1), ">=": at_least, "<": below, "<=": lambda a: below(a + 1)}[op](value)


def _days_ago(days: int) -> Any:
    return func.now() - func.make_interval(0, 0, 0, literal(days))


def _last_visit(op: str, value: Any, refs: Refs) -> Expr:
    """Days since the last visit; `is_null` = never visited (NULL never matches a number)."""
    seen = Customer.last_visit_at
    if op in NULL_OPS:
        return _scalar(seen)(op, value, refs)
    within = lambda d: seen >= _days_ago(d)  # noqa: E731  at most d days ago
    if op == "between":
        return and_(seen <= _days_ago(value[0]), within(value[1]))
    return {"=": lambda d: and_(seen <= _days_ago(d), seen > _days_ago(d + 1)),
            "!=": lambda d: or_(seen > _days_ago(d), seen <= _days_ago(d + 1)),
            "<=": within, "<": lambda d: seen > _days_ago(d), ">=": lambda d: seen <= _days_ago(d),
            ">": lambda d: seen < _days_ago(d)}[op](value)


def _codes(values: list[str]) -> Any:
    return literal(list(values), PG_ARRAY(String(32)))


def _products(op: str, value: Any, refs: Refs) -> Expr:
    col = Customer.products
    if op in NULL_OPS:
        return (col.is_(None) | (func.cardinality(col) == 0)) if op == "is_null" else (func.cardinality(col) > 0)
    if op == "contains":
        return col.op("@>")(_codes([value]))
    if op == "not_contains":
        return or_(col.is_(None), not_(col.op("@>")(_codes([value]))))
    if op == "contains_all":
        return col.op("@>")(_codes(value))
    return col.op("&&")(_codes(value))  # contains_any


def _subtree(model: Any, ids: list[int]) -> Any:
    """Ids of the rows in the subtrees of `ids` (ltree path <@ any of their paths), under the caller's RLS."""
    roots = aliased(model)
    paths = select(func.array_agg(roots.path)).where(roots.id.in_(ids)).scalar_subquery()
    return select(model.id).where(model.path.op("<@")(paths))


def _grid(op: str, value: Any, refs: Refs) -> Expr:
    refs.grid.update(value)
    inside = Customer.grid_id.in_(_subtree(Grid, value))
    return inside if op == "in" else or_(Customer.grid_id.is_(None), not_(inside))


def _org(op: str, value: Any, refs: Refs) -> Expr:
    refs.org.update(value)
    inside = Customer.org_id.in_(_subtree(Org, value))
    return inside if op == "in" else not_(inside)


def _owner(op: str, value: Any, refs: Refs) -> Expr:
    if op in NULL_OPS:
        return _scalar(Customer.owner_user_id)(op, value, refs)
    refs.owner.update(value)
    col = Customer.owner_user_id
    return col.in_(value) if op == "in" else or_(col.is_(None), col.not_in(value))


def _tag(op: str, value: Any, refs: Refs) -> Expr:
    refs.tag.add(value)
    has = select(CustomerTag.customer_id).where(CustomerTag.customer_id == Customer.id,
                                                CustomerTag.tag_id == value).exists()
    return has if op == "has" else not_(has)


def _outlet(op: str, value: Any, refs: Refs) -> Expr:
    """Within `value` metres of a bank outlet (网点: every org with a location), driven from the outlets: each
    outlet's search box (ST_Expand by the metres in degrees of longitude at its latitude, a superset) is computed
    in a subquery kept apart by OFFSET 0, so `customer.geom && box` compares two columns with the LEAKPROOF
    operator and the customers GiST index serves it under row-level security; then the exact geodesic
    ST_DWithin on geography."""
    outlets = func.gm_outlet_points().table_valued("geom").alias("outlet")
    degrees = literal(float(value)) / (111_000.0 * func.cos(func.radians(func.ST_Y(outlets.c.geom))))
    boxes = select(outlets.c.geom, func.ST_Expand(outlets.c.geom, degrees).label("box")).offset(0).subquery("box")
    near = aliased(Customer, name="near_customer")
    ids = select(near.id).select_from(boxes).join(near, and_(
        near.geom.op("&&")(boxes.c.box),
        func.ST_DWithin(func.geography(near.geom), func.geography(boxes.c.geom), float(value))))
    # IS TRUE keeps the IN a (hashed) SubPlan evaluated once, instead of a semi-join the planner misestimates
    # (it cannot know how many customers lie near the outlets) into a nested loop over every customer
    inside = Customer.id.in_(ids).is_(true())
    return inside if op == "<=" else not_(inside)


_ENUM_OPS = ("=", "!=", "in", "not_in")
_STRING_OPS = ("=", "!=", "in", "not_in", "contains", *NULL_OPS)
FIELDS: dict[str, FieldSpec] = {
    "kind": FieldSpec("客户类型", "enum", _ENUM_OPS, _scalar(Customer.kind), tuple(k.value for k in CustomerKind)),
    "category": FieldSpec("正式/潜在", "enum", _ENUM_OPS, _scalar(Customer.category),
                          tuple(c.value for c in CustomerCategory)),
    "profile_type": FieldSpec("客户分类", "enum", (*_ENUM_OPS, *NULL_OPS), _scalar(Customer.profile_type),
                              tuple(p.value for p in ProfileType)),
    "industry": FieldSpec("行业", "string", _STRING_OPS, _scalar(Customer.industry)),
    "gender": FieldSpec("性别", "enum", (*_ENUM_OPS, *NULL_OPS), _scalar(Customer.gender), ("M", "F")),
    "age": FieldSpec("年龄", "integer", NUMBER_OPS, _age, minimum=0, maximum=150),
    "deposit_balance": FieldSpec("存款余额(元)", "number", (*NUMBER_OPS, *NULL_OPS),
                                 _scalar(Customer.deposit_balance)),
    "loan_balance": FieldSpec("贷款余额(元)", "number", (*NUMBER_OPS, *NULL_OPS), _scalar(Customer.loan_balance)),
    "credit_limit": FieldSpec("授信额度(元)", "number", (*NUMBER_OPS, *NULL_OPS), _scalar(Customer.credit_limit)),
    "overdue_amount": FieldSpec("逾期金额(元)", "number", (*NUMBER_OPS, *NULL_OPS),
                                _scalar(Customer.overdue_amount)),
    "products": FieldSpec("持有产品", "products",
                          ("contains", "not_contains", "contains_any", "contains_all", *NULL_OPS), _products),
    "last_visit_days": FieldSpec("距上次走访天数", "integer", (*NUMBER_OPS, *NULL_OPS), _last_visit,
                                 minimum=0, maximum=36500),
    "grid": FieldSpec("所在网格(含下级)", "ids", ("in", "not_in"), _grid, ref="grid"),
    "owner": FieldSpec("管户客户经理", "ids", ("in", "not_in", *NULL_OPS), _owner, ref="owner"),
    "org": FieldSpec("所属机构(含下级)", "ids", ("in", "not_in"), _org, ref="org"),
    "tag": FieldSpec("已有标签", "tag", ("has", "not_has"), _tag, ref="tag"),
    "outlet_distance": FieldSpec("距网点距离(米)", "metres", ("<=", ">"), _outlet, minimum=1,
                                 maximum=MAX_OUTLET_METRES),
}


def describe_fields() -> list[dict[str, Any]]:
    """The whitelist, for rule editors."""
    return [{"field": name, "label": spec.label, "type": spec.kind, "ops": list(spec.ops),
             "choices": list(spec.choices) or None,
             "range": [spec.minimum, spec.maximum] if spec.kind in ("integer", "metres") else None}
            for name, spec in FIELDS.items()]


# -- validation ---------------------------------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_scalar(spec: FieldSpec, value: Any) -> str | None:
    """None if `value` is one acceptable scalar for the field, else a message."""
    if spec.kind == "enum":
        return None if value in spec.choices else f"取值必须是 {', '.join(spec.choices)} 之一"
    if spec.kind == "string":
        return None if isinstance(value, str) and 0 < len(value) <= 64 else "取值必须是 1-64 个字符的文本"
    if spec.kind == "products":
        return None if isinstance(value, str) and 0 < len(value) <= 32 else "产品代码必须是 1-32 个字符"
    if spec.kind in ("ids", "tag"):
        return None if isinstance(value, int) and not isinstance(value, bool) and valid_id(value) else "必须是有效编号"
    if spec.kind in ("integer", "metres") and not (isinstance(value, int) and not isinstance(value, bool)):
        return "必须是整数"
    if not _is_number(value):
        return "必须是数字"
    if not spec.minimum <= value <= spec.maximum:
        return f"取值超出范围 [{spec.minimum:g}, {spec.maximum:g}]"
    return None


def _check_value(spec: FieldSpec, op: str, value: Any) -> str | None:
    if op in NULL_OPS:
        return None if value is None else "该运算不需要取值"
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2):
            return "between 需要 [下限, 上限]"
        problem = _check_scalar(spec, value[0]) or _check_scalar(spec, value[1])
        return problem or (None if value[0] <= value[1] else "下限不能大于上限")
    many = op in ("in", "not_in", "contains_any", "contains_all") or (spec.kind == "ids")
    if many:
        if not (isinstance(value, list) and 0 < len(value) <= MAX_LIST):
            return f"需要 1-{MAX_LIST} 个取值的列表"
        return next((p for p in (_check_scalar(spec, v) for v in value) if p), None)
    return _check_scalar(spec, value)


def _check_node(node: Any, path: str, depth: int, errs: RuleErrors) -> None:
    errs.nodes += 1
    if errs.nodes > MAX_NODES:
        if errs.nodes == MAX_NODES + 1:
            errs.add(path, f"规则节点过多（上限 {MAX_NODES}）")
        return
    if not isinstance(node, dict):
        errs.add(path, "规则节点必须是对象")
        return
    if depth > MAX_DEPTH:
        errs.add(path, f"规则嵌套过深（上限 {MAX_DEPTH} 层）")
        return
    groups = [k for k in ("all", "any", "not") if k in node]
    if groups:
        key = groups[0]
        if len(node) != 1:
            errs.add(path, f"{key} 节点只能有一个键")
            return
        if key == "not":
            _check_node(node["not"], f"{path}.not", depth + 1, errs)
            return
        children = node[key]
        if not isinstance(children, list) or not children:
            errs.add(f"{path}.{key}", "需要至少一个条件的列表")
            return
        for i, child in enumerate(children):
            _check_node(child, f"{path}.{key}.{i}", depth + 1, errs)
        return
    unknown = sorted(set(node) - {"field", "op", "value"}, key=str)
    if unknown:
        errs.add(path, f"未知的键：{', '.join(map(str, unknown))}")
    name = node.get("field")
    spec = FIELDS.get(name) if isinstance(name, str) else None
    if spec is None:
        errs.add(f"{path}.field", f"不支持的字段：{name!r}（可用：{', '.join(FIELDS)}）"[:300])
        return
    op = node.get("op")
    if op not in spec.ops:
        errs.add(f"{path}.op", f"字段 {name} 支持的运算：{', '.join(spec.ops)}")
        return
    problem = _check_value(spec, op, node.get("value"))
    if problem:
        errs.add(f"{path}.value", problem)


def check_rule(rule: Any, path: str = "rule") -> None:
    """Raise ValidationFailed with {path: [messages]} for every bad node."""
    errs = RuleErrors()
    _check_node(rule, path, 1, errs)
    if errs.errors:
        raise ValidationFailed("规则有误", code="INVALID_RULE", errors=errs.errors)


# -- compilation --------------------------------------------------------------------------------------------------

def _compile(node: dict[str, Any], refs: Refs) -> Expr:
    if "all" in node:
        return and_(*(_compile(child, refs) for child in node["all"]))
    if "any" in node:
        return or_(*(_compile(child, refs) for child in node["any"]))
    if "not" in node:
        return _compile(node["not"], refs).is_not(True)  # NULL-safe: "not X" holds when X is not true
    spec = FIELDS[node["field"]]
    value = node.get("value")
    if spec.kind in ("ids",) and isinstance(value, list):
        value = sorted(set(value))
    return spec.build(node["op"], value, refs)


def compile_rule(rule: Any, path: str = "rule") -> tuple[Expr, Refs]:
    """Validate and compile a rule to a boolean expression over `customers` (bound parameters only)."""
    check_rule(rule, path)
    refs = Refs()
    return _compile(rule, refs), refs
