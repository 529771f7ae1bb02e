"""Reading and validating one business day's feed directory (format: docs/DATA_FEED.md).

Pure Python, no database: every row is parsed and checked, and every problem is reported with its file,
line and field, before anything is written. Files are UTF-8 (with or without BOM) or GBK/GB18030,
detected per file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from geo_core.customers import identifiers as ids

FILES = ("customers.csv", "accounts.csv", "loans.csv")
MAX_ERRORS = 500
MAX_AMOUNT = Decimal("9999999999999999.99")
KINDS = {"person": "person", "company": "company", "个人": "person", "对公": "company", "企业": "company"}
PROFILE_TYPES = ("farmer", "merchant", "micro_enterprise")
ACCOUNT_TYPES = ("deposit", "wealth", "card", "other")
ACCOUNT_STATUSES = ("active", "frozen", "closed")
LOAN_STATUSES = ("normal", "overdue", "settled")
CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
COLUMNS = {
    "customers.csv": ("customer_no", "kind", "name", "id_number", "uscc", "phone", "address", "org_code",
                      "manager_employee_no", "profile_type", "industry", "credit_limit"),
    "accounts.csv": ("account_no", "customer_no", "product_code", "account_type", "balance", "currency",
                     "opened_on", "status"),
    "loans.csv": ("loan_no", "customer_no", "product_code", "principal", "balance", "due_date", "overdue_amount",
                  "overdue_days", "status"),
}
REQUIRED = {
    "customers.csv": ("customer_no", "kind", "name", "org_code"),
    "accounts.csv": ("account_no", "customer_no", "product_code", "account_type", "balance", "status"),
    "loans.csv": ("loan_no", "customer_no", "product_code", "principal", "balance", "due_date", "status"),
}


class FeedFormatError(ValueError):
    """The directory or a file cannot be read at all (missing file, unknown columns, undecodable)."""


@dataclass
class FeedFile:
    name: str
    sha256: str
    encoding: str
    rows: list[dict[str, str]]  # with "_line" (1 = header)


@dataclass
class FeedDay:
    day: date
    directory: str
    files: dict[str, FeedFile]
    customers: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    loans: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def checksum(self) -> str:
        """One digest over every file's digest: the same files give the same checksum."""
        return hashlib.sha256("|".join(f"{n}:{self.files[n].sha256}" for n in FILES).encode()).hexdigest()

    def manifest(self) -> dict[str, Any]:
        return {n: {"sha256": f.sha256, "rows": len(f.rows), "encoding": f.encoding} for n, f in self.files.items()}

    def error(self, file: str, line: int, column: str | None, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"file": file, "line": line, "field": column, "message": message})


def day_of(directory: Path) -> date:
    """A day directory is named YYYYMMDD or YYYY-MM-DD."""
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(directory.name, fmt).date()
        except ValueError:
            continue
    raise FeedFormatError(f"目录名须为业务日期 YYYYMMDD 或 YYYY-MM-DD：{directory.name}")


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (BOM optional) first, else GB18030 (a superset of GBK)."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gbk"
    except UnicodeDecodeError as exc:
        raise FeedFormatError("文件编码无法识别（须为 UTF-8 或 GBK）") from exc


def read_file(path: Path) -> FeedFile:
    if not path.is_file():
        raise FeedFormatError(f"缺少文件 {path.name}")
    data = path.read_bytes()
    text, encoding = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    allowed = COLUMNS[path.name]
    unknown = [h for h in header if h not in allowed]
    missing = [h for h in REQUIRED[path.name] if h not in header]
    if unknown or missing:
        raise FeedFormatError(f"{path.name} 表头不符：未知列 {unknown or '无'}，缺少必填列 {missing or '无'}")
    rows = []
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
        row["_line"] = line  # type: ignore[assignment]
        if len(values) > len(header):
            row["_extra"] = "1"
        rows.append(row)
    return FeedFile(path.name, hashlib.sha256(data).hexdigest(), encoding, rows)


def _date(raw: str) -> date:
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise ValueError("日期格式须为 YYYY-MM-DD")


def _amount(raw: str) -> Decimal:
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation as exc:
        raise ValueError("金额须为数字") from exc
    if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise ValueError("金额须为不小于 0 的数字")
    return value.quantize(Decimal("0.01"))


class _Row:
    """Field accessors that record errors instead of raising."""

    def __init__(self, feed: FeedDay, file: str, row: dict[str, str]) -> None:
        self.feed, self.file, self.row, self.ok = feed, file, row, True
        self.line = int(row["_line"])
        if row.get("_extra"):
            self.fail(None, "列数多于表头")

    def fail(self, column: str | None, message: str) -> None:
        self.ok = False
        self.feed.error(self.file, self.line, column, message)

    def text(self, column: str, max_len: int, required: bool = False) -> str | None:
        value = self.row.get(column) or ""
        if not value:
            if required:
                self.fail(column, "必填")
            return None
        if len(value) > max_len:
            self.fail(column, f"长度不能超过 {max_len}")
            return None
        return value

    def code(self, column: str, required: bool = True) -> str | None:
        value = self.text(column, 40, required)
        if value is not None and not CODE.match(value):
            self.fail(column, "只能包含字母、数字、下划线、点和短横线")
            return None
        return value

    def choice(self, column: str, options: tuple[str, ...] | dict[str, str], required: bool = True) -> str | None:
        value = self.text(column, 20, required)
        if value is None:
            return None
        key = value if isinstance(options, dict) else value.lower()
        if key not in options:
            self.fail(column, f"取值须为 {'/'.join(options)}")
            return None
        return options[key] if isinstance(options, dict) else key

    def parse(self, column: str, parser, required: bool = False, default: Any = None) -> Any:  # noqa: ANN001
        value = self.row.get(column) or ""
        if not value:
            if required:
                self.fail(column, "必填")
            return default
        try:
            return parser(value)
        except ValueError as exc:
            self.fail(column, str(exc))
            return default


