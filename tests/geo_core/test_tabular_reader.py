"""The one CSV / XLSX reader behind the admin imports (tabular.read_sheet) and the customer lists
(list_reader.read_table): encodings, blank rows, each caller's limits and messages (no database)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import pytest
from openpyxl import Workbook

from geo_core import tabular
from geo_core.customers import list_reader, lists
from geo_core.errors import ValidationFailed


def xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def refused(call, *args) -> str:  # noqa: ANN001
    with pytest.raises(ValidationFailed) as info:
        call(*args)
    assert info.value.code == "IMPORT_REJECTED"
    assert info.value.errors == {"file": [info.value.message]}
    return info.value.message


def test_both_readers_decode_utf8_bom_and_gbk_and_skip_blank_rows():
    text = "名称,编码\r\n\r\n芙蓉支行,430102\r\n , \r\n岳麓支行,430104\r\n"
    for data in (text.encode("utf-8-sig"), text.encode("utf-8"), text.encode("gb18030")):
        assert tabular.read_sheet("a.CSV", data) == [["名称", "编码"], ["芙蓉支行", "430102"], ["岳麓支行", "430104"]]
        # the list reader keeps each row's number in the file (blank rows counted) for the preview
        assert list_reader.read_table("a.csv", data) == [(1, ["名称", "编码"]), (3, ["芙蓉支行", "430102"]),
                                                         (5, ["岳麓支行", "430104"])]


def test_quoted_newlines_and_mac_line_ends():
    data = b'a,b\r\n"x\r\ny",2\r\n'
    assert tabular.read_sheet("t.csv", data) == [["a", "b"], ["x\r\ny", "2"]]
    assert list_reader.read_table("t.csv", data) == [(1, ["a", "b"]), (2, ["x\r\ny", "2"])]
    mac = b"a,b\rc,d\r"  # CR-only line ends ("CSV (Macintosh)")
    assert [r for _, r in list_reader.read_table("t.csv", mac)] == tabular.read_sheet("t.csv", mac) == [
        ["a", "b"], ["c", "d"]]


def test_file_level_refusals_are_shared():
    for call in (tabular.read_sheet, list_reader.read_table):
        assert refused(call, "a.txt", b"a,b") == "仅支持 .csv 或 .xlsx 文件"
        assert refused(call, "a.csv", b"\xff\xfe\x00\x00\x81") == "CSV 编码无法识别（请使用 UTF-8 或 GBK）"
        assert refused(call, "a.csv", b"\r\n ,\r\n") == "文件为空"
        assert refused(call, "a.xlsx", b"PK\x03\x04 not a workbook").startswith("无法读取 Excel 文件：")


def test_each_caller_words_a_malformed_csv_its_own_way():
    data = b'h\r\nok\r\n"' + b"x" * 140_000 + b'"\r\n'  # over csv.field_size_limit()
    assert refused(tabular.read_sheet, "a.csv", data).startswith("CSV 格式错误：field larger than field limit")
    assert refused(list_reader.read_table, "a.csv", data).startswith("第 3 行无法解析：field larger than field limit")


def test_each_caller_keeps_its_limits(monkeypatch):
    assert (tabular.MAX_BYTES, tabular.MAX_ROWS) == (20 * 1024 * 1024, 50_000)
    assert (lists.MAX_IMPORT_BYTES, lists.MAX_IMPORT_ROWS) == (40 * 1024 * 1024, 200_000)
    big = b"a\r\n" + b"x" * (20 * 1024 * 1024)
    assert refused(tabular.read_sheet, "a.csv", big) == "文件超过 20 MB"
    assert refused(list_reader.read_table, "a.csv", big + b"x" * (20 * 1024 * 1024)) == "文件超过 40 MB"
    monkeypatch.setattr(tabular, "MAX_ROWS", 2)
    monkeypatch.setattr(list_reader, "MAX_IMPORT_ROWS", 1)
    three = b"h\r\n1\r\n2\r\n3\r\n"
    assert refused(tabular.read_sheet, "a.csv", three) == "单次最多导入 2 行"
    assert refused(list_reader.read_table, "a.csv", three) == "单个名单最多 1 行"
    # only the admin imports cap a cell at Excel's limit; list fields have their own limits per template field
    long_cell = b"h\r\n" + b"y" * (tabular.MAX_CELL + 1) + b"\r\n"
    assert refused(tabular.read_sheet, "a.csv", long_cell) == f"第 2 行有单元格超过 {tabular.MAX_CELL} 个字符"
    assert list_reader.read_table("a.csv", long_cell)[1] == (2, ["y" * (tabular.MAX_CELL + 1)])


def test_xlsx_cells_as_text():
    data = xlsx([["名称", "日期", "时间", "数"], [" 张三 ", datetime(2024, 3, 5), datetime(2024, 3, 5, 8, 30), 12.0],
                 [None, None, None, None], ["李四", None, None, 1.5]])
    assert tabular.read_sheet("a.xlsx", data) == [  # admin imports: a date cell reads as before
        ["名称", "日期", "时间", "数"], ["张三", "2024-03-05 00:00:00", "2024-03-05 08:30:00", "12"],
        ["李四", "", "", "1.5"]]
    assert list_reader.read_table("a.xlsx", data) == [
        (1, ["名称", "日期", "时间", "数"]), (2, ["张三", "2024-03-05", "2024-03-05 08:30:00", "12"]),
        (4, ["李四", "", "", "1.5"])]


def test_a_workbook_that_breaks_while_its_rows_are_read_is_refused():
    src = zipfile.ZipFile(io.BytesIO(xlsx([["a", "b"], [1, 2]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for item in src.infolist():
            data = src.read(item.filename)
            z.writestr(item, data[: len(data) // 2] if item.filename == "xl/worksheets/sheet1.xml" else data)
    for call in (tabular.read_sheet, list_reader.read_table):  # the sheet is parsed lazily, after load_workbook
        assert refused(call, "a.xlsx", out.getvalue()) == "无法读取 Excel 文件：ParseError"
