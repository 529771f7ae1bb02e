"""Grid import/export as GeoJSON, KML, GeoPackage and zipped Shapefile: formats, CRS, all-or-nothing, scope."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import box, mapping, shape

from geo_core.crs import transform_geojson

TS = "/api/v1/grids"
UTM_49N = 32649  # metric CRS for Changsha (108°E-114°E)
MEDIA = {"geojson": "application/geo+json", "kml": "application/vnd.google-earth.kml+xml",
         "gpkg": "application/geopackage+sqlite3", "shp": "application/zip"}


def _grid(client, h, code):
    items = client.get(f"{TS}?q={code}&page_size=500", headers=h).get_json()["items"]
    gid = next(g["id"] for g in items if g["code"] == code)
    return client.get(f"{TS}/{gid}", headers=h).get_json()


def _codes(client, h, query):
    body = client.get(f"{TS}?{query}&page_size=500", headers=h).get_json()
    assert body["total"] <= 500
    return {g["code"]: g for g in body["items"]}


def _read(data: bytes, suffix: str, tmp_path: Path) -> gpd.GeoDataFrame:
    path = tmp_path / f"export.{suffix}"
    path.write_bytes(data)
    if suffix == "zip":
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp_path / "shp")
        path = next((tmp_path / "shp").glob("*.shp"))
    return gpd.read_file(path, engine="pyogrio")


def _upload(client, h, frame: gpd.GeoDataFrame | None, suffix: str, tmp_path: Path, query: str = "",
            raw: bytes | None = None):
    if raw is None:
        raw = _write(frame, suffix, tmp_path)
    return client.post(f"{TS}/import{query}", headers=h, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(raw), f"upload.{suffix}")})


def _write(frame: gpd.GeoDataFrame, suffix: str, tmp_path: Path) -> bytes:
    if suffix == "zip":
        folder = tmp_path / "out"
        folder.mkdir(exist_ok=True)
        frame.to_file(folder / "grids.shp", engine="pyogrio", encoding="UTF-8")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            for part in folder.iterdir():
                archive.write(part, part.name)
        return buf.getvalue()
    driver = {"geojson": "GeoJSON", "gpkg": "GPKG", "kml": "KML"}[suffix]
    path = tmp_path / f"in.{suffix}"
    frame.to_file(path, driver=driver, engine="pyogrio")
    return path.read_bytes()


@pytest.fixture()
def township(client, login):
    # 坡子街街道 (天心区): no communities in the small demo, so the space is free
    return _grid(client, login("admin"), "G430103002")


def _squares(township, n=2, size=0.004, gap=0.0):
    """n adjacent squares (WGS84) in a row around the township's representative point."""
    p = shape(township["geometry"]).representative_point()
    x0 = p.x - n * (size + gap) / 2
    return [box(x0 + i * (size + gap), p.y - size / 2, x0 + i * (size + gap) + size, p.y + size / 2) for i in range(n)]


def _new_communities(township, geoms, codes=("IMP-C1", "IMP-C2"), crs=4326):
    return gpd.GeoDataFrame(
        {"code": list(codes), "name": [f"导入社区{i}" for i in range(1, len(codes) + 1)],
         "level": ["community"] * len(codes), "parent_code": ["G430103002"] * len(codes),
         "households_estimate": [600 + i for i in range(len(codes))]},
        geometry=geoms, crs=crs)


