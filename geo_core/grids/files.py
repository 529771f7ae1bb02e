"""Grid import and export as GeoJSON, KML, GeoPackage and zipped Shapefile (geopandas, pyogrio engine).

This module is the facade: export lives in `geo_core.grids.file_export`, reading a file into a WGS84 frame in
`geo_core.grids.file_reader` (both re-exported here); importing the rows is below.

Rows are ordered parents-first and each is written through `service.create_grid` / `service.update_grid` in
the caller's transaction, so every rule of an interactive edit applies and each row is checked against
the rows written before it (overlaps inside the file are caught). Any row error rejects the whole file:
one `ValidationFailed` with code IMPORT_REJECTED and `errors` = [{row, code, field, message, detail?}],
`row` being the 1-based feature number in the file. In upsert mode (by code) a blank attribute leaves
the stored value unchanged; kind, level and virtual_type of an existing grid cannot change.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.grids import service
from geo_core.grids.file_export import (  # noqa: F401 - re-exported
    EXPORT_COLUMNS,
    FORMATS,
    LAYER,
    MAX_EXPORT_FEATURES,
    SHP_FIELDS,
    ExportFile,
    FileFormat,
    _v,
    export_frame,
    export_grids,
)
from geo_core.grids.file_reader import (  # noqa: F401 - re-exported
    MAX_BYTES,
    MAX_FEATURES,
    MAX_UNZIPPED_BYTES,
    READ_SUFFIXES,
    _reject,
    read_features,
)
from geo_core.grids.models import BusinessLine, Grid, GridKind, GridLevel, GridStatus, VirtualType
from geo_core.orgs.models import Org
from geo_core.scope import Principal

log = logging.getLogger(__name__)

MAX_JOB_FEATURES = 100_000  # in a background job (POST /grids/import-jobs, jobs.grids.import_grid_file)
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
DIVISION_RE = re.compile(r"^\d{6}(\d{3}(\d{3})?)?$")


# -- parsing rows ------------------------------------------------------------------------------------

@dataclass
class ImportRow:
    row: int  # 1-based feature number in the file
    code: str | None
    values: dict[str, Any]
    geometry: dict[str, Any] | None
    failed: bool = False


@dataclass
class ImportReport:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error(self, row: ImportRow, field_name: str, message: str, detail: dict[str, Any] | None = None) -> None:
        row.failed = True
        entry: dict[str, Any] = {"row": row.row, "code": row.code, "field": field_name, "message": message}
        if detail:
            entry["detail"] = detail
        self.errors.append(entry)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValidationFailed(f"导入被拒绝：{len(self.errors)} 处错误，未写入任何数据", code="IMPORT_REJECTED",
                                   errors=sorted(self.errors, key=lambda e: (e["row"], e["field"])))


def _text(max_len: int, pattern: re.Pattern[str] | None = None, hint: str = "") -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value)
        if len(text) > max_len:
            raise ValueError(f"长度不能超过 {max_len}")
        if pattern is not None and not pattern.match(text):
            raise ValueError(hint)
        return text

    return parse


def _choice(choices: list[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value) not in choices:
            raise ValueError("取值必须是 " + "、".join(choices))
        return str(value)

    return parse


def _households(value: Any) -> int:
    if isinstance(value, str):  # KML and some CSV-born files carry numbers as text
        value = _clean(float(value)) if re.fullmatch(r"\d+(\.0*)?", value) else value
    if isinstance(value, float | bool) or not isinstance(value, int):
        raise ValueError(f"不是整数：{value!r}")
    if not 0 <= value <= 10_000_000:
        raise ValueError("应在 0 到 10,000,000 之间")
    return value


PARSERS: dict[str, Callable[[Any], Any]] = {
    "code": _text(40, CODE_RE, "只能包含字母、数字、_ 和 -，最长 40 位"),
    "name": _text(100),
    "kind": _choice([k.value for k in GridKind]),
    "level": _choice([lv.value for lv in GridLevel]),
    "virtual_type": _choice([v.value for v in VirtualType]),
    "business_line": _choice([b.value for b in BusinessLine]),
    "status": _choice([s.value for s in GridStatus]),
    "org_code": _text(32),
    "parent_code": _text(40),
    "division_code": _text(12, DIVISION_RE, "行政区划代码为 6、9 或 12 位数字"),
    "households_estimate": _households,
}


def _clean(value: Any) -> Any:
    """A cell as a plain Python value: None for blanks/NaN, int for whole floats, stripped text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return value.strip() or None
    return value


def _columns(frame: gpd.GeoDataFrame) -> dict[str, str]:
    """File column -> attribute key (case-insensitive; Shapefile short names accepted)."""
    short = {v: k for k, v in SHP_FIELDS.items()} | {k[:10]: k for k in PARSERS}
    mapped: dict[str, str] = {}
    for column in frame.columns:
        if column == frame.geometry.name:
            continue
        key = short.get(str(column).strip().lower(), str(column).strip().lower())
        if key in PARSERS and key not in mapped.values():
            mapped[str(column)] = key
    return mapped


