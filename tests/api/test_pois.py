"""Economic units (经济单元): CRUD, Chinese substring search, GeoJSON, grid subtree, permissions, grid placement
outside the editor's scope; keyword place search and import through the API against a local provider stub."""

from __future__ import annotations

import math

import h3
import pytest
from shapely.geometry import shape
from sqlalchemy import text

from geo_core.adapters import places
from geo_core.crs import wgs84_to_bd09, wgs84_to_gcj02
from geo_core.db import SYSTEM, set_context
from tests.adapters import GAODE_PATH, place_stub, stub_settings

V1 = "/api/v1"
PS = f"{V1}/pois"


def metres(a, b) -> float:
    return math.hypot((a[0] - b[0]) * math.cos(math.radians(b[1])) * 111_320, (a[1] - b[1]) * 110_574)


def _community(client, h, q="G430104"):
    """A community grid with geometry, its inside point and its township parent."""
    items = client.get(f"{V1}/grids?q={q}&level=community&page_size=1", headers=h).get_json()["items"]
    grid = client.get(f"{V1}/grids/{items[0]['id']}", headers=h).get_json()
    p = shape(grid["geometry"]).representative_point()
    return grid, (round(p.x, 7), round(p.y, 7))


@pytest.fixture()
def community(client, login):
    return _community(client, login("admin"))


def _poi(client, h, name, point, category="market", **extra):
    body = {"name": name, "category": category, "lon": point[0], "lat": point[1], **extra}
    return client.post(PS, json=body, headers=h)


def test_crud_with_h3_cell_and_grid(client, login, community):
    h = login("admin")
    grid, point = community
    r = _poi(client, h, "湘江副食批发市场", point, address="天心区湘江中路", phone="0731-8888")
    assert r.status_code == 201, r.get_json()
    poi = r.get_json()
    assert poi["grid_id"] == grid["id"] and poi["source"] == "manual" and poi["category_label"] == "市场"
    assert poi["h3_r10"] == h3.latlng_to_cell(point[1], point[0], 10)
    assert (poi["lon"], poi["lat"]) == point and poi["crs"] == "wgs84"
    got = client.get(f"{PS}/{poi['id']}", headers=h).get_json()
    assert got["name"] == "湘江副食批发市场" and got["address"] == "天心区湘江中路"
    r = client.patch(f"{PS}/{poi['id']}", json={"phone": None, "category": "retail"}, headers=h)
    assert r.status_code == 200 and r.get_json()["phone"] is None and r.get_json()["category"] == "retail"
    assert client.delete(f"{PS}/{poi['id']}", headers=h).status_code == 204
    r = client.get(f"{PS}/{poi['id']}", headers=h)
    assert r.status_code == 404 and r.get_json()["code"] == "POI_NOT_FOUND"


def test_moving_a_poi_recomputes_cell_and_grid(client, login, community):
    h = login("admin")
    poi = _poi(client, h, "移动测试", community[1]).get_json()
    far = (113.9, 28.9)  # outside every Changsha grid of the demo? at least a different cell
    r = client.patch(f"{PS}/{poi['id']}", json={"lon": far[0], "lat": far[1]}, headers=h)
    assert r.status_code == 200
    moved = r.get_json()
    assert moved["h3_r10"] == h3.latlng_to_cell(far[1], far[0], 10) and moved["grid_id"] != poi["grid_id"]
    r = client.patch(f"{PS}/{poi['id']}", json={"lon": 112.9}, headers=h)
    assert r.status_code == 422 and "lat" in r.get_json()["errors"]


def test_chinese_substring_search_best_match_first(client, login, community):
    h = login("admin")
    point = community[1]
    for name in ("湘江副食批发市场", "副食店", "湘江大酒店"):
        assert _poi(client, h, name, point).status_code == 201
    names = [p["name"] for p in client.get(f"{PS}?q=副食", headers=h).get_json()["items"]]
    assert set(names) == {"湘江副食批发市场", "副食店"}
    assert names[0] == "副食店"  # more similar (and shorter) first
    body = client.get(f"{PS}?q=副食批发", headers=h).get_json()  # >= 3 characters: the trigram index applies
    assert [p["name"] for p in body["items"]] == ["湘江副食批发市场"] and body["total"] == 1
    assert client.get(f"{PS}?q=湘江&category=market&page_size=1", headers=h).get_json()["total"] == 2
    assert client.get(f"{PS}?q=%25", headers=h).get_json()["total"] == 0  # wildcards are literal


def test_trigram_index_serves_long_patterns(db_session):
    set_context(db_session, SYSTEM)
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(db_session.scalars(text("EXPLAIN SELECT id FROM pois WHERE name ILIKE '%副食批发%'")))
    assert "ix_pois_name_trgm" in plan


