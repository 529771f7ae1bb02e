"""End-to-end test of the grid editor (网格管理) in a real headless Chromium.

A real server of the app (werkzeug, in a thread) runs on a free loopback port against the session's
migrated test database, because the browser needs committed data (the per-test rolled-back `client`
cannot serve it). tests/e2e/grid_editor.mjs drives the browser; the grid it creates is deleted here.

Environment: GM_E2E_ARTEFACTS=<dir> keeps the screenshots there (default: pytest's tmp dir);
GM_E2E_KEEP_SCREENSHOTS=1 also copies them to docs/screenshots/grid-editor-*.png; CHROMIUM_PATH
overrides /usr/bin/chromium. With CI=true a missing Chromium is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEMO_PASSWORD
from tests.live import serve_app

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "e2e" / "grid_editor.mjs"
PLAYWRIGHT = ROOT / "web" / "node_modules" / "playwright-core"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, once the browser tooling is known to be there."""
    node_bin = shutil.which("node")
    if node_bin is None:
        pytest.skip("node is not installed (needed to drive the browser): install Node.js")
    if not PLAYWRIGHT.is_dir():
        pytest.skip("web/node_modules/playwright-core is missing: run `npm ci --prefix web`")
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's `chromium` (scripts/bootstrap.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return node_bin


@pytest.fixture(scope="module")
def live_server(node: str, migrated_db) -> Iterator[str]:  # noqa: ANN001
    """The app on a free 127.0.0.1 port, served from a thread."""
    with serve_app(migrated_db, "e2e-server") as base:
        yield base


def _call(base: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _delete_grid(base: str, code: str) -> list[int]:
    """Delete the grid(s) with this code through the API as admin; returns the deleted ids."""
    status, body = _call(base, "POST", "/api/v1/auth/login", body={"username": "admin", "password": DEMO_PASSWORD})
    assert status == 200, body
    token = body["access_token"]
    status, page = _call(base, "GET", f"/api/v1/grids?{urllib.parse.urlencode({'q': code})}", token)
    assert status == 200, page
    deleted = []
    for item in page["items"]:
        if item["code"] == code:
            status, body = _call(base, "DELETE", f"/api/v1/grids/{item['id']}", token)
            assert status == 204, body
            deleted.append(item["id"])
    return deleted


def test_grid_editor_end_to_end(node: str, live_server: str, tmp_path: Path) -> None:
    code = f"E2E-{uuid.uuid4().hex[:10].upper()}"
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--code", code,
               "--chromium", str(CHROMIUM)]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    env = {**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD}
    started = time.monotonic()
    try:
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             check=False)
    finally:
        deleted = _delete_grid(live_server, code)
    elapsed = time.monotonic() - started
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}"
    assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["code"] == code, output
    assert deleted == [result["grid_id"]], f"expected to clean up grid {result['grid_id']}, deleted {deleted}"
    assert len(list(artefacts.glob("grid-editor-*.png"))) >= 5, output


def test_grid_editor_page_shell(client) -> None:  # noqa: ANN001
    """The page and its vendor files are served; online base maps are configured but no key leaks by default."""
    html = client.get("/app/grids").get_data(as_text=True)
    assert "网格管理" in html and "js/grid-editor.js" in html
    if (ROOT / "web" / "node_modules" / "leaflet").is_dir():  # npm packages installed
        for path in ("/vendor/leaflet-geoman/leaflet-geoman.min.js", "/vendor/leaflet-geoman/leaflet-geoman.css",
                     "/vendor/proj4/proj4.js", "/vendor/proj4leaflet/proj4leaflet.js"):
            assert client.get(path).status_code == 200, path
    assert client.get("/vendor/proj4/../package.json").status_code == 404
    assert client.get("/vendor/playwright-core/package.json").status_code == 404
    config = json.loads(html.split('id="ge-basemap-config">', 1)[1].split("</script>", 1)[0])
    assert "autonavi.com" in config["gaode"]["url"] and "bdimg.com" in config["baidu"]["url"]
    assert config["tianditu"]["key"] == ""


def test_basemap_config_comes_from_app_config(app, client) -> None:  # noqa: ANN001
    saved = {k: app.config[k] for k in ("MAP_GAODE_URL", "MAP_TIANDITU_KEY")}
    app.config.update(MAP_GAODE_URL="https://tiles.intranet.example/gaode/{z}/{x}/{y}.png", MAP_TIANDITU_KEY="abc123")
    try:
        html = client.get("/app/grids").get_data(as_text=True)
    finally:
        app.config.update(saved)
    config = json.loads(html.split('id="ge-basemap-config">', 1)[1].split("</script>", 1)[0])
    assert config["gaode"]["url"] == "https://tiles.intranet.example/gaode/{z}/{x}/{y}.png"
    assert config["tianditu"]["key"] == "abc123"