def _geometry(geom: Any) -> dict[str, Any] | None:
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type == "GeometryCollection":  # KML MultiGeometry of polygons
        polygons = [p for g in geom.geoms for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon)]
        geom = MultiPolygon(polygons) if polygons else geom
    return mapping(geom)


def parse_features(frame: gpd.GeoDataFrame) -> ImportReport:
    """Parse and check every feature's attributes; infer kind; flag duplicate codes."""
    columns = _columns(frame)
    present = set(columns.values())
    missing = [k for k in ("code", "name") if k not in present]
    if missing or not present & {"level", "virtual_type"}:
        raise _reject("缺少必填字段：" + "、".join(missing + ([] if present & {"level", "virtual_type"}
                                                            else ["level 或 virtual_type"])))
    report = ImportReport()
    attributes = frame[list(columns)].rename(columns=columns)
    seen: dict[str, int] = {}
    for n, (record, geom) in enumerate(zip(attributes.to_dict("records"), frame.geometry, strict=True), start=1):
        raw = {k: _clean(v) for k, v in record.items()}
        code = None if raw.get("code") is None else str(raw["code"])
        row = ImportRow(n, code, {}, _geometry(geom))
        report.rows.append(row)
        for key, value in raw.items():
            if value is None:
                continue
            if key in ("code", "division_code", "org_code", "parent_code") and isinstance(value, int):
                value = str(value)
            try:
                row.values[key] = PARSERS[key](value)
            except ValueError as exc:
                report.error(row, key, f"{key}：{exc}")
        for key in ("code", "name"):
            if raw.get(key) is None:
                report.error(row, key, f"{key} 不能为空")
        _infer_kind(report, row)
        if row.code in seen:
            report.error(row, "code", f"编码 {row.code} 与第 {seen[row.code]} 个要素重复")
        elif row.code:
            seen[row.code] = n
    return report


def _infer_kind(report: ImportReport, row: ImportRow) -> None:
    level, vtype = row.values.get("level"), row.values.get("virtual_type")
    if level and vtype:
        report.error(row, "level", "不能同时指定 level（实体网格）和 virtual_type（虚拟网格）")
        return
    if not level and not vtype:
        report.error(row, "level", "必须指定 level（实体网格）或 virtual_type（虚拟网格）")
        return
    kind = GridKind.physical.value if level else GridKind.virtual.value
    if row.values.get("kind", kind) != kind:
        report.error(row, "kind", f"kind 与{'层级' if level else '虚拟类型'}不符，应为 {kind}")
    row.values["kind"] = kind


def parents_first(report: ImportReport) -> list[ImportRow]:
    """Rows ordered so a parent in the file precedes its children (file order otherwise); cycles are errors."""
    rows = {r.row: r for r in report.rows if r.code}
    codes = {r.code for r in rows.values()}
    children: dict[str, list[int]] = defaultdict(list)
    ready: list[int] = []
    for r in rows.values():
        parent = r.values.get("parent_code")
        if parent == r.code:
            report.error(r, "parent_code", "上级网格不能是自己")
        elif parent in codes:
            children[parent].append(r.row)
            continue
        heapq.heappush(ready, r.row)
    order: list[ImportRow] = []
    while ready:
        row = rows[heapq.heappop(ready)]
        order.append(row)
        for child in children.pop(row.code or "", []):  # with duplicate codes, after the first row
            heapq.heappush(ready, child)
    for waiting in children.values():
        for number in waiting:
            r = rows[number]
            report.error(r, "parent_code", f"上级编码形成循环引用（{r.code} → {r.values['parent_code']} → …）")
    return order


# -- writing -----------------------------------------------------------------------------------------

@dataclass
class _Known:
    grids: dict[str, Grid]  # in-scope grids whose code is in the file
    parents: dict[str, int]  # in-scope grids named only as parent_code
    orgs: dict[str, int]  # in-scope orgs named as org_code
    in_file: dict[str, int]  # code -> feature number of its first row
    written: dict[str, int] = field(default_factory=dict)  # code -> id of the rows written so far


def _lookup(session: Session, rows: list[ImportRow]) -> _Known:
    """What the caller can see (RLS) of the grids and orgs the file names, in a few queries."""
    in_file: dict[str, int] = {}
    for r in rows:
        if r.code:
            in_file.setdefault(r.code, r.row)
    parents = {r.values["parent_code"] for r in rows if r.values.get("parent_code")} - in_file.keys()
    orgs = {r.values["org_code"] for r in rows if r.values.get("org_code")}
    return _Known(
        grids={g.code: g for chunk in _chunks(in_file) for g in session.scalars(
            select(Grid).where(Grid.code.in_(chunk)))},
        parents={c: i for chunk in _chunks(parents) for c, i in session.execute(
            select(Grid.code, Grid.id).where(Grid.code.in_(chunk)))},
        orgs={c: i for chunk in _chunks(orgs) for c, i in session.execute(
            select(Org.code, Org.id).where(Org.code.in_(chunk)))},
        in_file=in_file,
    )