# -- export ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,suffix", [("geojson", "geojson"), ("kml", "kml"), ("gpkg", "gpkg"), ("shp", "zip")])
def test_export_each_format_reads_back(client, login, tmp_path, fmt, suffix):
    h = login("admin")
    district = _grid(client, h, "G430102")
    expected = _codes(client, h, f"under_id={district['id']}&level=community")
    assert len(expected) >= 5
    r = client.get(f"{TS}/export?format={fmt}&under_id={district['id']}&level=community", headers=h)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.mimetype == MEDIA[fmt]
    assert r.headers["Content-Disposition"].startswith("attachment;") and f".{suffix}" in r.headers[
        "Content-Disposition"]
    assert r.headers["X-Skipped-Without-Geometry"] == "0" and r.headers["X-Feature-Count"] == str(len(expected))
    frame = _read(r.data, suffix, tmp_path)
    assert frame.crs.to_epsg() == 4326
    assert len(frame) == len(expected)
    columns = {c.lower() for c in frame.columns}
    if fmt == "shp":
        assert all(len(c) <= 10 for c in frame.columns)
        assert {"code", "name", "kind", "level", "virt_type", "biz_line", "org_code", "parent_cd", "div_code",
                "households", "status", "area_m2"} <= columns
        with zipfile.ZipFile(io.BytesIO(r.data)) as archive:
            names = sorted(archive.namelist())
            assert names == ["grids.cpg", "grids.dbf", "grids.prj", "grids.shp", "grids.shx"]
            assert archive.read("grids.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
    else:
        assert {"code", "name", "kind", "level", "virtual_type", "business_line", "org_code", "parent_code",
                "division_code", "households_estimate", "status", "area_m2"} <= columns
    frame.columns = [c if c == "geometry" else c.lower() for c in frame.columns]
    by_code = frame.set_index("code")
    assert set(by_code.index) == set(expected)
    sample = expected[sorted(expected)[0]]
    row = by_code.loc[sample["code"]]
    assert row["name"] == sample["name"] and row["level"] == "community" and row["kind"] == "physical"
    assert str(row["parent_cd" if fmt == "shp" else "parent_code"]).startswith("G430102")
    assert row["org_code"]
    households = row["households" if fmt == "shp" else "households_estimate"]
    assert int(households) == sample["households_estimate"]
    areas = frame.to_crs(UTM_49N).area
    for code, area in zip(frame["code"], areas, strict=True):
        assert abs(area - expected[code]["area_m2"]) / expected[code]["area_m2"] < 0.01, code
        assert abs(float(by_code.loc[code, "area_m2"]) - expected[code]["area_m2"]) < 1


def test_export_virtual_grids_without_geometry(client, login, tmp_path):
    h = login("admin")
    r = client.get(f"{TS}/export?format=geojson&kind=virtual", headers=h)
    fc = json.loads(r.data)
    chain = next(f for f in fc["features"] if f["properties"]["code"] == "V-CHAIN-01")
    assert chain["geometry"] is None and chain["properties"]["virtual_type"] == "supply_chain"
    assert r.headers["X-Skipped-Without-Geometry"] == "0"
    gpkg = _read(client.get(f"{TS}/export?format=gpkg&kind=virtual", headers=h).data, "gpkg", tmp_path)
    assert len(gpkg) == len(fc["features"]) and gpkg.geometry.isna().sum() >= 1
    for fmt in ("kml", "shp"):
        r = client.get(f"{TS}/export?format={fmt}&kind=virtual", headers=h)
        assert r.status_code == 200
        assert int(r.headers["X-Skipped-Without-Geometry"]) == int(gpkg.geometry.isna().sum())
        assert int(r.headers["X-Feature-Count"]) == len(gpkg) - int(gpkg.geometry.isna().sum())


def test_export_in_gcj02_is_shifted(client, login):
    h = login("admin")
    township = _grid(client, h, "G430102001")
    query = f"format=geojson&parent_id={township['id']}"
    wgs = json.loads(client.get(f"{TS}/export?{query}", headers=h).data)["features"][0]
    r = client.get(f"{TS}/export?{query}&crs=gcj02", headers=h)
    assert r.headers["X-Coordinate-System"] == "gcj02" and "-gcj02-" in r.headers["Content-Disposition"]
    gcj = json.loads(r.data)["features"][0]
    expected = transform_geojson(wgs["geometry"], "wgs84", "gcj02")
    assert shape(gcj["geometry"]).hausdorff_distance(shape(expected)) < 1e-8  # 9 decimals kept
    assert shape(gcj["geometry"]).centroid.distance(shape(wgs["geometry"]).centroid) > 0.003
    assert client.get(f"{TS}/export?format=dxf", headers=h).status_code == 422
    assert client.get(f"{TS}/export?format=geojson&crs=mars", headers=h).status_code == 422


# -- import ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,suffix", [("geojson", "geojson"), ("kml", "kml"), ("gpkg", "gpkg"), ("shp", "zip")])
def test_round_trip_updates_everything(client, login, tmp_path, monkeypatch, fmt, suffix):
    from geo_core.grids import service

    h = login("admin")
    township = _grid(client, h, "G430102001")
    before = _codes(client, h, f"parent_id={township['id']}")
    r = client.get(f"{TS}/export?format={fmt}&parent_id={township['id']}", headers=h)
    count = int(r.headers["X-Feature-Count"])
    assert count == len(before) >= 2
    rewritten: list[int] = []
    monkeypatch.setattr(service, "refresh_h3", lambda session, grid: rewritten.append(grid.id))
    r = _upload(client, h, None, suffix, tmp_path, raw=r.data)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"created": 0, "updated": count}
    assert rewritten == []  # unchanged geometries are not rewritten
    after = _codes(client, h, f"parent_id={township['id']}")
    for code, grid in before.items():
        same = ("name", "org_id", "parent_id", "division_code", "households_estimate", "status", "area_m2")
        assert {k: after[code][k] for k in same} == {k: grid[k] for k in same}, code