def test_coordinates_in_and_out_in_other_crs(client, login, community):
    h = login("admin")
    wgs = community[1]
    gcj = wgs84_to_gcj02(*wgs)
    r = _poi(client, h, "纠偏测试", gcj, crs="gcj02")
    assert r.status_code == 201 and r.get_json()["crs"] == "gcj02"
    assert metres((r.get_json()["lon"], r.get_json()["lat"]), gcj) < 0.05
    poi = client.get(f"{PS}/{r.get_json()['id']}", headers=h).get_json()
    assert metres((poi["lon"], poi["lat"]), wgs) < 0.05 and poi["grid_id"] == community[0]["id"]
    bd = client.get(f"{PS}/{poi['id']}?crs=bd09", headers=h).get_json()
    assert metres((bd["lon"], bd["lat"]), wgs84_to_bd09(*wgs)) < 0.05


@pytest.mark.parametrize("body", [
    {"name": "x", "category": "bank", "lon": 112.9, "lat": 28.2},
    {"name": "   ", "category": "retail", "lon": 112.9, "lat": 28.2},
    {"category": "retail", "lon": 112.9, "lat": 28.2},
    {"name": "x", "category": "retail", "lon": 200, "lat": 28.2},
    {"name": "x", "category": "retail", "lon": "NaN", "lat": 28.2},
    {"name": "x", "category": "retail", "lon": 112.9, "lat": 28.2, "crs": "mars"},
    {"name": "x" * 201, "category": "retail", "lon": 112.9, "lat": 28.2},
])
def test_bad_input_is_422(client, login, body):
    r = client.post(PS, json=body, headers=login("admin"))
    assert r.status_code == 422, r.get_json()


@pytest.mark.parametrize("query", ["bbox=1,2,3", "bbox=a,b,c,d", "bbox=3,2,1,4", "bbox=0,0,200,1", "category=bank",
                                   "grid_id=0", "grid_id=99999999999", "crs=mars"])
def test_bad_query_is_422(client, login, query):
    h = login("admin")
    for path in (PS, f"{PS}/geojson"):
        r = client.get(f"{path}?{query}", headers=h)
        assert r.status_code == 422, (path, query, r.get_json())
    assert client.get(f"{PS}?page_size=100000", headers=h).status_code == 422
    assert client.get(f"{PS}/geojson?limit=6000", headers=h).status_code == 422


def test_out_of_range_ids_are_404(client, login):
    h = login("admin")
    for ident in ("0", "999999", "99999999999"):
        assert client.get(f"{PS}/{ident}", headers=h).status_code == 404
        assert client.patch(f"{PS}/{ident}", json={"name": "x"}, headers=h).status_code == 404
        assert client.delete(f"{PS}/{ident}", headers=h).status_code == 404


def test_geojson_bbox_cap_and_crs(client, login, community):
    h = login("admin")
    inside = community[1]
    a = _poi(client, h, "框内", inside).get_json()
    b = _poi(client, h, "框外", (inside[0] + 0.05, inside[1])).get_json()
    bbox = f"{inside[0] - 0.001},{inside[1] - 0.001},{inside[0] + 0.001},{inside[1] + 0.001}"
    fc = client.get(f"{PS}/geojson?bbox={bbox}", headers=h).get_json()
    ids = {f["id"] for f in fc["features"]}
    assert a["id"] in ids and b["id"] not in ids and fc["truncated"] is False
    feature = next(f for f in fc["features"] if f["id"] == a["id"])
    assert feature["geometry"] == {"type": "Point", "coordinates": [inside[0], inside[1]]}
    assert feature["properties"]["category"] == "market" and feature["properties"]["name"] == "框内"
    wide = f"{inside[0] - 0.1},{inside[1] - 0.1},{inside[0] + 0.1},{inside[1] + 0.1}"
    capped = client.get(f"{PS}/geojson?bbox={wide}&limit=1", headers=h).get_json()
    assert len(capped["features"]) == 1 and capped["truncated"] is True
    gcj = client.get(f"{PS}/geojson?bbox={bbox}&crs=gcj02", headers=h).get_json()
    coords = next(f for f in gcj["features"] if f["id"] == a["id"])["geometry"]["coordinates"]
    assert metres(coords, wgs84_to_gcj02(*inside)) < 0.05
    listed = client.get(f"{PS}?bbox={bbox}", headers=h).get_json()
    assert a["id"] in {p["id"] for p in listed["items"]} and b["id"] not in {p["id"] for p in listed["items"]}


