"""Customer list files: read an upload (CSV / XLSX through geo_core.tabular), seal the rows, map the header.

The rows are stored as read - row number and cells, compressed and SM4-GCM sealed next to the batch - so an
XLSX is parsed once and the identifiers it holds never sit in the database in clear. Part of the customer lists
(geo_core.customers.lists re-exports the public names).
"""

from __future__ import annotations

import base64
import csv
import io
import zlib

from geo_core import crypto, tabular
from geo_core.customers.list_templates import FieldSpec, TemplateSpec
from geo_core.customers.service import Keys

MAX_IMPORT_ROWS = 200_000
MAX_IMPORT_BYTES = 40 * 1024 * 1024
FILE_AAD = b"customer_import_file"


def read_table(filename: str, data: bytes) -> list[tuple[int, list[str]]]:
    """(row number, cells) of the non-blank rows; the first is the header. CSV may be UTF-8 (BOM) or GBK."""
    table = tabular.read_rows(filename, data, max_bytes=MAX_IMPORT_BYTES, csv_error="第 {line} 行无法解析：{error}",
                              iso_dates=True)
    if not table:
        raise tabular.reject("文件为空")
    if len(table) - 1 > MAX_IMPORT_ROWS:
        raise tabular.reject(f"单个名单最多 {MAX_IMPORT_ROWS} 行")
    return table


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
        raise tabular.reject("缺少必填列：" + "、".join(f.label for f in missing))
    if not columns:
        raise tabular.reject("表头与模板字段都不匹配（第一行须为字段名称）")
    return columns, ignored

