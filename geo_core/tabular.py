"""CSV / XLSX import and export: read a sheet, validate every row, report errors per row and field.

Imports are all-or-nothing: `parse_rows` collects every error before anything is written, and the
caller's transaction rolls back if a write still fails.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from openpyxl import Workbook, load_workbook

from geo_core.errors import ValidationFailed

MAX_ROWS = 50_000
MAX_CELL = 32_767  # Excel's own cell limit; longer cells are rejected, not a 500
MAX_BYTES = 20 * 1024 * 1024
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class TableColumn:
    key: str
    header: str  # Chinese header used in exports and templates; imports accept key or header
    required: bool = False
    parse: Callable[[str], Any] = str
    export: Callable[[Any], Any] | None = None


@dataclass
class RowError:
    row: int  # spreadsheet row number (header is row 1)
    field: str
    message: str


@dataclass
class ParsedSheet:
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def error(self, row: int, field_name: str, message: str) -> None:
        self.errors.append(RowError(row, field_name, message))

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValidationFailed(
                f"导入被拒绝：{len(self.errors)} 处错误，未写入任何数据",
                code="IMPORT_REJECTED",
                errors=[e.__dict__ for e in sorted(self.errors, key=lambda e: (e.row, e.field))],
            )


def reject(message: str) -> ValidationFailed:
    """A file-level refusal (400 IMPORT_REJECTED, the message under `file`)."""
    return ValidationFailed(message, code="IMPORT_REJECTED", errors={"file": [message]})


def read_rows(filename: str, data: bytes, *, max_bytes: int, csv_error: str = "CSV 格式错误：{error}",
              iso_dates: bool = False) -> list[tuple[int, list[str]]]:
    """(row number in the file, cells as text) of the non-blank rows of a .csv or the first sheet of a .xlsx.

    The one reader behind the admin imports (`read_sheet`) and the customer lists
    (geo_core.customers.list_reader); each caller keeps its own size and row limits. CSV may be UTF-8 (with BOM)
    or GB18030; `csv_error` words a malformed CSV ({line}, {error}); `iso_dates` writes midnight Excel dates as
    YYYY-MM-DD instead of "YYYY-MM-DD 00:00:00"."""
    if len(data) > max_bytes:
        raise reject(f"文件超过 {max_bytes // (1024 * 1024)} MB")
    name = filename.lower()
    if name.endswith(".csv"):
        rows = _read_csv(data, csv_error)
    elif name.endswith(".xlsx"):
        rows = _read_xlsx(data, iso_dates)
    else:
        raise reject("仅支持 .csv 或 .xlsx 文件")
    return [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]


def _read_csv(data: bytes, csv_error: str) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            decoded = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise reject("CSV 编码无法识别（请使用 UTF-8 或 GBK）")
    reader = csv.reader(io.StringIO(decoded, newline=""))
    try:
        return list(reader)
    except csv.Error as exc:  # e.g. a cell over csv.field_size_limit() (128 KB), or a stray NUL
        raise reject(csv_error.format(line=reader.line_num, error=exc)) from exc


def _read_xlsx(data: bytes, iso_dates: bool) -> list[list[str]]:
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = wb.worksheets[0]
        rows = [["" if v is None else cell_text(v, iso_dates=iso_dates) for v in row]
                for row in sheet.iter_rows(values_only=True)]
        wb.close()
    except Exception as exc:  # openpyxl raises many types for corrupt files
        raise reject(f"无法读取 Excel 文件：{exc.__class__.__name__}") from exc
    return rows


def cell_text(value: Any, *, iso_dates: bool = False) -> str:
    """An XLSX cell value as text: whole floats without ".0"; with `iso_dates`, datetimes at midnight as dates."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if iso_dates and isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    return str(value).strip()


def read_sheet(filename: str, data: bytes) -> list[list[str]]:
    """Rows of cells as strings (first row = header), blank rows left out; at most MAX_BYTES and MAX_ROWS."""
    rows = [cells for _, cells in read_rows(filename, data, max_bytes=MAX_BYTES)]
    for n, r in enumerate(rows, start=1):
        if any(len(c) > MAX_CELL for c in r):
            raise reject(f"第 {n} 行有单元格超过 {MAX_CELL} 个字符")
    if not rows:
        raise reject("文件为空")
    if len(rows) - 1 > MAX_ROWS:
        raise reject(f"单次最多导入 {MAX_ROWS} 行")
    return rows