def _chunks(values: Iterable[str], size: int = 5000) -> Iterator[list[str]]:
    ordered = sorted(values)
    for i in range(0, len(ordered), size):
        yield ordered[i:i + size]


def import_grids(session: Session, actor: Principal, filename: str, data: bytes, *, crs: str | None = None,
                 repair: bool = False, mode: str = "upsert", max_features: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Create (and in upsert mode update, by code) the file's grids: all rows or none.

    `on_progress(done, total)` is called every 100 rows written (the background import reports it)."""
    if mode not in ("create", "upsert"):
        raise ValidationFailed.on("mode", "mode 必须是 create 或 upsert")
    report = parse_features(read_features(filename, data, crs=crs, max_features=max_features))
    order = parents_first(report)
    known = _lookup(session, report.rows)
    counts = {"created": 0, "updated": 0}
    with session.begin_nested():  # all-or-nothing even for a caller that catches the rejection
        for done, row in enumerate(order):
            if on_progress is not None and done % 100 == 0:
                on_progress(done, len(order))
            if row.failed:
                continue
            try:
                with session.begin_nested():
                    grid, created = _write_row(session, actor, row, known, mode=mode, repair=repair)
            except (ValidationFailed, Conflict, NotFound) as exc:
                _row_failed(report, row, exc)
                continue
            except (IntegrityError, DataError) as exc:
                reason = str(getattr(exc, "orig", exc)).splitlines()[0]
                report.error(row, "file", f"数据库拒绝该行：{reason}")
                continue
            known.written[row.code or ""] = grid.id
            counts["created" if created else "updated"] += 1
        report.raise_if_errors()
    if on_progress is not None:
        on_progress(len(order), len(order))
    return counts


def _row_failed(report: ImportReport, row: ImportRow, exc: ValidationFailed | Conflict | NotFound) -> None:
    field_name = next(iter(exc.errors), "file") if isinstance(exc.errors, dict) and exc.errors else "file"
    field_name = {"parent_id": "parent_code", "org_id": "org_code", "grid_id": "code"}.get(field_name, field_name)
    report.error(row, field_name, exc.message, exc.detail)


def _resolve(row: ImportRow, known: _Known) -> dict[str, Any]:
    """parent_code / org_code -> ids (None when blank)."""
    resolved: dict[str, Any] = {}
    parent = row.values.get("parent_code")
    if parent:
        if parent in known.written:
            resolved["parent_id"] = known.written[parent]
        elif parent in known.in_file:  # parents come first, so it failed
            raise ValidationFailed.on("parent_code", f"上级网格 {parent}（第 {known.in_file[parent]} 个要素）未能导入")
        elif parent in known.parents:
            resolved["parent_id"] = known.parents[parent]
        else:
            raise ValidationFailed.on("parent_code", f"上级网格 {parent} 不存在或不在权限范围内")
    org = row.values.get("org_code")
    if org:
        if org not in known.orgs:
            raise ValidationFailed.on("org_code", f"机构 {org} 不存在或不在权限范围内")
        resolved["org_id"] = known.orgs[org]
    return resolved


def _write_row(session: Session, actor: Principal, row: ImportRow, known: _Known, *, mode: str,
               repair: bool) -> tuple[Grid, bool]:
    data = {k: v for k, v in row.values.items() if k not in ("parent_code", "org_code")}
    data.update(_resolve(row, known))
    existing = known.grids.get(row.code or "")
    if existing is None:
        data["geometry"] = row.geometry
        return service.create_grid(session, actor, data, repair=repair), True
    if mode == "create":
        raise Conflict(f"网格编码 {row.code} 已存在", code="GRID_CODE_TAKEN", errors={"code": ["网格编码已存在"]})
    for key in ("level", "virtual_type"):
        if data.get(key) != _v(getattr(existing, key)):
            current = _v(getattr(existing, key)) or "空"
            raise ValidationFailed.on(key, f"导入不能修改已有网格的 {key}（现为 {current}）")
    for key in ("kind", "level", "virtual_type", "code"):
        data.pop(key, None)
    if row.geometry is not None and not _same_geometry(service.current_geometry(session, existing), row.geometry):
        data["geometry"] = row.geometry
    return service.update_grid(session, actor, existing.id, data, repair=repair), False


def _same_geometry(current: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Unchanged within ~1 mm (ring order, orientation and Polygon vs MultiPolygon ignored)."""
    if current is None:
        return False
    try:
        a, b = shapely.normalize(shape(current)), shapely.normalize(shape(new))
    except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
        return False
    if isinstance(b, Polygon):
        b = shapely.normalize(MultiPolygon([b]))
    return bool(a.equals_exact(b, 1e-8))
