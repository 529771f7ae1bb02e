"""End-to-end test of the 客户管理 pages (list, 360 view with 纠偏, list import with progress, batches) in a real
headless Chromium.

A real server of the app (werkzeug, in a thread) runs on a free loopback port against the session's migrated test
database, and a real RQ worker (`gridmarket worker`, a subprocess on the test Redis) runs the import job, so the
progress bar follows a real job. tests/e2e/customers.mjs drives the browser; this test then checks the database:
the corrected point is stored with provenance `corrected`, the batch holds the 2 valid rows and skipped the bad one.

Environment: GM_E2E_ARTEFACTS=<dir> keeps the screenshots there (default: pytest's tmp dir);
GM_E2E_KEEP_SCREENSHOTS=1 also copies them to docs/screenshots/customers-*.png; CHROMIUM_PATH overrides
/usr/bin/chromium. With CI=true a missing Chromium is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from geo_core.crs import bd09_to_wgs84
from tests.conftest import DEMO_PASSWORD
from tests.e2e.test_grid_editor import CHROMIUM, ROOT, live_server, node  # noqa: F401  (fixtures)

SCRIPT = ROOT / "tests" / "e2e" / "customers.mjs"
RUN_TIMEOUT_S = 120


@pytest.fixture()
def worker(live_server: str, redis_conn) -> Iterator[subprocess.Popen]:  # noqa: F811, ANN001
    """A real RQ worker on the test database and Redis (the env conftest set), stopped after the test."""
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gridmarket"), "worker"], cwd=ROOT, env=os.environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the worker and its work horse
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def test_customer_pages_end_to_end(node: str, live_server: str, worker, owner_engine, tmp_path: Path) -> None:  # noqa: F811
    tag = f"E2E-{uuid.uuid4().hex[:8].upper()}"
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--tag", tag,
               "--chromium", str(CHROMIUM)]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    env = {**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD}
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                         check=False)
    elapsed = time.monotonic() - started
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}"
    artefacts.mkdir(parents=True, exist_ok=True)
    (artefacts / "customers-e2e.log").write_text(output, encoding="utf-8")
    if run.returncode != 0 and worker.poll() is not None:
        output += f"\n--- worker\n{worker.stdout.read().decode(errors='replace')}"
    assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["tag"] == tag, output
    assert len(list(artefacts.glob("customers-*.png"))) >= 6, output

    with owner_engine.connect() as conn:
        source, updated_by, lon, lat = conn.execute(text(
            "SELECT c.location_source::text, u.username, ST_X(c.geom), ST_Y(c.geom) FROM customers c "
            "JOIN users u ON u.id = c.updated_by WHERE c.id = :i"), {"i": result["customer_id"]}).one()
        assert (source, updated_by) == ("corrected", "am_430102_1_1")
        # the last correction was made on the Baidu map: sent in BD-09, stored in WGS84
        expected = bd09_to_wgs84(*result["bd09"])
        assert abs(lon - float(expected[0])) < 1e-6 and abs(lat - float(expected[1])) < 1e-6, (lon, lat, expected)
        batch = conn.execute(text(
            "SELECT b.name, b.status::text, b.created_rows, b.skipped_rows, u.username, "
            "(SELECT count(*) FROM customer_list_entries e WHERE e.batch_id = b.id) "
            "FROM customer_import_batches b JOIN users u ON u.id = b.importer_user_id WHERE b.id = :i"),
            {"i": result["batch_id"]}).one()
        assert tuple(batch) == (tag, "done", 2, 1, "bl_430102", 2)
        reveal = conn.execute(text(
            "SELECT a.detail->>'reason' FROM audit_log a JOIN users u ON u.id = a.actor_user_id "
            "WHERE a.action = 'reveal' AND a.entity = 'customers' AND a.entity_id = :i AND u.username = 'bl_430102'"),
            {"i": str(result["revealed_id"])}).scalars().all()
        assert reveal == ["E2E 核实客户身份"]
        group = conn.execute(text("SELECT category::text, definition FROM customer_groups WHERE name = :n"),
                             {"n": tag}).one()
        assert group[0] == "list" and group[1]["batch_ids"] == [result["batch_id"]]


def test_customer_page_shells(client) -> None:  # noqa: ANN001
    """The four pages render their shells (data comes from the API) and use the vendored Leaflet, no CDN."""
    for path, needle in (("/app/customers", "js/customers.js"), ("/app/customers/42", "js/customer-360.js"),
                         ("/app/customers/import", "js/customer-import.js"),
                         ("/app/customers/imports", "js/customer-batches.js")):
        html = client.get(path).get_data(as_text=True)
        assert needle in html and "http://" not in html.replace("http://www.w3.org", "") and "https://" not in \
            html.split('id="cu-basemap-config"')[0], path
    assert 'data-customer-id="42"' in client.get("/app/customers/42").get_data(as_text=True)
    assert "/vendor/leaflet/leaflet.js" in client.get("/app/customers/42").get_data(as_text=True)
    assert client.get("/app/customers/not-a-number").status_code == 404


def test_customer_menus_follow_permissions(client, login) -> None:  # noqa: ANN001
    """客户管理 › 客户列表 / 名单导入 / 导入批次 for a branch leader; an account manager cannot import."""

    def routes(username: str) -> set[str]:
        tree = client.get("/api/v1/me/menus", headers=login(username)).get_json()
        tree = tree if isinstance(tree, list) else tree["items"]
        group = next(n for n in tree if n["code"] == "customers")
        return {c["route"] for c in group["children"]}

    assert {"/app/customers", "/app/customers/import", "/app/customers/imports"} <= routes("bl_430102")
    manager = routes("am_430102_1_1")
    assert "/app/customers" in manager and "/app/customers/imports" in manager
    assert "/app/customers/import" not in manager
