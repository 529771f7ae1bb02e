"""Real GIS clients against a live server: GDAL/OGR's OAPIF driver (ogrinfo, ogr2ogr paging through a whole
collection) and OWSLib's OGC API - Features client.

The app runs in a thread on a free 127.0.0.1 port against the session's migrated test database (committed seed
data; the per-test rolled-back `client` cannot serve another process). GDAL comes from Debian's gdal-bin
(scripts/bootstrap.sh installs it when GM_WITH_GDAL=1, which scripts/test.sh sets); without it these tests skip,
unless CI=true, where a missing ogrinfo is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEMO_PASSWORD
from tests.live import serve_app
from tests.tiles import clear_tile_cache, visible_customer_ids

TIMEOUT_S = 180


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is missing: install Debian's gdal-bin (GM_WITH_GDAL=1 scripts/bootstrap.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def live_server(migrated_db) -> Iterator[str]:  # noqa: ANN001
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    with serve_app(migrated_db, "gis-clients-server") as base:
        yield base


def _get_json(url: str, token: str | None = None, body: dict | None = None) -> dict:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def tokens(live_server: str) -> dict[str, str]:
    return {username: _get_json(f"{live_server}/api/v1/auth/login", body={"username": username,
                                                                          "password": DEMO_PASSWORD})["access_token"]
            for username in ("admin", "sbl_430102_1")}


def _number_matched(base: str, token: str, collection: str) -> int:
    return _get_json(f"{base}/ogc/collections/{collection}/items?limit=1", token)["numberMatched"]


def _gdal(tool: str, *args: str, token: str) -> subprocess.CompletedProcess:
    command = [_require(tool), *args, "--config", "GDAL_HTTP_HEADERS", f"Authorization: Bearer {token}",
               "--config", "CPL_CURL_VERBOSE", "NO", "--config", "GDAL_HTTP_TIMEOUT", "60"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert run.returncode == 0, f"{' '.join(command[:-8])}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    return run


def test_ogrinfo_lists_every_collection(live_server, tokens):
    run = _gdal("ogrinfo", "-ro", "-q", f"OAPIF:{live_server}/ogc", token=tokens["admin"])
    for layer in ("grids", "customers", "outlets", "pois"):
        assert f": {layer}" in run.stdout, run.stdout
    summary = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{live_server}/ogc", "customers", token=tokens["admin"])
    expected = _number_matched(live_server, tokens["admin"], "customers")
    assert f"Feature Count: {expected}" in summary.stdout, summary.stdout


@pytest.mark.parametrize(("username", "collection"), [("admin", "customers"), ("admin", "grids"),
                                                      ("sbl_430102_1", "customers")])
def test_ogr2ogr_downloads_a_whole_collection_through_paging(live_server, tokens, tmp_path: Path, owner_engine,
                                                              username, collection):
    out = tmp_path / f"{collection}.geojson"
    _gdal("ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{live_server}/ogc", collection, "-oo", "PAGE_SIZE=200",
          "-preserve_fid", token=tokens[username])
    features = json.loads(out.read_text())["features"]
    expected = _number_matched(live_server, tokens[username], collection)
    assert len(features) == expected > 200  # several pages
    ids = [f.get("id", f["properties"].get("id")) for f in features]
    assert len(set(ids)) == len(ids)
    if collection == "customers":
        assert all(not {"phone_enc", "id_number_enc", "address"} & set(f["properties"]) for f in features)
        if username != "admin":
            assert set(ids) == visible_customer_ids(owner_engine, username)


def test_owslib_reads_collections_and_items(live_server, tokens):
    from owslib.ogcapi.features import Features

    api = Features(f"{live_server}/ogc", headers={"Authorization": f"Bearer {tokens['sbl_430102_1']}"})
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"grids", "customers", "outlets", "pois"} <= ids
    assert any(c.endswith("ogcapi-features-1/1.0/conf/core") for c in api.conformance()["conformsTo"])
    queryables = api.collection_queryables("customers")
    assert "category" in queryables["properties"]
    page = api.collection_items("customers", limit=5, filter="category = 'formal'")
    assert page["numberReturned"] == 5 and page["type"] == "FeatureCollection"
    assert all(f["properties"]["category"] == "formal" for f in page["features"])
    bbox = api.collection_items("customers", bbox=[112.6, 27.95, 112.97, 28.3], limit=10)
    assert bbox["numberMatched"] == 0  # 岳麓 is outside a 芙蓉 sub-branch leader's data scope
