"""A small, safe CQL2 parser (OGC API - Features Part 3): cql2-text and cql2-json -> SQL with bound parameters.

Supported: comparisons (= <> < > <= >=), AND / OR / NOT, [NOT] LIKE, [NOT] BETWEEN, [NOT] IN, IS [NOT] NULL,
TRUE / FALSE, literals (strings, numbers, booleans, DATE('...'), TIMESTAMP('...')), and the spatial predicates
S_INTERSECTS, S_WITHIN, S_CONTAINS, S_DISJOINT, S_EQUALS, S_TOUCHES, S_CROSSES, S_OVERLAPS over the geometry
property and WKT / BBOX(...) literals (cql2-json: GeoJSON geometries and {"bbox": [...]}).

The parser builds a small tree; `compile_filter` turns it into a psycopg `sql.Composed` in which every property
is checked against the layer's whitelist (`resolve`) and every value is a placeholder. Errors are `CQL2Error`s
carrying the character position (cql2-text) or JSON path (cql2-json) of the offending token.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import shapely
import shapely.geometry
import shapely.wkt
from psycopg import sql

MAX_LENGTH = 20_000
MAX_DEPTH = 50
MAX_IN_VALUES = 1_000

SPATIAL = {"S_INTERSECTS": "ST_Intersects", "S_WITHIN": "ST_Within", "S_CONTAINS": "ST_Contains",
           "S_DISJOINT": "ST_Disjoint", "S_EQUALS": "ST_Equals", "S_TOUCHES": "ST_Touches",
           "S_CROSSES": "ST_Crosses", "S_OVERLAPS": "ST_Overlaps"}
WKT_TYPES = ("POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON",
             "GEOMETRYCOLLECTION")
COMPARISONS = ("=", "<>", "<", ">", "<=", ">=")
KEYWORDS = {"AND", "OR", "NOT", "LIKE", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE", "DATE", "TIMESTAMP",
            "BBOX", *SPATIAL, *WKT_TYPES}


class CQL2Error(ValueError):
    """A filter that cannot be parsed or does not fit the collection; `position` locates the problem."""

    def __init__(self, message: str, position: int | str) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


# --- tree ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prop:
    name: str
    pos: int | str


@dataclass(frozen=True)
class Lit:
    value: Any
    kind: str  # string | number | boolean | date | timestamp
    pos: int | str


@dataclass(frozen=True)
class GeomLit:
    geom: Any  # shapely geometry, in the filter's CRS
    pos: int | str


@dataclass(frozen=True)
class Logical:
    op: str  # AND | OR
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    arg: Any


@dataclass(frozen=True)
class Const:
    value: bool


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any
    pos: int | str


@dataclass(frozen=True)
class Like:
    left: Any
    pattern: Any
    negate: bool
    pos: int | str


@dataclass(frozen=True)
class Between:
    left: Any
    low: Any
    high: Any
    negate: bool
    pos: int | str


@dataclass(frozen=True)
class In:
    left: Any
    values: tuple[Any, ...]
    negate: bool
    pos: int | str


@dataclass(frozen=True)
class IsNull:
    left: Any
    negate: bool
    pos: int | str


@dataclass(frozen=True)
class Spatial:
    op: str
    a: Any
    b: Any
    pos: int | str


# --- cql2-text tokens -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # ident | qident | string | number | op | punct | wkt | end
    text: str
    pos: int
    value: Any = None


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")+")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.:]*)
  | (?P<op><>|!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)


def _wkt_end(text: str, start: int) -> int:
    """Index just past the balanced parenthesised body of a WKT literal starting at `start`."""
    m = re.compile(r"\s*(?:ZM|Z|M)?\s*(?:EMPTY\b)?", re.IGNORECASE).match(text, start)
    i = m.end() if m else start
    if text[m.start():m.end()].strip().upper().endswith("EMPTY"):
        return i
    if i >= len(text) or text[i] != "(":
        raise CQL2Error("expected '(' after a WKT geometry type", i)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    raise CQL2Error("unbalanced parentheses in WKT geometry", start)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            raise CQL2Error(f"unexpected character {text[i]!r}", i)
        kind = m.lastgroup or ""
        if kind == "ws":
            i = m.end()
            continue
        word = m.group()
        if kind == "ident" and word.upper() in WKT_TYPES:
            end = _wkt_end(text, m.end())
            tokens.append(Token("wkt", text[i:end], i))
            i = end
            continue
        if kind == "string":
            tokens.append(Token("string", word, i, word[1:-1].replace("''", "'")))
        elif kind == "qident":
            tokens.append(Token("ident", word, i, word[1:-1].replace('""', '"')))
        elif kind == "number":
            tokens.append(Token("number", word, i, float(word) if any(c in word for c in ".eE") else int(word)))
        elif kind == "op":
            tokens.append(Token("op", "<>" if word == "!=" else word, i))
        elif kind == "ident":
            upper = word.upper()
            tokens.append(Token("kw" if upper in KEYWORDS else "ident", word, i, upper if upper in KEYWORDS else word))
        else:
            tokens.append(Token("punct", word, i))
        i = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# --- cql2-text parser -------------------------------------------------------------------------------------------------

class _TextParser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _is_kw(self, *words: str) -> bool:
        return self.tok.kind == "kw" and self.tok.value in words

    def _expect_kw(self, word: str) -> Token:
        if not self._is_kw(word):
            raise CQL2Error(f"expected {word}, found {self._describe()}", self.tok.pos)
        return self._advance()

    def _expect_punct(self, char: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != char:
            raise CQL2Error(f"expected '{char}', found {self._describe()}", self.tok.pos)
        return self._advance()

    def _describe(self) -> str:
        return "end of filter" if self.tok.kind == "end" else repr(self.tok.text)

    def parse(self) -> Any:
        node = self.expression()
        if self.tok.kind != "end":
            raise CQL2Error(f"unexpected {self._describe()}", self.tok.pos)
        return node

    def expression(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CQL2Error("filter is nested too deeply", self.tok.pos)
        args = [self.term()]
        while self._is_kw("OR"):
            self._advance()
            args.append(self.term())
        self.depth -= 1
        return args[0] if len(args) == 1 else Logical("OR", tuple(args))

    def term(self) -> Any:
        args = [self.factor()]
        while self._is_kw("AND"):
            self._advance()
            args.append(self.factor())
        return args[0] if len(args) == 1 else Logical("AND", tuple(args))

    def factor(self) -> Any:
        if self._is_kw("NOT"):
            self._advance()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise CQL2Error("filter is nested too deeply", self.tok.pos)
            node = Not(self.factor())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Any:
        tok = self.tok
        if tok.kind == "punct" and tok.text == "(":
            self._advance()
            node = self.expression()
            self._expect_punct(")")
            return node
        if tok.kind == "kw" and tok.value in ("TRUE", "FALSE") and not self._next_is_operator():
            self._advance()
            return Const(tok.value == "TRUE")
        if tok.kind == "kw" and tok.value in SPATIAL:
            return self.spatial()
        return self.predicate()

    def _next_is_operator(self) -> bool:
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "op" or (nxt.kind == "kw" and nxt.value in ("LIKE", "BETWEEN", "IN", "IS", "NOT"))

    def spatial(self) -> Spatial:
        tok = self._advance()
        self._expect_punct("(")
        a = self.geometry_operand()
        self._expect_punct(",")
        b = self.geometry_operand()
        self._expect_punct(")")
        return Spatial(tok.value, a, b, tok.pos)

    def geometry_operand(self) -> Any:
        tok = self.tok
        if tok.kind == "wkt":
            self._advance()
            try:
                return GeomLit(shapely.wkt.loads(tok.text), tok.pos)
            except shapely.errors.ShapelyError as exc:
                raise CQL2Error(f"invalid WKT geometry: {exc}", tok.pos) from exc
        if tok.kind == "kw" and tok.value == "BBOX":
            self._advance()
            self._expect_punct("(")
            numbers = [self.number()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self._advance()
                numbers.append(self.number())
            self._expect_punct(")")
            return GeomLit(_bbox_geometry(numbers, tok.pos), tok.pos)
        if tok.kind == "ident":
            self._advance()
            return Prop(tok.value, tok.pos)
        raise CQL2Error(f"expected a geometry property, WKT or BBOX(...), found {self._describe()}", tok.pos)

    def number(self) -> float:
        if self.tok.kind != "number":
            raise CQL2Error(f"expected a number, found {self._describe()}", self.tok.pos)
        return float(self._advance().value)

    def predicate(self) -> Any:
        left = self.scalar()
        tok = self.tok
        if tok.kind == "op":
            self._advance()
            return Compare(tok.text, left, self.scalar(), tok.pos)
        negate = False
        if self._is_kw("NOT"):
            negate = True
            self._advance()
        if self._is_kw("LIKE"):
            self._advance()
            return Like(left, self.scalar(), negate, tok.pos)
        if self._is_kw("BETWEEN"):
            self._advance()
            low = self.scalar()
            self._expect_kw("AND")
            return Between(left, low, self.scalar(), negate, tok.pos)
        if self._is_kw("IN"):
            self._advance()
            self._expect_punct("(")
            values = [self.scalar()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self._advance()
                values.append(self.scalar())
                if len(values) > MAX_IN_VALUES:
                    raise CQL2Error(f"IN takes at most {MAX_IN_VALUES} values", self.tok.pos)
            self._expect_punct(")")
            return In(left, tuple(values), negate, tok.pos)
        if not negate and self._is_kw("IS"):
            self._advance()
            if self._is_kw("NOT"):
                self._advance()
                negate = True
            self._expect_kw("NULL")
            return IsNull(left, negate, tok.pos)
        raise CQL2Error(f"expected a comparison, LIKE, BETWEEN, IN or IS NULL after the operand, "
                        f"found {self._describe()}", tok.pos)

    def scalar(self) -> Any:
        tok = self.tok
        if tok.kind == "ident":
            self._advance()
            return Prop(tok.value, tok.pos)
        if tok.kind == "string":
            self._advance()
            return Lit(tok.value, "string", tok.pos)
        if tok.kind == "number":
            self._advance()
            return Lit(tok.value, "number", tok.pos)
        if tok.kind == "kw" and tok.value in ("TRUE", "FALSE"):
            self._advance()
            return Lit(tok.value == "TRUE", "boolean", tok.pos)
        if tok.kind == "kw" and tok.value in ("DATE", "TIMESTAMP"):
            self._advance()
            self._expect_punct("(")
            if self.tok.kind != "string":
                raise CQL2Error(f"{tok.value}() takes a quoted string", self.tok.pos)
            text = self._advance()
            self._expect_punct(")")
            return _temporal(tok.value.lower(), text.value, text.pos)
        if tok.kind == "kw" and tok.value not in ("NULL",):
            # a keyword used as a property name must be double-quoted
            raise CQL2Error(f"unexpected keyword {tok.text!r} (quote property names that are keywords)", tok.pos)
        raise CQL2Error(f"expected a property or a value, found {self._describe()}", tok.pos)


def _temporal(kind: str, text: str, pos: int | str) -> Lit:
    try:
        if kind == "date":
            return Lit(date.fromisoformat(text), "date", pos)
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CQL2Error(f"invalid {kind} {text!r}", pos) from exc
    return Lit(value if value.tzinfo else value.replace(tzinfo=UTC), "timestamp", pos)


def _bbox_geometry(numbers: list[float], pos: int | str) -> Any:
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or numbers[0] > numbers[2] or numbers[1] > numbers[3]:
        raise CQL2Error("BBOX takes minx, miny, maxx, maxy (min <= max)", pos)
    return shapely.geometry.box(*numbers)


def parse_text(text: str) -> Any:
    if len(text) > MAX_LENGTH:
        raise CQL2Error(f"filter longer than {MAX_LENGTH} characters", MAX_LENGTH)
    if not text.strip():
        raise CQL2Error("empty filter", 0)
    return _TextParser(text).parse()


# --- cql2-json ------------------------------------------------------------------------------------------------------

_JSON_COMPARE = {"=": "=", "<>": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


def parse_json(doc: Any, path: str = "", depth: int = 0) -> Any:
    """Parse a cql2-json boolean expression (already decoded from JSON)."""
    if depth > MAX_DEPTH:
        raise CQL2Error("filter is nested too deeply", path or "/")
    if isinstance(doc, bool):
        return Const(doc)
    if not isinstance(doc, dict) or "op" not in doc or not isinstance(doc.get("args"), list):
        raise CQL2Error('expected {"op": ..., "args": [...]}', path or "/")
    op = str(doc["op"])
    args = doc["args"]
    here = f"{path}/args"
    if op in ("and", "or"):
        if len(args) < 2:
            raise CQL2Error(f"{op} takes at least two arguments", here)
        return Logical(op.upper(), tuple(parse_json(a, f"{here}/{i}", depth + 1) for i, a in enumerate(args)))
    if op == "not":
        _arity(args, 1, here)
        return Not(parse_json(args[0], f"{here}/0", depth + 1))
    if op in _JSON_COMPARE:
        _arity(args, 2, here)
        return Compare(_JSON_COMPARE[op], _json_scalar(args[0], f"{here}/0"), _json_scalar(args[1], f"{here}/1"),
                       path or "/")
    if op == "like":
        _arity(args, 2, here)
        return Like(_json_scalar(args[0], f"{here}/0"), _json_scalar(args[1], f"{here}/1"), False, path or "/")
    if op == "between":
        _arity(args, 3, here)
        return Between(*(_json_scalar(a, f"{here}/{i}") for i, a in enumerate(args)), False, path or "/")
    if op == "in":
        _arity(args, 2, here)
        if not isinstance(args[1], list) or not args[1] or len(args[1]) > MAX_IN_VALUES:
            raise CQL2Error(f"in takes a property and a list of 1 to {MAX_IN_VALUES} values", f"{here}/1")
        values = tuple(_json_scalar(v, f"{here}/1/{i}") for i, v in enumerate(args[1]))
        return In(_json_scalar(args[0], f"{here}/0"), values, False, path or "/")
    if op == "isNull":
        _arity(args, 1, here)
        return IsNull(_json_scalar(args[0], f"{here}/0"), False, path or "/")
    if op.upper() in SPATIAL:
        _arity(args, 2, here)
        return Spatial(op.upper(), _json_geometry(args[0], f"{here}/0"), _json_geometry(args[1], f"{here}/1"),
                       path or "/")
    raise CQL2Error(f"unsupported operator {op!r}", f"{path}/op")


def _arity(args: list[Any], n: int, path: str) -> None:
    if len(args) != n:
        raise CQL2Error(f"expected {n} argument(s), got {len(args)}", path)


def _json_scalar(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"property"} and isinstance(value["property"], str):
            return Prop(value["property"], path)
        if set(value) == {"date"} and isinstance(value["date"], str):
            return _temporal("date", value["date"], path)
        if set(value) == {"timestamp"} and isinstance(value["timestamp"], str):
            return _temporal("timestamp", value["timestamp"], path)
        raise CQL2Error("expected a property, value, date or timestamp", path)
    if isinstance(value, bool):
        return Lit(value, "boolean", path)
    if isinstance(value, int | float):
        return Lit(value, "number", path)
    if isinstance(value, str):
        return Lit(value, "string", path)
    raise CQL2Error("expected a property, value, date or timestamp", path)


def _json_geometry(value: Any, path: str) -> Any:
    if isinstance(value, dict) and set(value) == {"property"}:
        return Prop(str(value["property"]), path)
    if isinstance(value, dict) and set(value) == {"bbox"} and isinstance(value["bbox"], list):
        try:
            numbers = [float(v) for v in value["bbox"]]
        except (TypeError, ValueError) as exc:
            raise CQL2Error("bbox takes numbers", path) from exc
        return GeomLit(_bbox_geometry(numbers, path), path)
    if isinstance(value, dict) and "type" in value:
        try:
            return GeomLit(shapely.geometry.shape(value), path)
        except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise CQL2Error(f"invalid GeoJSON geometry: {exc}", path) from exc
    raise CQL2Error("expected a geometry property, GeoJSON geometry or {\"bbox\": [...]}", path)


# --- compile to SQL -------------------------------------------------------------------------------------------------

# resolve(name, pos, spatial) -> (column SQL, field type) ; raises CQL2Error for names not in the whitelist
Resolver = Callable[[str, "int | str", bool], "tuple[sql.Composable, str]"]

_KIND_FITS = {
    "integer": ("number",), "number": ("number",), "string": ("string",), "boolean": ("boolean",),
    "datetime": ("timestamp", "date"), "date": ("date", "timestamp"),
}


class Compiler:
    """Compile a parsed filter; parameters are collected in `params` with names unique per compiler."""

    def __init__(self, resolve: Resolver, to_storage: Callable[[Any], Any], params: dict[str, Any],
                 prefix: str = "f") -> None:
        self.resolve = resolve
        self.to_storage = to_storage
        self.params = params
        self._names = (f"{prefix}{i}" for i in itertools.count())

    def placeholder(self, value: Any) -> sql.Placeholder:
        name = next(self._names)
        self.params[name] = value
        return sql.Placeholder(name)

    def compile(self, node: Any) -> sql.Composable:
        method = getattr(self, f"_{type(node).__name__.lower()}")
        return method(node)

    def _logical(self, node: Logical) -> sql.Composable:
        joiner = sql.SQL(f" {node.op} ")
        return sql.SQL("({})").format(joiner.join(self.compile(a) for a in node.args))

    def _not(self, node: Not) -> sql.Composable:
        return sql.SQL("(NOT {})").format(self.compile(node.arg))

    def _const(self, node: Const) -> sql.Composable:
        return sql.SQL("TRUE" if node.value else "FALSE")

    def _operand(self, node: Any, expect: str | None) -> tuple[sql.Composable, str | None]:
        """SQL for a scalar operand and its field type (None for a literal)."""
        if isinstance(node, Prop):
            return self.resolve(node.name, node.pos, False)
        if isinstance(node, Lit):
            if expect is not None and node.kind not in _KIND_FITS[expect]:
                raise CQL2Error(f"a {node.kind} value cannot be compared with a {expect} property", node.pos)
            value = node.value
            if expect == "integer" and isinstance(value, float) and value.is_integer():
                value = int(value)
            return self.placeholder(value), None
        raise CQL2Error("expected a property or a value", getattr(node, "pos", 0))

    def _pair(self, left: Any, right: Any, pos: int | str) -> tuple[sql.Composable, sql.Composable]:
        if not isinstance(left, Prop) and not isinstance(right, Prop):
            raise CQL2Error("a comparison needs a property on at least one side", pos)
        lt = self.resolve(left.name, left.pos, False)[1] if isinstance(left, Prop) else None
        rt = self.resolve(right.name, right.pos, False)[1] if isinstance(right, Prop) else None
        if lt and rt and lt != rt and {lt, rt} != {"integer", "number"}:
            raise CQL2Error(f"cannot compare a {lt} property with a {rt} property", pos)
        a, _ = self._operand(left, rt)
        b, _ = self._operand(right, lt)
        return a, b

    def _compare(self, node: Compare) -> sql.Composable:
        a, b = self._pair(node.left, node.right, node.pos)
        return sql.SQL("({} {} {})").format(a, sql.SQL(node.op), b)

    def _prop(self, node: Any, pos: int | str, what: str) -> tuple[sql.Composable, str]:
        if not isinstance(node, Prop):
            raise CQL2Error(f"{what} needs a property on the left", pos)
        return self.resolve(node.name, node.pos, False)

    def _like(self, node: Like) -> sql.Composable:
        column, kind = self._prop(node.left, node.pos, "LIKE")
        if kind != "string" or not isinstance(node.pattern, Lit) or node.pattern.kind != "string":
            raise CQL2Error("LIKE compares a string property with a string pattern", node.pos)
        negate = sql.SQL("NOT " if node.negate else "")
        return sql.SQL("({} {}LIKE {})").format(column, negate, self.placeholder(node.pattern.value))

    def _between(self, node: Between) -> sql.Composable:
        column, kind = self._prop(node.left, node.pos, "BETWEEN")
        low, _ = self._operand(node.low, kind)
        high, _ = self._operand(node.high, kind)
        negate = sql.SQL("NOT " if node.negate else "")
        return sql.SQL("({} {}BETWEEN {} AND {})").format(column, negate, low, high)

    def _in(self, node: In) -> sql.Composable:
        column, kind = self._prop(node.left, node.pos, "IN")
        items = sql.SQL(", ").join(self._operand(v, kind)[0] for v in node.values)
        negate = sql.SQL("NOT " if node.negate else "")
        return sql.SQL("({} {}IN ({}))").format(column, negate, items)

    def _isnull(self, node: IsNull) -> sql.Composable:
        column, _ = self._prop(node.left, node.pos, "IS NULL")
        return sql.SQL("({} IS {}NULL)").format(column, sql.SQL("NOT " if node.negate else ""))

    def _geometry(self, node: Any) -> sql.Composable:
        if isinstance(node, Prop):
            return self.resolve(node.name, node.pos, True)[0]
        if isinstance(node, GeomLit):
            geom = self.to_storage(node.geom)
            if geom.is_empty or not geom.is_valid:
                raise CQL2Error(f"invalid geometry: {shapely.is_valid_reason(geom)}", node.pos)
            return sql.SQL("ST_GeomFromWKB({}, 4326)").format(self.placeholder(shapely.to_wkb(geom)))
        raise CQL2Error("expected a geometry", getattr(node, "pos", 0))

    def _spatial(self, node: Spatial) -> sql.Composable:
        if not isinstance(node.a, Prop) and not isinstance(node.b, Prop):
            raise CQL2Error(f"{node.op} needs the geometry property as one argument", node.pos)
        call = sql.SQL("{}({}, {})").format(sql.SQL(SPATIAL[node.op]), self._geometry(node.a),
                                            self._geometry(node.b))
        if node.op == "S_DISJOINT":
            return call
        # every other predicate implies overlapping boxes: the LEAKPROOF `&&` lets the GiST index serve it under
        # row-level security (ST_* functions are not leakproof, so their implicit index condition is not used)
        return sql.SQL("({} && {} AND {})").format(self._geometry(node.a), self._geometry(node.b), call)


def parse(text: str, lang: str = "cql2-text") -> Any:
    """Parse a filter in cql2-text, or cql2-json given as a JSON string."""
    if lang == "cql2-text":
        return parse_text(text)
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CQL2Error(f"invalid JSON: {exc.msg}", exc.pos) from exc
    return parse_json(doc)