def test_grid_subtree_filter(client, login, community):
    h = login("admin")
    grid, point = community
    poi = _poi(client, h, "子树测试", point).get_json()
    other = _poi(client, h, "别处", (113.9, 28.9)).get_json()
    for grid_id in (grid["id"], grid["parent_id"]):  # the community and its township
        ids = {p["id"] for p in client.get(f"{PS}?grid_id={grid_id}&page_size=500", headers=h).get_json()["items"]}
        assert poi["id"] in ids and other["id"] not in ids
        fc = client.get(f"{PS}/geojson?grid_id={grid_id}", headers=h).get_json()
        assert poi["id"] in {f["id"] for f in fc["features"]}
    sibling, _ = _community(client, h, q="G430102")
    ids = {p["id"] for p in client.get(f"{PS}?grid_id={sibling['id']}&page_size=500", headers=h).get_json()["items"]}
    assert poi["id"] not in ids
    assert client.get(f"{PS}?grid_id=999999", headers=h).status_code == 404


def test_permissions(client, login, community):
    grid, point = community
    am = login("am_430102_1_1")
    assert client.get(PS, headers=am).status_code == 200  # everyone may read POIs
    r = _poi(client, am, "客户经理不能建", point)
    assert r.status_code == 403 and r.get_json()["code"] == "PERMISSION_DENIED"
    poi = _poi(client, login("admin"), "只读", point).get_json()
    assert client.patch(f"{PS}/{poi['id']}", json={"name": "改"}, headers=am).status_code == 403
    assert client.delete(f"{PS}/{poi['id']}", headers=am).status_code == 403
    assert client.post(f"{PS}/import-from-search", json={"q": "副食"}, headers=am).status_code == 403
    assert client.get(f"{PS}/{poi['id']}", headers=login("ga_430102_1")).status_code == 200


def test_editor_outside_the_grids_scope_still_places_the_poi(client, login, community, db_session):
    """A 芙蓉 sub-branch leader creates a POI in a 岳麓 grid he cannot see: the grid is found in an audited
    elevated lookup and only its id is stored; the grid itself stays invisible to him."""
    grid, point = community
    h = login("sbl_430102_1")
    assert client.get(f"{V1}/grids/{grid['id']}", headers=h).status_code == 404
    r = _poi(client, h, "跨辖区经济单元", point)
    assert r.status_code == 201 and r.get_json()["grid_id"] == grid["id"]
    assert client.get(f"{V1}/grids/{grid['id']}", headers=h).status_code == 404
    assert client.get(f"{PS}?grid_id={grid['id']}", headers=h).status_code == 404
    set_context(db_session, SYSTEM)
    reason = db_session.scalar(text(
        "SELECT a.detail->>'reason' FROM audit_log a JOIN users u ON u.id = a.actor_user_id "
        "WHERE a.action = 'elevate' AND u.username = 'sbl_430102_1' ORDER BY a.id DESC LIMIT 1"))
    assert reason and reason.startswith("poi grid placement")
    inserted = db_session.scalar(text("SELECT count(*) FROM audit_log WHERE entity = 'pois' AND action = 'insert' "
                                      "AND entity_id = :i"), {"i": str(r.get_json()["id"])})
    assert inserted == 1


# -- keyword place search through the API ------------------------------------------------------------------------

