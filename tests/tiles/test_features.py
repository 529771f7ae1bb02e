"""OGC API - Features at /ogc: Core, GeoJSON, CRS (Part 2), queryables and CQL2 filters (Part 3), paging and the
numberMatched rule, and data scope attacked from a sub-branch leader's side."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from openapi_spec_validator import validate
from sqlalchemy import text

from geo_core.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.tiles import YUELU, clear_tile_cache, customers_of_branch, visible_customer_ids

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
GCJ02 = "http://www.gridmarket.cn/def/crs/GCJ-02"
BD09 = "http://www.gridmarket.cn/def/crs/BD-09"
ATTACKER = "sbl_430102_1"  # 芙蓉 sub-branch leader (文艺路支行, n1.n2.n3)
TILE_PROPS_FORBIDDEN = {"phone_enc", "id_number_enc", "uscc_enc", "phone_bidx", "id_number_bidx", "uscc_bidx",
                        "address", "birth_date", "gender"}


def _items(client, headers, collection: str, **params) -> dict:  # noqa: ANN001
    query = "&".join(f"{k.replace('_', '-') if k in ('bbox_crs', 'filter_lang', 'filter_crs') else k}={quote(str(v))}"
                     for k, v in params.items())
    r = client.get(f"/ogc/collections/{collection}/items?{query}", headers=headers)
    assert r.status_code == 200, r.get_json()
    assert r.headers["Content-Type"].startswith("application/geo+json")
    return r.get_json()


def _ids(fc: dict) -> list[int]:
    return [f["id"] for f in fc["features"]]


def _count(owner_engine, sql: str, **params) -> int:  # noqa: ANN001
    with owner_engine.connect() as conn:
        return conn.scalar(text(sql), params)


@pytest.fixture(autouse=True)
def _fresh_cache(migrated_db):  # noqa: ANN001, ANN202
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    yield
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)


@pytest.fixture()
def tiles_conf(app):  # noqa: ANN001, ANN201
    """Change the feature/tile settings for one test."""
    from tiles import EXTENSION_KEY

    original = app.extensions[EXTENSION_KEY]

    def _set(**changes):  # noqa: ANN202
        app.extensions[EXTENSION_KEY] = dataclasses.replace(original, **changes)

    yield _set
    app.extensions[EXTENSION_KEY] = original


# --- Core -------------------------------------------------------------------------------------------------------------

def test_landing_and_conformance_are_public_with_the_right_links(client):
    r = client.get("/ogc")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    rels = {link["rel"]: link for link in r.get_json()["links"]}
    assert {"self", "alternate", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["href"].endswith("/api/openapi.json")
    assert rels["data"]["href"].endswith("/ogc/collections")
    conf = client.get("/ogc/conformance").get_json()["conformsTo"]
    for cls in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                "ogcapi-features-2/1.0/conf/crs", "ogcapi-features-3/1.0/conf/filter", "cql2/1.0/conf/cql2-text"):
        assert any(c.endswith(cls) for c in conf), cls
    html = client.get("/ogc?f=html")
    assert html.headers["Content-Type"].startswith("text/html") and b'<a href="http://localhost/ogc/collections"' \
        in html.data
    assert client.get("/ogc", headers={"Accept": "text/html,*/*;q=0.8"}).headers["Content-Type"].startswith("text/html")
    assert client.get("/ogc?f=xml").status_code == 400


def test_everything_else_needs_a_token_and_the_layer_permission(client, login):
    for url in ("/ogc/collections", "/ogc/collections/grids", "/ogc/collections/grids/items",
                "/ogc/collections/grids/items/1", "/ogc/collections/grids/queryables"):
        r = client.get(url)
        assert r.status_code == 401, url
        assert {"code", "status", "message"} <= set(r.get_json())
    assert client.get("/ogc/collections", headers={"Authorization": "Bearer forged"}).status_code == 401
    # a grid assistant has no org:read: the outlets collection is neither listed nor readable
    h = login("ga_430102_1")
    listed = {c["id"] for c in client.get("/ogc/collections", headers=h).get_json()["collections"]}
    assert "outlets" not in listed and {"grids", "customers", "pois"} <= listed
    r = client.get("/ogc/collections/outlets/items", headers=h)
    assert r.status_code == 403 and r.get_json()["code"] == "PERMISSION_DENIED"
    assert client.get("/ogc/collections/nope", headers=login("admin")).status_code == 404


def test_collections_describe_extent_crs_and_links(client, login):
    body = client.get("/ogc/collections", headers=login("admin")).get_json()
    assert {c["id"] for c in body["collections"]} == {"grids", "customers", "outlets", "pois"}
    customers = client.get("/ogc/collections/customers", headers=login("admin")).get_json()
    assert customers["itemType"] == "feature" and customers["storageCrs"] == CRS84
    assert {CRS84, EPSG4326, EPSG3857, GCJ02, BD09} <= set(customers["crs"])
    (box,) = customers["extent"]["spatial"]["bbox"]
    assert 112.5 < box[0] < box[2] < 113.2 and 27.9 < box[1] < box[3] < 28.4
    assert len(customers["extent"]["temporal"]["interval"][0]) == 2
    rels = {link["rel"]: link for link in customers["links"]}
    assert rels["items"]["type"] == "application/geo+json"
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/queryables"]["type"] == "application/schema+json"


def test_openapi_documents_the_ogc_paths(client):
    spec = client.get("/api/openapi.json").get_json()
    spec["paths"] = {k: v for k, v in spec["paths"].items() if k.startswith(("/ogc", "/tiles"))}
    validate(spec)
    items = spec["paths"]["/ogc/collections/{collection_id}/items"]["get"]
    limit = next(p for p in items["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 10_000 and items["security"] == [{"bearerAuth": []}]


# --- items, paging, numberMatched ----------------------------------------------------------------------------------

def test_items_page_through_the_whole_collection(client, login, owner_engine):
    h = login("admin")
    total = _count(owner_engine, "SELECT count(*) FROM customers WHERE geom IS NOT NULL")
    first = _items(client, h, "customers")
    assert first["numberReturned"] == 10 and first["numberMatched"] == total
    feature = first["features"][0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
    assert isinstance(feature["id"], int) and "name" in feature["properties"]
    seen: list[int] = []
    url = "/ogc/collections/customers/items?limit=1000"
    pages = 0
    while url:
        body = client.get(url, headers=h).get_json()
        seen += _ids(body)
        nxt = [link for link in body["links"] if link["rel"] == "next"]
        url = nxt[0]["href"].replace("http://localhost", "") if nxt else None
        pages += 1
    assert len(seen) == len(set(seen)) == total and pages == -(-total // 1000)
    last = client.get(f"/ogc/collections/customers/items?limit=1000&offset={total - 5}", headers=h).get_json()
    prev = next(link for link in last["links"] if link["rel"] == "prev")
    assert parse_qs(urlsplit(prev["href"]).query)["offset"] == [str(total - 1005)]
    assert last["numberReturned"] == 5 and not [link for link in last["links"] if link["rel"] == "next"]


def test_limit_offset_and_unknown_parameters(client, login):
    h = login("admin")
    assert _items(client, h, "grids", limit=20000)["numberReturned"] > 100  # clamped to the maximum, not refused
    assert _items(client, h, "grids", offset=10**20)["numberReturned"] == 0  # past the end, not a database error
    for bad in ("limit=0", "limit=x", "offset=-1", "nonsense=1", "f=xml", "crs=EPSG:9999", "bbox=1,2,3",
                "bbox=3,2,1,4", "sortby=phone_enc", "properties=phone_enc", "kind=alien&category=", "id=abc",
                "datetime=yesterday", "datetime=2027-01-01/2026-01-01", "filter-lang=sql&filter=1=1"):
        r = client.get(f"/ogc/collections/customers/items?{bad}", headers=h)
        assert r.status_code == 400, bad
        body = r.get_json()
        assert body["status"] == 400 and body["errors"], bad


def test_number_matched_rule(client, login, tiles_conf, owner_engine):
    h = login("admin")
    total = _count(owner_engine, "SELECT count(*) FROM customers WHERE geom IS NOT NULL")
    tiles_conf(count_mode="auto", count_threshold=0)  # everything counts as "large": omit, report the estimate
    body = _items(client, h, "customers", limit=100)
    assert "numberMatched" not in body and body["numberMatchedEstimate"] > 0
    assert any(link["rel"] == "next" for link in body["links"])
    narrow = _items(client, h, "customers", limit=100, filter="id = 1")  # the page proves the total
    assert narrow["numberMatched"] == 1 and not any(link["rel"] == "next" for link in narrow["links"])
    tiles_conf(count_mode="auto", count_threshold=1_000_000)
    assert _items(client, h, "customers", limit=100)["numberMatched"] == total
    tiles_conf(count_mode="none")
    assert "numberMatched" not in _items(client, h, "customers", limit=100)
    tiles_conf(count_mode="exact", count_threshold=0)
    assert _items(client, h, "customers", limit=100)["numberMatched"] == total


# --- CRS (Part 2) --------------------------------------------------------------------------------------------------

def test_output_crs_and_content_crs(client, login):
    h = login("admin")
    base = _items(client, h, "customers", limit=5, sortby="id")
    lonlat = {f["id"]: f["geometry"]["coordinates"] for f in base["features"]}
    r = client.get("/ogc/collections/customers/items?limit=5&sortby=id", headers=h)
    assert r.headers["Content-Crs"] == f"<{CRS84}>"
    for uri, check in (
        (EPSG4326, lambda c, p: c == pytest.approx([p[1], p[0]], abs=1e-7)),
        (EPSG3857, lambda c, p: 1.25e7 < c[0] < 1.27e7 and 3.2e6 < c[1] < 3.3e6),
        (GCJ02, lambda c, p: c == pytest.approx(list(wgs84_to_gcj02(*p)), abs=1e-6)),
        (BD09, lambda c, p: c == pytest.approx(list(wgs84_to_bd09(*p)), abs=1e-6)),
    ):
        r = client.get(f"/ogc/collections/customers/items?limit=5&sortby=id&crs={quote(uri)}", headers=h)
        assert r.status_code == 200 and r.headers["Content-Crs"] == f"<{uri}>"
        for f in r.get_json()["features"]:
            assert check(f["geometry"]["coordinates"], lonlat[f["id"]]), (uri, f)
    one = client.get(f"/ogc/collections/customers/items/{base['features'][0]['id']}?crs={quote(GCJ02)}", headers=h)
    assert one.headers["Content-Crs"] == f"<{GCJ02}>"
    assert one.get_json()["geometry"]["coordinates"] == pytest.approx(
        list(wgs84_to_gcj02(*lonlat[base["features"][0]["id"]])), abs=1e-6)


def test_bbox_in_every_crs_selects_the_same_features(client, login):
    import math

    h = login("admin")
    w, s, e, n = 113.00, 28.18, 113.05, 28.22
    expected = set(_ids(_items(client, h, "customers", bbox=f"{w},{s},{e},{n}", limit=10000)))
    assert expected

    def merc(lon: float, lat: float) -> tuple[float, float]:
        return math.radians(lon) * 6378137, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137

    (mx0, my0), (mx1, my1) = merc(w, s), merc(e, n)
    assert set(_ids(_items(client, h, "customers", bbox=f"{s},{w},{n},{e}", bbox_crs=EPSG4326, limit=10000))) \
        == expected
    assert set(_ids(_items(client, h, "customers", bbox=f"{mx0},{my0},{mx1},{my1}", bbox_crs=EPSG3857,
                           limit=10000))) == expected
    # a GCJ-02 box around the shifted positions finds the same customers (give or take the box edge)
    (gw, gs), (ge, gn) = wgs84_to_gcj02(w, s), wgs84_to_gcj02(e, n)
    gcj = set(_ids(_items(client, h, "customers", bbox=f"{gw},{gs},{ge},{gn}", bbox_crs=GCJ02, limit=10000)))
    assert len(gcj ^ expected) <= 0.02 * len(expected)


# --- datetime, property filters, sortby, properties ----------------------------------------------------------------

def test_datetime_property_filters_sortby_and_properties(client, login, db_session, owner_engine):
    from geo_core.db import SYSTEM, set_context

    set_context(db_session, SYSTEM)
    db_session.execute(text("UPDATE customers SET updated_at = '2020-06-01T08:00:00Z' WHERE id IN (1, 2, 3)"))
    db_session.flush()
    h = login("admin")
    assert sorted(_ids(_items(client, h, "customers", datetime="2020-05-01T00:00:00Z/2020-07-01T00:00:00Z"))) \
        == [1, 2, 3]
    assert sorted(_ids(_items(client, h, "customers", datetime="../2020-06-01"))) == [1, 2, 3]
    assert sorted(_ids(_items(client, h, "customers", datetime="2020-06-01"))) == [1, 2, 3]
    assert sorted(_ids(_items(client, h, "customers", datetime="2020-06-01T08:00:00Z"))) == [1, 2, 3]
    assert _items(client, h, "customers", datetime="2020-06-02/..", limit=1)["numberMatched"] > 1000

    formal = _items(client, h, "customers", category="formal", kind="person", limit=10000)
    assert formal["numberMatched"] == _count(owner_engine, "SELECT count(*) FROM customers WHERE "
                                                           "category = 'formal' AND kind = 'person'")
    pairs = {(f["properties"]["category"], f["properties"]["kind"]) for f in formal["features"]}
    assert pairs == {("formal", "person")}

    desc = _ids(_items(client, h, "customers", sortby="-id", limit=50))
    assert desc == sorted(desc, reverse=True)
    with owner_engine.connect() as conn:
        expected = list(conn.scalars(text("SELECT id FROM customers WHERE geom IS NOT NULL ORDER BY name, id DESC "
                                          "LIMIT 50")))
    assert _ids(_items(client, h, "customers", sortby="+name,-id", limit=50)) == expected

    chosen = _items(client, h, "customers", properties="name,category", limit=3)["features"]
    assert all(set(f["properties"]) == {"name", "category"} for f in chosen)


# --- CQL2 (Part 3) -------------------------------------------------------------------------------------------------

CQL_CASES = [
    ("category = 'formal'", "category = 'formal'"),
    ("category <> 'formal' AND kind = 'company'", "category <> 'formal' AND kind = 'company'"),
    ("NOT (category = 'formal') OR id < 100", "NOT (category = 'formal') OR id < 100"),
    ("id BETWEEN 10 AND 20", "id BETWEEN 10 AND 20"),
    ("id NOT BETWEEN 10 AND 3000", "id NOT BETWEEN 10 AND 3000"),
    ("id IN (1, 5, 9, 999999)", "id IN (1, 5, 9, 999999)"),
    ("profile_type IS NULL", "profile_type IS NULL"),
    ("industry IS NOT NULL AND category = 'potential'", "industry IS NOT NULL AND category = 'potential'"),
    ("name LIKE '张%'", "name LIKE '张%'"),
    ("name NOT LIKE '%公司%'", "name NOT LIKE '%公司%'"),
    ("updated_at > TIMESTAMP('2000-01-01T00:00:00Z')", "updated_at > '2000-01-01T00:00:00Z'"),
    ("S_INTERSECTS(geometry, POLYGON((113 28.15, 113.06 28.15, 113.06 28.22, 113 28.22, 113 28.15)))",
     "ST_Intersects(geom, ST_GeomFromText('POLYGON((113 28.15, 113.06 28.15, 113.06 28.22, 113 28.22, "
     "113 28.15))', 4326))"),
    ("S_WITHIN(geometry, BBOX(112.6, 27.9, 112.97, 28.3)) AND category = 'formal'",
     "ST_Within(geom, ST_MakeEnvelope(112.6, 27.9, 112.97, 28.3, 4326)) AND category = 'formal'"),
    ('"kind" = \'person\' and org_id in (5, 7)', "kind = 'person' AND org_id IN (5, 7)"),
]


@pytest.mark.parametrize(("cql", "where"), CQL_CASES)
def test_cql2_text_matches_the_equivalent_sql(client, login, owner_engine, cql, where):
    expected = _count(owner_engine, f"SELECT count(*) FROM customers WHERE geom IS NOT NULL AND ({where})")
    body = _items(client, login("admin"), "customers", filter=cql, limit=1)
    assert body["numberMatched"] == expected


def test_cql2_json_and_filter_crs(client, login, owner_engine):
    h = login("admin")
    doc = {"op": "and", "args": [
        {"op": "=", "args": [{"property": "category"}, "formal"]},
        {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [113.0, 28.15, 113.06, 28.22]}]},
        {"op": "in", "args": [{"property": "kind"}, ["person", "company"]]},
    ]}
    expected = _count(owner_engine, "SELECT count(*) FROM customers WHERE category = 'formal' AND "
                                    "ST_Intersects(geom, ST_MakeEnvelope(113.0, 28.15, 113.06, 28.22, 4326))")
    body = _items(client, h, "customers", filter=json.dumps(doc), filter_lang="cql2-json", limit=1)
    assert body["numberMatched"] == expected > 0
    # the same box given in EPSG:4326 axis order (lat, lon) through filter-crs
    flipped = _items(client, h, "customers", filter="category = 'formal' AND S_INTERSECTS(geometry, "
                     "POLYGON((28.15 113, 28.15 113.06, 28.22 113.06, 28.22 113, 28.15 113)))",
                     filter_crs=EPSG4326, limit=1)
    assert flipped["numberMatched"] == expected


@pytest.mark.parametrize(("cql", "position"), [
    ("category = 'formal' AND", 23),
    ("nosuch = 1", 0),
    ("category = 5", 11),
    ("name LIKE 5", 5),
    ("category = 'formal' OR (id > 3", 30),
    ("S_INTERSECTS(geometry, POLYGON((1 2, 3 4)))", 23),
    ("id = 1; DROP TABLE customers", 6),
    ("geometry = 1", 0),
    ("S_INTERSECTS(name, POINT(1 2))", 13),
    ("category = 'formal", 11),
    ("phone_enc IS NULL", 0),
])
def test_bad_filters_are_400_pointing_at_the_error(client, login, cql, position):
    r = client.get(f"/ogc/collections/customers/items?filter={quote(cql)}", headers=login("admin"))
    body = r.get_json()
    assert r.status_code == 400 and body["code"] == "INVALID_FILTER", body
    assert body["detail"]["position"] == position, body
    assert body["errors"]["filter"]


def test_filters_bind_values_and_never_run_them(client, login, owner_engine):
    h = login("admin")
    body = _items(client, h, "customers", filter="name = 'x''; DELETE FROM customers; --'")
    assert body["numberMatched"] == 0
    assert _count(owner_engine, "SELECT count(*) FROM customers") > 0
    r = client.get("/ogc/collections/customers/items?filter=" + quote('"name) OR (1=1" = \'x\''), headers=h)
    assert r.status_code == 400


# --- queryables, single items, PII ---------------------------------------------------------------------------------

def test_queryables_are_json_schema_without_secrets(client, login):
    r = client.get("/ogc/collections/customers/queryables", headers=login("admin"))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/schema+json")
    schema = r.get_json()
    assert schema["$schema"].startswith("https://json-schema.org/") and schema["type"] == "object"
    props = schema["properties"]
    assert props["geometry"] == {"format": "geometry-point", "x-ogc-role": "primary-geometry"}
    assert props["category"]["enum"] == ["formal", "potential"]
    assert props["updated_at"]["format"] == "date-time"
    assert not set(props) & TILE_PROPS_FORBIDDEN
    grids = client.get("/ogc/collections/grids/queryables", headers=login("admin")).get_json()
    assert grids["properties"]["geometry"]["format"] == "geometry-multipolygon"


def test_single_item_and_masks_only(client, login, owner_engine):
    h = login("admin")
    with owner_engine.connect() as conn:
        cid, phone_mask = conn.execute(text("SELECT id, phone_mask FROM customers WHERE phone_mask IS NOT NULL "
                                            "ORDER BY id LIMIT 1")).one()
    r = client.get(f"/ogc/collections/customers/items/{cid}", headers=h)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/geo+json")
    item = r.get_json()
    assert item["id"] == cid and item["properties"]["phone_mask"] == phone_mask and "*" in phone_mask
    assert not set(item["properties"]) & TILE_PROPS_FORBIDDEN
    assert {link["rel"] for link in item["links"]} >= {"self", "collection"}
    for bad in ("abc", "0", "-1", "99999999999999", "1.5", "2147483648"):
        assert client.get(f"/ogc/collections/customers/items/{bad}", headers=h).status_code == 404, bad
    assert client.get(f"/ogc/collections/customers/items/{cid}?limit=1", headers=h).status_code == 400


@pytest.mark.parametrize("crs", [CRS84, EPSG4326, EPSG3857])
@pytest.mark.parametrize("props", [None, "name,kind", "grid_id"])
def test_single_item_equals_its_entry_in_the_listing(client, login, crs, props):  # noqa: ANN001
    """The by-id statement is rendered once per (layer, fields, output) and reused: each variant must still give
    the feature exactly as the listing does (properties, geometry, axis order)."""
    h = login("admin")
    params = {"crs": crs, **({"properties": props} if props else {})}
    listed = _items(client, h, "customers", limit=3, **params)["features"]
    assert listed
    for feature in listed:
        r = client.get(f"/ogc/collections/customers/items/{feature['id']}", headers=h, query_string=params)
        assert r.status_code == 200 and r.headers["Content-Crs"] == f"<{crs}>"
        one = r.get_json()
        assert one["properties"] == feature["properties"] and one["geometry"] == feature["geometry"]
        if props:
            assert set(one["properties"]) <= set(props.split(","))


# --- data scope from the attacker's side ---------------------------------------------------------------------------

def test_sub_branch_leader_gets_nothing_of_yuelu_through_items(client, login, owner_engine):
    h = login(ATTACKER)
    visible = visible_customer_ids(owner_engine, ATTACKER)
    yuelu = customers_of_branch(owner_engine, "n1.n22")
    assert visible and yuelu and not visible & set(yuelu)
    everything = _items(client, h, "customers", limit=10000)
    assert everything["numberMatched"] == len(visible) and set(_ids(everything)) == visible
    w, s, e, n = YUELU
    assert _items(client, h, "customers", bbox=f"{w},{s},{e},{n}")["numberMatched"] == 0
    ids = ",".join(str(i) for i in list(yuelu)[:50])
    assert _items(client, h, "customers", filter=f"id IN ({ids})")["numberMatched"] == 0
    assert _items(client, h, "customers", filter="org_id IN (22, 23, 24, 25, 26)")["numberMatched"] == 0
    assert _items(client, h, "customers", org_id=25)["numberMatched"] == 0
    assert _items(client, h, "customers", filter=f"S_INTERSECTS(geometry, BBOX({w}, {s}, {e}, {n}))",
                  sortby="-id")["numberMatched"] == 0
    for cid in list(yuelu)[:20]:
        r = client.get(f"/ogc/collections/customers/items/{cid}", headers=h)
        assert r.status_code == 404 and r.get_json()["code"] == "FEATURE_NOT_FOUND"


def test_sub_branch_leader_gets_no_yuelu_grid_and_scoped_extents(client, login, owner_engine):
    h = login(ATTACKER)
    with owner_engine.connect() as conn:
        yuelu_grids = list(conn.scalars(text("SELECT g.id FROM grids g JOIN orgs o ON o.id = g.org_id "
                                             "WHERE o.path <@ 'n1.n22'")))
    assert yuelu_grids
    mine = set(_ids(_items(client, h, "grids", limit=10000)))
    assert mine and not mine & set(yuelu_grids)
    for gid in yuelu_grids[:10]:
        assert client.get(f"/ogc/collections/grids/items/{gid}", headers=h).status_code == 404
    # extents cover only what he can see: 芙蓉 lies east of the Xiang river, 岳麓 west of it
    (box,) = client.get("/ogc/collections/customers", headers=h).get_json()["extent"]["spatial"]["bbox"]
    assert box[0] > YUELU[2]
    (admin_box,) = client.get("/ogc/collections/customers", headers=login("admin")).get_json()[
        "extent"]["spatial"]["bbox"]
    assert admin_box[0] < YUELU[2]
