"""OGC API – Tiles paths serve the same tiles as /tiles, in {tileMatrix}/{tileRow}/{tileCol} order."""

from __future__ import annotations

import math


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_tilesets_metadata_and_tile_order(client, login):
    h = login("admin")
    r = client.get("/ogc/collections/grids/tiles", headers=h)
    assert r.status_code == 200
    tileset_link = r.get_json()["tilesets"][0]["links"][0]["href"]
    assert tileset_link.endswith("/ogc/collections/grids/tiles/WebMercatorQuad")
    meta = client.get("/ogc/collections/grids/tiles/WebMercatorQuad", headers=h).get_json()
    template = next(li for li in meta["links"] if li["rel"] == "item")
    assert template["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}") and template["templated"]
    x, y = _tile(112.98, 28.19, 12)
    xyz = client.get(f"/tiles/grids/12/{x}/{y}.mvt", headers=h)
    ogc = client.get(f"/ogc/collections/grids/tiles/WebMercatorQuad/12/{y}/{x}", headers=h)
    assert xyz.status_code == ogc.status_code == 200
    assert ogc.data == xyz.data and ogc.mimetype == xyz.mimetype
    assert client.get(f"/ogc/collections/grids/tiles/WorldCRS84Quad/12/{y}/{x}", headers=h).status_code == 404
    conf = client.get("/ogc/conformance").get_json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core" in conf
    assert client.get("/ogc/tileMatrixSets").get_json()["tileMatrixSets"][0]["id"] == "WebMercatorQuad"


def test_ogc_tiles_need_auth_and_respect_scope(client, login):
    x, y = _tile(112.93, 28.21, 12)  # 岳麓区 (west bank)
    assert client.get(f"/ogc/collections/grids/tiles/WebMercatorQuad/12/{y}/{x}").status_code == 401
    admin = client.get(f"/ogc/collections/customers/tiles/WebMercatorQuad/12/{y}/{x}", headers=login("admin"))
    spy = client.get(f"/ogc/collections/customers/tiles/WebMercatorQuad/12/{y}/{x}", headers=login("bl_430102"))
    assert admin.status_code == 200 and (spy.status_code == 204 or len(spy.data) < len(admin.data))


def test_a_committed_grid_write_retires_cached_tiles(client, login):
    h = login("admin")
    x, y = _tile(112.98, 28.19, 12)
    client.get(f"/tiles/grids/12/{x}/{y}.mvt", headers=h)
    assert client.get(f"/tiles/grids/12/{x}/{y}.mvt", headers=h).headers["X-Tile-Cache"] == "hit"
    gid = client.get("/api/v1/grids?q=G430102001001", headers=h).get_json()["items"][0]["id"]
    assert client.patch(f"/api/v1/grids/{gid}", json={"name": "识字里社区（改）"}, headers=h).status_code == 200
    assert client.get(f"/tiles/grids/12/{x}/{y}.mvt", headers=h).headers["X-Tile-Cache"] == "miss"
    # a refused write changes nothing and retires nothing
    client.get(f"/tiles/grids/12/{x}/{y}.mvt", headers=h)
    assert client.patch(f"/api/v1/grids/{gid}", json={"code": "bad code!"}, headers=h).status_code == 422
    assert client.get(f"/tiles/grids/12/{x}/{y}.mvt", headers=h).headers["X-Tile-Cache"] == "hit"