def test_round_trip_of_virtual_grids_with_and_without_geometry(client, login, tmp_path):
    h = login("admin")
    r = client.get(f"{TS}/export?format=geojson&kind=virtual", headers=h)
    count = int(r.headers["X-Feature-Count"])
    r = _upload(client, h, None, "geojson", tmp_path, raw=r.data)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"created": 0, "updated": count}
    # a GeoPackage attribute table (no geometry column) of virtual grids
    table = tmp_path / "table.gpkg"
    pyogrio.write_dataframe(pd.DataFrame({"code": ["V-IMP-1"], "name": ["导入行业"], "virtual_type": ["industry"],
                                          "business_line": ["corporate"]}), table, layer="virtual")
    r = _upload(client, h, None, "gpkg", tmp_path, raw=table.read_bytes())
    assert r.status_code == 200, r.get_json()
    grid = _grid(client, h, "V-IMP-1")
    assert grid["kind"] == "virtual" and grid["geometry"] is None and grid["business_line"] == "corporate"


@pytest.mark.filterwarnings("ignore:Column names longer", "ignore:Normalized/laundered field name")
@pytest.mark.parametrize("suffix", ["gpkg", "zip"])
def test_import_new_communities(client, login, township, tmp_path, suffix):
    h = login("admin")
    geoms = _squares(township)
    # as a shapefile, GDAL truncates parent_code and households_estimate to 10 characters: still understood
    r = _upload(client, h, _new_communities(township, geoms), suffix, tmp_path)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"created": 2, "updated": 0}
    created = _codes(client, h, f"parent_id={township['id']}")
    assert set(created) == {"IMP-C1", "IMP-C2"}
    one = client.get(f"{TS}/{created['IMP-C1']['id']}", headers=h).get_json()
    assert one["name"] == "导入社区1" and one["households_estimate"] == 600 and one["level"] == "community"
    assert shape(one["geometry"]).hausdorff_distance(geoms[0]) < 1e-8
    # the same file again in create mode: codes taken
    r = _upload(client, h, _new_communities(township, geoms), suffix, tmp_path, "?mode=create")
    body = r.get_json()
    assert r.status_code == 422 and body["code"] == "IMPORT_REJECTED"
    assert {(e["row"], e["field"]) for e in body["errors"]} == {(1, "code"), (2, "code")}


def test_overlap_within_the_file_rejects_everything(client, login, township, tmp_path):
    h = login("admin")
    first, _ = _squares(township)
    second = box(first.bounds[0] + 0.002, first.bounds[1], first.bounds[2] + 0.002, first.bounds[3])
    r = _upload(client, h, _new_communities(township, [first, second]), "geojson", tmp_path)
    body = r.get_json()
    assert r.status_code == 422 and body["code"] == "IMPORT_REJECTED", body
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["row"] == 2 and error["code"] == "IMP-C2" and error["field"] == "geometry"
    assert "重叠" in error["message"] and "IMP-C1" in error["message"]
    assert error["detail"]["overlaps"][0]["code"] == "IMP-C1"
    assert _codes(client, h, f"parent_id={township['id']}") == {}


