"""Geocoding API: one address -> candidates (offline gazetteer levels, online providers through a local stub),
runs (validation, scope), permissions; attacker-side checks from another branch."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from geo_core.crs import wgs84_to_gcj02
from geo_core.db import SYSTEM, set_context
from geo_core.geocoding import providers
from tests.adapters.geocode_stub import BAIDU, geocode_stub, stub_settings

G = "/api/v1/geocode"


def geocode(client, h, address: str, **extra):
    r = client.post(G + extra.pop("query", ""), json={"address": address, **extra}, headers=h)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def inside(db_session, grid_id: int, lon: float, lat: float) -> bool:
    set_context(db_session, SYSTEM)
    return db_session.scalar(text("SELECT ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) FROM grids "
                                  "WHERE id = :g"), {"x": lon, "y": lat, "g": grid_id})


def grid_id_by_division(db_session, code: str) -> int:
    set_context(db_session, SYSTEM)
    return db_session.scalar(text("SELECT id FROM grids WHERE division_code = :c"), {"c": code})


@pytest.fixture(autouse=True)
def _offline(app):
    """No online provider unless a test points them at the stub."""
    state = app.extensions["gridmarket"]
    original = state.settings
    state.settings = replace(original, geocoder_baidu_key="", geocoder_gaode_key="", geocoder_tianditu_key="")
    providers.reset_rate_limiters()
    yield state
    state.settings = original


def test_routes_need_login_and_permission(client, login):
    for method, path in (("post", G), ("get", G + "/providers"), ("get", G + "/runs"), ("post", G + "/runs"),
                         ("get", G + "/runs/1"), ("post", G + "/runs/1/resume"), ("get", G + "/runs/1/results")):
        assert getattr(client, method)(path, json={}).status_code == 401
    h = login("ga_430102_1")  # grid assistant: no geocode:run
    assert client.post(G, json={"address": "芙蓉区识字里社区"}, headers=h).status_code == 403
    assert client.post(G + "/runs", json={"missing": True}, headers=h).status_code == 403


def test_bad_input_is_422(client, login):
    h = login("bl_430102")
    for body in ({}, {"address": ""}, {"address": "x" * 301}, {"address": 5}, {"address": "芙蓉区", "online": "maybe"},
                 {"address": "芙蓉区", "providers": ["google"]}, {"address": "芙蓉区", "providers": []}):
        r = client.post(G, json=body, headers=h)
        assert r.status_code == 422, (body, r.get_json())
    assert client.post(G + "?crs=mars", json={"address": "芙蓉区识字里社区"}, headers=h).status_code == 422


def test_community_level_point_in_its_grid(client, login, db_session):
    h = login("bl_430102")
    body = geocode(client, h, "长沙市芙蓉区文艺路街道识字里社区5栋")
    best = body["best"]
    assert best["provider"] == "gazetteer" and best["level"] == "community"
    assert best["division"] == {"code": "430102001001", "name": "识字里社区", "level": "village"}
    grid = grid_id_by_division(db_session, "430102001001")
    assert best["grid"]["id"] == grid and inside(db_session, grid, best["lon"], best["lat"])
    assert body["parsed"]["building"] == "5" and body["parsed"]["township"]["name"] == "文艺路街道"
    assert body["providers"] == {"gazetteer": "ok", "baidu": "disabled", "gaode": "disabled", "tianditu": "disabled"}


def test_street_and_district_levels_never_pretend_precision(client, login, db_session):
    h = login("admin")
    street = geocode(client, h, "长沙市天心区坡子街街道太平街22号")["best"]
    assert street["level"] == "street" and street["confidence"] < 0.5
    assert street["division"]["name"] == "坡子街街道" and street["division"]["level"] == "township"
    township_grid = grid_id_by_division(db_session, street["division"]["code"])
    assert inside(db_session, township_grid, street["lon"], street["lat"])
    district = geocode(client, h, "宁乡市")["best"]
    assert district["level"] == "district" and district["confidence"] < 0.2 and district["lon"] is not None
    nothing = geocode(client, h, "随便写的一些字")
    assert nothing["best"]["level"] == "none" and nothing["best"]["lon"] is None and nothing["candidates"] == []


def test_poi_match_by_name_inside_the_district(client, login, db_session):
    set_context(db_session, SYSTEM)
    db_session.execute(text(
        "INSERT INTO pois (name, category, address, source, source_ref, geom, h3_r10) VALUES "
        "('华天大酒店', 'hotel', '长沙市芙蓉区五一大道300号', 'test', 'geo-1', "
        " ST_SetSRID(ST_MakePoint(112.9990, 28.1965), 4326), 0),"
        "('华天大酒店', 'hotel', '长沙市岳麓区某路1号', 'test', 'geo-2', "
        " ST_SetSRID(ST_MakePoint(112.90, 28.20), 4326), 0)"))
    h = login("bl_430102")
    best = geocode(client, h, "芙蓉区五一大道389号华天大酒店")["best"]
    assert best["level"] == "poi" and best["matched"] == "华天大酒店" and best["confidence"] >= 0.8
    assert (best["lon"], best["lat"]) == (112.999, 28.1965)  # the 芙蓉区 one, not the 岳麓区 namesake
    by_address = geocode(client, h, "长沙市芙蓉区五一大道300号")["best"]
    assert by_address["level"] == "poi" and by_address["detail"]["poi_id"]
    gcj = geocode(client, h, "芙蓉区华天大酒店", query="?crs=gcj02")
    expected = wgs84_to_gcj02(112.9990, 28.1965)
    assert gcj["crs"] == "gcj02" and abs(gcj["best"]["lon"] - expected[0]) < 1e-6


def test_known_addresses_are_scoped_to_their_org(client, login, db_session):
    set_context(db_session, SYSTEM)
    org = db_session.scalar(text("SELECT id FROM orgs WHERE code = 'BR430102'"))
    db_session.execute(text(
        "INSERT INTO known_addresses (address_key, address, geom, level, source, confidence, org_id) VALUES "
        "('V|430102001001|3|18||', '芙蓉区识字里社区3组18号', ST_SetSRID(ST_MakePoint(112.9901, 28.1880), 4326), "
        " 'exact_address', 'corrected', 0.95, :o)"), {"o": org})
    mine = geocode(client, login("bl_430102"), "长沙市芙蓉区识字里社区三组18号")["best"]
    assert mine["level"] == "exact_address" and mine["confidence"] == 0.95
    assert (mine["lon"], mine["lat"]) == (112.9901, 28.188) and mine["detail"]["source"] == "corrected"
    # another branch cannot use (or learn about) 芙蓉's known address: it only gets the community
    theirs = geocode(client, login("bl_430104"), "长沙市芙蓉区识字里社区三组18号")["best"]
    assert theirs["level"] == "community" and theirs["grid"] is None  # 芙蓉's grid is not shown to 岳麓


def test_online_provider_through_the_stub(app, client, login, _offline):
    with geocode_stub() as stub:
        _offline.settings = stub_settings(_offline.settings, stub)
        h = login("bl_430102")
        body = geocode(client, h, "芙蓉区五一大道1号")
        assert body["best"]["provider"] == "baidu" and body["best"]["level"] == "exact_address"
        assert body["providers"]["baidu"] == "ok" and body["providers"]["gaode"] == "skipped"
        # the city (from admin_divisions) is prefixed when the address omits it, and sent as `city`
        assert stub.last(BAIDU)["address"] == "长沙市芙蓉区五一大道1号" and stub.last(BAIDU)["city"] == "长沙市"
        assert [c["provider"] for c in body["candidates"]] == ["baidu", "gazetteer"]
        offline = geocode(client, h, "芙蓉区五一大道1号", online=False)
        assert offline["best"]["provider"] == "gazetteer" and stub.count(BAIDU) == 1
        chain = client.get(G + "/providers", headers=h).get_json()
        assert [p["name"] for p in chain["chain"]] == ["gazetteer", "baidu", "gaode", "tianditu"]
        assert all(p["enabled"] for p in chain["chain"]) and "test-" not in str(chain)


def test_runs_validation_and_scope(client, login, db_session):
    h = login("bl_430102")
    for body in ({}, {"missing": False}, {"missing": True, "batch_id": 1}, {"customer_ids": []},
                 {"customer_ids": [0]}, {"customer_ids": ["x"]}, {"missing": True, "min_level": "planet"},
                 {"batch_id": 2**31}):
        r = client.post(G + "/runs", json=body, headers=h)
        assert r.status_code == 422, (body, r.get_json())
    set_context(db_session, SYSTEM)
    branch_customer = text("SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id WHERE o.path ~ "
                           "(SELECT '*.n' || id || '.*' FROM orgs WHERE code = :b)::lquery LIMIT 1")
    theirs = db_session.scalar(branch_customer, {"b": "BR430104"})
    mine = db_session.scalar(branch_customer, {"b": "BR430102"})
    r = client.post(G + "/runs", json={"customer_ids": [mine, theirs]}, headers=h)
    assert r.status_code == 422 and str(theirs) in r.get_json()["errors"]["customer_ids"][0]
    assert client.post(G + "/runs", json={"batch_id": 999999}, headers=h).status_code == 404
    r = client.post(G + "/runs", json={"customer_ids": [mine]}, headers=h)
    assert r.status_code == 202, r.get_json()
    run = r.get_json()
    assert run["status"] == "queued" and run["target"] == "ids" and run["job"]["status"] == "queued"
    assert client.get(f"{G}/runs/{run['id']}", headers=h).get_json()["params"]["customer_ids"] == [mine]
    assert client.get(f"{G}/runs/{run['id']}", headers=login("bl_430104")).status_code == 404
    assert client.post(f"{G}/runs/{run['id']}/resume", headers=login("bl_430104")).status_code == 404
    assert client.post(f"{G}/runs/{run['id']}/resume", headers=h).status_code == 409  # still queued
    assert client.get(f"{G}/runs/{2**40}", headers=h).status_code == 404
    listed = client.get(G + "/runs", headers=h).get_json()
    assert run["id"] in [x["id"] for x in listed["items"]]
    assert run["id"] not in [x["id"] for x in client.get(G + "/runs", headers=login("bl_430104")).get_json()["items"]]
    assert client.get(G + "/runs?status=bogus", headers=h).status_code == 422
    for query in ("level=planet", "applied=maybe", "max_confidence=2", "page=0"):
        assert client.get(f"{G}/runs/{run['id']}/results?{query}", headers=h).status_code == 422
    assert client.get(f"{G}/runs/{run['id']}/results", headers=h).get_json()["total"] == 0  # not run yet


def test_account_manager_geocodes_his_own_customers(client, login):
    h = login("am_430102_1_1")  # scope self
    assert geocode(client, h, "芙蓉区识字里社区")["best"]["level"] == "community"
    r = client.post(G + "/runs", json={"missing": True}, headers=h)
    assert r.status_code == 202, r.get_json()
    run = r.get_json()
    assert run["target"] == "missing" and client.get(f"{G}/runs/{run['id']}", headers=h).status_code == 200
    assert client.get(f"{G}/runs/{run['id']}", headers=login("am_430104_1_1")).status_code == 404