def _unique(feed: FeedDay, file: str, rows: list[dict[str, Any]], key: str, label: str) -> None:
    seen: dict[str, int] = {}
    for r in rows:
        value = r.get(key)
        if value is None:
            continue
        if value in seen:
            feed.error(file, r["_line"], key, f"{label}与第 {seen[value]} 行重复")
        else:
            seen[value] = r["_line"]


def _customers(feed: FeedDay) -> None:
    name = "customers.csv"
    for raw in feed.files[name].rows:
        r = _Row(feed, name, raw)
        out: dict[str, Any] = {"_line": r.line, "customer_no": r.code("customer_no"),
                               "kind": r.choice("kind", KINDS), "name": r.text("name", 100, True),
                               "address": r.text("address", 300), "org_code": r.text("org_code", 32, True),
                               "manager_employee_no": r.text("manager_employee_no", 32),
                               "profile_type": r.choice("profile_type", PROFILE_TYPES, required=False),
                               "industry": r.text("industry", 64),
                               "credit_limit": r.parse("credit_limit", _amount)}
        for column, normalise, kind in (("id_number", ids.normalise_id_number, "person"),
                                        ("uscc", ids.normalise_uscc, "company"), ("phone", ids.normalise_phone, None)):
            value = raw.get(column) or ""
            out[column] = None
            if not value:
                continue
            if kind is not None and out["kind"] not in (None, kind):
                r.fail(column, "个人客户填写身份证号，对公客户填写统一社会信用代码")
                continue
            try:
                out[column] = normalise(value)
            except ValueError as exc:
                r.fail(column, str(exc))
        if r.ok:
            feed.customers.append(out)
    for key, label in (("customer_no", "客户号"), ("id_number", "身份证号"), ("uscc", "统一社会信用代码")):
        _unique(feed, name, feed.customers, key, label)


def _accounts(feed: FeedDay, known: set[str]) -> None:
    name = "accounts.csv"
    for raw in feed.files[name].rows:
        r = _Row(feed, name, raw)
        out = {"_line": r.line, "account_no": r.code("account_no"), "customer_no": r.code("customer_no"),
               "product_code": r.code("product_code"), "account_type": r.choice("account_type", ACCOUNT_TYPES),
               "balance": r.parse("balance", _amount, required=True),
               "currency": (r.text("currency", 3) or "CNY").upper(), "opened_on": r.parse("opened_on", _date),
               "status": r.choice("status", ACCOUNT_STATUSES)}
        if out["customer_no"] and out["customer_no"] not in known:
            r.fail("customer_no", "客户号不在当日 customers.csv 中")
        if r.ok:
            feed.accounts.append(out)
    _unique(feed, name, feed.accounts, "account_no", "账号")


def _overdue_days(raw: str) -> int:
    if not raw.isdigit() or int(raw) > 36500:
        raise ValueError("逾期天数须为 0 到 36500 的整数")
    return int(raw)


def _loans(feed: FeedDay, known: set[str]) -> None:
    name = "loans.csv"
    for raw in feed.files[name].rows:
        r = _Row(feed, name, raw)
        out = {"_line": r.line, "loan_no": r.code("loan_no"), "customer_no": r.code("customer_no"),
               "product_code": r.code("product_code"), "principal": r.parse("principal", _amount, required=True),
               "balance": r.parse("balance", _amount, required=True),
               "due_date": r.parse("due_date", _date, required=True),
               "overdue_amount": r.parse("overdue_amount", _amount, default=Decimal("0.00")),
               "overdue_days": r.parse("overdue_days", _overdue_days, default=0),
               "status": r.choice("status", LOAN_STATUSES)}
        if out["customer_no"] and out["customer_no"] not in known:
            r.fail("customer_no", "客户号不在当日 customers.csv 中")
        if r.ok:
            feed.loans.append(out)
    _unique(feed, name, feed.loans, "loan_no", "借据号")


def read_feed(directory: Path, day: date | None = None) -> FeedDay:
    """Read and validate a day directory; `errors` lists every bad row (the import then writes nothing)."""
    if not directory.is_dir():
        raise FeedFormatError(f"目录不存在：{directory}")
    feed = FeedDay(day or day_of(directory), str(directory), {n: read_file(directory / n) for n in FILES})
    _customers(feed)
    known = {c["customer_no"] for c in feed.customers} | {
        r.get("customer_no") for r in feed.files["customers.csv"].rows}
    _accounts(feed, {k for k in known if k})
    _loans(feed, {k for k in known if k})
    feed.errors.sort(key=lambda e: (FILES.index(e["file"]), e["line"]))
    return feed