def test_parents_first_and_cycles(client, login, township, tmp_path):
    h = login("admin")
    community = _squares(township, n=1, size=0.006)[0]
    c = community.centroid
    frame = gpd.GeoDataFrame(
        {"code": ["IMP-B1", "IMP-C9"], "name": ["楼盘一", "社区九"], "level": ["building_group", "community"],
         "parent_code": ["IMP-C9", "G430103002"]},
        geometry=[box(c.x - 0.002, c.y - 0.002, c.x, c.y), community], crs=4326)
    r = _upload(client, h, frame, "geojson", tmp_path)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"created": 2, "updated": 0}
    cycle = gpd.GeoDataFrame(
        {"code": ["IMP-X1", "IMP-X2"], "name": ["甲", "乙"], "level": ["community", "community"],
         "parent_code": ["IMP-X2", "IMP-X1"]}, geometry=_squares(township, size=0.001, gap=0.01), crs=4326)
    body = _upload(client, h, cycle, "geojson", tmp_path).get_json()
    assert body["code"] == "IMPORT_REJECTED"
    assert {(e["row"], e["field"]) for e in body["errors"]} == {(1, "parent_code"), (2, "parent_code")}
    assert "循环" in body["errors"][0]["message"]


def test_import_reprojects_epsg_3857_and_takes_cgcs2000_as_wgs84(client, login, township, tmp_path):
    h = login("admin")
    geoms = _squares(township, n=4, size=0.002)
    frame = _new_communities(township, geoms, codes=("IMP-M1", "IMP-M2", "IMP-M3", "IMP-M4"))
    raw = _write(frame.iloc[:2].to_crs(3857), "geojson", tmp_path)
    assert b"3857" in raw  # the file declares its CRS
    r = _upload(client, h, None, "geojson", tmp_path, raw=raw)
    assert r.status_code == 200, r.get_json()
    assert shape(_grid(client, h, "IMP-M2")["geometry"]).hausdorff_distance(geoms[1]) < 1e-8
    # a file in EPSG:3857 that does not say so: the caller names the CRS
    undeclared = json.loads(_write(frame.iloc[2:3].to_crs(3857), "geojson", tmp_path))
    undeclared.pop("crs")
    raw = json.dumps(undeclared).encode()
    assert _upload(client, h, None, "geojson", tmp_path, raw=raw).status_code == 422  # read as lon/lat: out of range
    r = _upload(client, h, None, "geojson", tmp_path, "?crs=EPSG:3857", raw=raw)
    assert r.status_code == 200, r.get_json()
    assert shape(_grid(client, h, "IMP-M3")["geometry"]).hausdorff_distance(geoms[2]) < 1e-8
    assert _upload(client, h, None, "geojson", tmp_path, "?crs=EPSG:999999", raw=raw).get_json()["errors"]["crs"]
    cgcs = frame.iloc[3:].set_crs(4490, allow_override=True)
    r = _upload(client, h, cgcs, "gpkg", tmp_path)
    assert r.status_code == 200, r.get_json()
    assert shape(_grid(client, h, "IMP-M4")["geometry"]).hausdorff_distance(geoms[3]) < 1e-8


def test_import_converts_gcj02(client, login, township, tmp_path):
    h = login("admin")
    geoms = _squares(township)
    shifted = [shape(transform_geojson(mapping(g), "wgs84", "gcj02")) for g in geoms]
    frame = _new_communities(township, shifted)
    r = _upload(client, h, frame, "geojson", tmp_path, "?crs=gcj02")
    assert r.status_code == 200, r.get_json()
    one = _grid(client, h, "IMP-C1")
    assert shape(one["geometry"]).hausdorff_distance(geoms[0]) < 1e-8