def parse_rows(sheet: list[list[str]], columns: Sequence[TableColumn]) -> ParsedSheet:
    """Map headers (key or Chinese header) to columns and parse each cell."""
    result = ParsedSheet()
    lookup = {c.key.lower(): c for c in columns} | {c.header: c for c in columns}
    header = [h.strip() for h in sheet[0]]
    mapped: list[TableColumn | None] = [lookup.get(h) or lookup.get(h.lower()) for h in header]
    present = {c.key for c in mapped if c}
    missing = [c for c in columns if c.required and c.key not in present]
    if missing:
        raise reject("缺少必填列：" + "、".join(f"{c.header}({c.key})" for c in missing))
    for offset, cells in enumerate(sheet[1:], start=2):
        values: dict[str, Any] = {}
        for col, raw in zip(mapped, cells, strict=False):
            if col is None:
                continue
            raw = raw.strip()
            if raw == "":
                if col.required:
                    result.error(offset, col.key, f"{col.header}不能为空")
                values[col.key] = None
                continue
            try:
                values[col.key] = col.parse(raw)
            except (ValueError, TypeError) as exc:
                result.error(offset, col.key, f"{col.header}：{exc}")
        for col in columns:
            if col.required and col.key not in values and col.key in present:
                result.error(offset, col.key, f"{col.header}不能为空")
        result.rows.append((offset, values))
    return result


def check_unique(sheet: ParsedSheet, key: str, label: str) -> None:
    seen: dict[Any, int] = {}
    for row, values in sheet.rows:
        value = values.get(key)
        if value is None:
            continue
        if value in seen:
            sheet.error(row, key, f"{label} {value} 与第 {seen[value]} 行重复")
        else:
            seen[value] = row


def write_sheet(fmt: str, columns: Sequence[TableColumn], records: Iterable[dict[str, Any]]) -> bytes:
    if fmt not in FORMATS:
        raise ValidationFailed("导出格式无效", errors={"format": ["必须是 csv 或 xlsx"]})
    header = [c.header for c in columns]
    body = (
        [_out(c, rec.get(c.key)) for c in columns]
        for rec in records
    )
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerow([c.key for c in columns])  # machine-readable keys, ignored again on import
        writer.writerows(body)
        return buf.getvalue().encode("utf-8-sig")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("data")
    ws.append(header)
    ws.append([c.key for c in columns])
    for row in body:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _out(col: TableColumn, value: Any) -> Any:
    if col.export is not None:
        return col.export(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    return value if isinstance(value, int | float) else str(value)


def drop_key_row(sheet: list[list[str]], columns: Sequence[TableColumn]) -> list[list[str]]:
    """Exports carry a second header row of keys; drop it so a file can be exported and re-imported."""
    keys = {c.key for c in columns}
    if len(sheet) > 1 and all((c.strip() in keys) for c in sheet[1] if c.strip()) and any(sheet[1]):
        return [sheet[0], *sheet[2:]]
    return sheet


# -- cell parsers ---------------------------------------------------------------------------------

def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "y", "是", "启用", "正常", "有效"}:
        return True
    if value in {"0", "false", "no", "n", "否", "停用", "禁用", "无效"}:
        return False
    raise ValueError(f"无法识别的布尔值 {raw!r}（用 是/否）")


def parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"不是整数：{raw!r}") from exc


def parse_list(raw: str) -> list[str]:
    return [p.strip() for p in raw.replace("；", ";").replace(",", ";").split(";") if p.strip()]


def max_len(n: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if len(raw) > n:
            raise ValueError(f"长度不能超过 {n}")
        return raw

    return parse


def one_of(choices: dict[str, str]) -> Callable[[str], str]:
    """Accept an enum value or its Chinese label."""
    reverse = {label: value for value, label in choices.items()}

    def parse(raw: str) -> str:
        if raw in choices:
            return raw
        if raw in reverse:
            return reverse[raw]
        raise ValueError("取值必须是 " + "、".join(f"{v}({lbl})" for v, lbl in choices.items()))

    return parse