@pytest.fixture()
def stub(app, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    places.reset_rate_limiters()
    state = app.extensions["gridmarket"]
    original = state.settings
    with place_stub() as s:
        state.settings = stub_settings(original, s)
        try:
            yield s
        finally:
            state.settings = original
            places.reset_rate_limiters()


@pytest.mark.parametrize("provider", ["baidu", "gaode"])
def test_place_search_converts_to_the_requested_crs(client, login, stub, provider):
    h = login("am_430102_1_1")
    wgs = stub.places[0][1:3]
    r = client.get(f"{V1}/places/search?q=副食&provider={provider}", headers=h)
    assert r.status_code == 200, r.get_json()
    (place,) = r.get_json()
    assert place["provider"] == provider and place["provider_id"] == "P001" and place["name"] == "湘江副食批发市场"
    assert place["category"] == "market" and place["category_label"] == "市场"
    assert metres((place["lon"], place["lat"]), wgs) < 0.5
    gcj = client.get(f"{V1}/places/search?q=副食&provider={provider}&crs=gcj02", headers=h).get_json()[0]
    assert metres((gcj["lon"], gcj["lat"]), wgs84_to_gcj02(*wgs)) < 0.5
    assert stub.requests[-1][1].get("city", stub.requests[-1][1].get("region")) == "长沙"


def test_place_search_errors(client, login, stub):
    h = login("admin")
    r = client.get(f"{V1}/places/search?q=错误&provider=gaode", headers=h)
    assert r.status_code == 502 and r.get_json()["code"] == "PLACE_SEARCH_FAILED"
    assert "INVALID_USER_KEY" in r.get_json()["message"]
    r = client.get(f"{V1}/places/search?q=坏JSON&provider=baidu", headers=h)
    assert r.status_code == 502 and r.get_json()["code"] == "PLACE_SEARCH_FAILED"
    assert client.get(f"{V1}/places/search?q=副食&provider=tencent", headers=h).status_code == 422
    assert client.get(f"{V1}/places/search?provider=baidu", headers=h).status_code == 422
    assert client.get(f"{V1}/places/search?q=%20&provider=baidu", headers=h).status_code == 422
    assert client.get(f"{V1}/places/search?q=副食&page_size=50", headers=h).status_code == 422
    r = client.get(f"{V1}/places/search?q=副食&city=上海", headers=h)  # default provider: the first with a key
    assert r.status_code == 200 and r.get_json()[0]["provider"] == "baidu"
    assert stub.requests[-1][1]["region"] == "上海"


def test_place_search_disabled_without_key(client, login):
    h = login("admin")
    for query in ("q=副食", "q=副食&provider=gaode", "q=副食&provider=baidu"):
        r = client.get(f"{V1}/places/search?{query}", headers=h)
        assert r.status_code == 503, r.get_json()
        assert r.get_json()["code"] == "PLACE_SEARCH_DISABLED" and "未启用" in r.get_json()["message"]
    r = client.post(f"{PS}/import-from-search", json={"q": "副食", "provider": "gaode"}, headers=h)
    assert r.status_code == 503 and r.get_json()["code"] == "PLACE_SEARCH_DISABLED"


def test_import_from_search_upserts(client, login, stub, community):
    grid, point = community
    stub.places = [("湘江副食批发市场", *point, "B0FFG1", "购物;市场", "购物服务;综合市场;综合市场"),
                   ("岳麓山下小吃店", point[0] + 0.0005, point[1], "B0FFG2", "美食;小吃快餐店",
                    "餐饮服务;快餐厅;快餐厅")]
    h = login("sbl_430102_1")
    r = client.post(f"{PS}/import-from-search", json={"provider": "gaode", "q": "副食", "city": "长沙", "max": 10},
                    headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["created"] == 2 and body["updated"] == 0
    first = next(p for p in body["items"] if p["source_ref"] == "B0FFG1")
    assert first["source"] == "gaode" and first["category"] == "market" and first["grid_id"] == grid["id"]
    assert metres((first["lon"], first["lat"]), point) < 0.5
    assert next(p for p in body["items"] if p["source_ref"] == "B0FFG2")["category"] == "catering"
    assert stub.last(GAODE_PATH)["offset"] == "10"
    # an editor's correction of the category survives; provider fields follow the provider
    client.patch(f"{PS}/{first['id']}", json={"category": "retail"}, headers=h)
    stub.places[0] = ("湘江副食批发市场（新址）", *stub.places[0][1:])
    again = client.post(f"{PS}/import-from-search", json={"provider": "gaode", "q": "副食"}, headers=h).get_json()
    assert again["created"] == 0 and again["updated"] == 2
    renamed = next(p for p in again["items"] if p["id"] == first["id"])
    assert renamed["name"] == "湘江副食批发市场（新址）" and renamed["category"] == "retail"
    found = client.get(f"{PS}?q=新址", headers=h).get_json()
    assert found["total"] == 1
    r = client.post(f"{PS}/import-from-search", json={"provider": "gaode", "q": "副食", "max": 0}, headers=h)
    assert r.status_code == 422


@pytest.mark.parametrize("provider_type,name,expected", [
    ("购物服务;综合市场;农贸市场", "", "market"),
    ("购物服务;超级市场;超市", "", "retail"),  # 超级市场 is a shop, not a market
    ("医疗保健服务;医药保健销售店;药房", "", "retail"),
    ("医疗保健服务;综合医院;三级甲等医院", "", "hospital"),
    ("美食;中餐厅;cater", "", "catering"),
    ("科教文化服务;学校;小学", "", "school"),
    ("政府机构及社会团体;政府机关;乡镇以下级政府及事业单位", "", "government"),
    ("商务住宅;住宅区;住宅小区", "", "residential"),
    ("公司企业;工厂;工厂", "", "manufacturing"),
    ("公司企业;农林牧渔基地;其它农林牧渔基地", "", "agriculture"),
    ("生活服务;美容美发店;美容美发店", "", "services"),
    (None, "望城区金峰蔬菜专业合作社", "agriculture"),
    (None, "湘江副食批发市场", "market"),
    ("公司企业;公司;公司", "某某科技有限公司", "other"),
])
def test_category_for_provider_types(provider_type, name, expected):
    from geo_core.pois.service import category_for

    assert category_for(provider_type, name) == expected