def test_bad_files_are_422(client, login, township, tmp_path):
    h = login("admin")
    traversal = io.BytesIO()
    with zipfile.ZipFile(traversal, "w") as archive:
        archive.writestr("../evil.shp", b"x")
        archive.writestr("grids.dbf", b"x")
    for raw, name in ((traversal.getvalue(), "evil.zip"), (b"not a zip", "x.zip"), (b"{nope", "x.geojson"),
                      (b"garbage", "x.gpkg"), (b"<kml>", "x.kml"), (b"a,b", "x.csv"), (b"", "x.geojson"),
                      (b'{"type": "FeatureCollection", "features": []}', "x.geojson")):
        r = client.post(f"{TS}/import", headers=h, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(raw), name)})
        assert r.status_code == 422, (name, r.status_code, r.get_data(as_text=True)[:300])
        assert r.get_json()["code"] in ("IMPORT_REJECTED", "VALIDATION_FAILED")
    assert "不安全" in client.post(f"{TS}/import", headers=h, content_type="multipart/form-data", data={
        "file": (io.BytesIO(traversal.getvalue()), "evil.zip")}).get_json()["message"]
    missing = gpd.GeoDataFrame({"name": ["无编码"]}, geometry=_squares(township, n=1), crs=4326)
    r = _upload(client, h, missing, "geojson", tmp_path)
    assert r.status_code == 422 and "code" in r.get_json()["message"]
    bad = _new_communities(township, _squares(township))
    bad["level"] = ["village", "community"]
    bad["households_estimate"] = [-1, 5]
    body = _upload(client, h, bad, "geojson", tmp_path).get_json()
    assert {(e["row"], e["field"]) for e in body["errors"]} >= {(1, "level"), (1, "households_estimate")}
    assert client.post(f"{TS}/import", headers=h).status_code == 422


@pytest.mark.filterwarnings("ignore:Column names longer", "ignore:Normalized/laundered field name")
def test_limits(client, login, township, tmp_path, monkeypatch):
    from geo_core.grids import file_reader as files  # where the limits are read

    h = login("admin")
    frame = _new_communities(township, _squares(township))
    monkeypatch.setattr(files, "MAX_FEATURES", 1)
    r = _upload(client, h, frame, "geojson", tmp_path)
    assert r.status_code == 422 and "要素" in r.get_json()["message"]
    monkeypatch.setattr(files, "MAX_FEATURES", 20_000)
    monkeypatch.setattr(files, "MAX_UNZIPPED_BYTES", 1000)
    r = _upload(client, h, frame, "zip", tmp_path)
    assert r.status_code == 422 and "解压后超过" in r.get_json()["message"]
    # above the app-wide 25 MB request limit but within the 50 MB of grid files: read, and rejected as junk
    r = client.post(f"{TS}/import", headers=h, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b" " * (30 * 1024 * 1024)), "big.geojson")})
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    r = client.post(f"{TS}/import", headers=h, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(b" " * (52 * 1024 * 1024)), "big.geojson")})
    assert r.status_code == 413


# -- scope and permissions ---------------------------------------------------------------------------

def test_branch_leader_scope(client, login, tmp_path):
    h = login("bl_430102")
    yuelu = _grid(client, login("admin"), "G430104007")
    inside = shape(yuelu["geometry"]).representative_point()
    frame = gpd.GeoDataFrame({"code": ["IMP-Y1"], "name": ["越界社区"], "level": ["community"],
                              "parent_code": ["G430104007"]},
                             geometry=[box(inside.x - 0.001, inside.y - 0.001, inside.x + 0.001, inside.y + 0.001)],
                             crs=4326)
    body = _upload(client, h, frame, "geojson", tmp_path).get_json()
    assert body["code"] == "IMPORT_REJECTED"
    assert body["errors"][0]["field"] == "parent_code" and "权限范围" in body["errors"][0]["message"]
    r = client.get(f"{TS}/export?format=geojson", headers=h)
    assert r.status_code == 200
    codes = [f["properties"]["code"] for f in json.loads(r.data)["features"]]
    assert codes and not any(c.startswith("G430104") for c in codes)
    assert any(c.startswith("G430102") for c in codes)


def test_account_manager_may_not_import_or_export(client, login, tmp_path, township):
    h = login("am_430102_1_1")
    assert client.get(f"{TS}/export?format=geojson", headers=h).status_code == 403
    r = _upload(client, h, _new_communities(township, _squares(township)), "geojson", tmp_path)
    assert r.status_code == 403
