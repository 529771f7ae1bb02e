"""End-to-end test of the 重复客户 page (scan with progress, compare, merge, undo) in a real headless Chromium.

The test makes a duplicate pair through the API (two customers of bl_430102 with the same name 20 m apart and
different phones) and runs detection for one of them, as tests/api/test_customer_dedup.py does. A real server of
the app (werkzeug, in a thread) and a real RQ worker (for the page's "scan my branch" job) run against the session's
test database; tests/e2e/customer_duplicates.mjs drives the browser; the test then checks the database: the merge
took B's phone group, was undone, both customers are active again, and the pair (reopened by the undo) was then
dismissed with the page's reason.

GM_E2E_KEEP_SCREENSHOTS=1 copies the compare view to docs/screenshots/customers-duplicates.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from sqlalchemy import text

from tests.conftest import DEMO_PASSWORD
from tests.e2e.test_customers_pages import worker  # noqa: F401  (fixture)
from tests.e2e.test_grid_editor import CHROMIUM, ROOT, live_server, node  # noqa: F401  (fixtures)

SCRIPT = ROOT / "tests" / "e2e" / "customer_duplicates.mjs"
RUN_TIMEOUT_S = 120
LON, LAT = 112.9912, 28.1913  # 芙蓉区
M20 = 0.00018  # about 20 m of latitude


def _call(base: str, path: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as res:  # noqa: S310 - the loopback test server
        return json.loads(res.read())


def _pair(base: str, name: str) -> tuple[int, int]:
    """Two customers of bl_430102 with the same name 20 m apart, through the live server (committed)."""
    token = _call(base, "/api/v1/auth/login", {"username": "bl_430102", "password": DEMO_PASSWORD})["access_token"]
    ids = [_call(base, "/api/v1/customers", {"kind": "person", "name": name, "lon": LON + 0.01, "lat": LAT + dlat,
                                             "phone": phone}, token)["id"]
           for dlat, phone in ((0.0, "13700001111"), (M20, "13700002222"))]
    assert _call(base, "/api/v1/customer-duplicates/detect", {"customer_id": ids[0]}, token)["count"] >= 1
    return ids[0], ids[1]


def test_duplicates_page_end_to_end(node: str, live_server: str, worker, owner_engine,  # noqa: F811
                                    tmp_path: Path) -> None:
    name = f"欧阳E2E{uuid.uuid4().hex[:6].upper()}"
    a, b = _pair(live_server, name)
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--name", name,
               "--chromium", str(CHROMIUM)]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env={**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD},
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    elapsed = time.monotonic() - started
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}"
    if run.returncode != 0 and worker.poll() is not None:
        output += f"\n--- worker\n{worker.stdout.read().decode(errors='replace')}"
    assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["name"] == name, output

    with owner_engine.connect() as conn:
        merge = conn.execute(text(
            "SELECT m.survivor_id, m.merged_id, m.status, m.choices->>'phone', m.choices->>'name', u.username "
            "FROM customer_merges m JOIN users u ON u.id = m.merged_by WHERE m.id = :i"),
            {"i": result["mergeId"]}).one()
        assert tuple(merge) == (min(a, b), max(a, b), "undone", "merged", "survivor", "bl_430102")
        statuses = conn.execute(text(
            "SELECT status::text, merged_into FROM customers WHERE id IN (:a, :b) ORDER BY id"), {"a": a, "b": b}).all()
        assert [tuple(s) for s in statuses] == [("active", None), ("active", None)]
        cand = conn.execute(text(
            "SELECT c.status::text, c.customer_a_id, c.customer_b_id, c.note, u.username FROM duplicate_candidates c "
            "JOIN users u ON u.id = c.decided_by WHERE c.id = :i"), {"i": result["pairId"]}).one()
        assert tuple(cand) == ("dismissed", min(a, b), max(a, b), "E2E 同名不同人", "bl_430102")


def test_duplicates_page_shell_and_menu(client, login) -> None:  # noqa: ANN001
    html = client.get("/app/customers/duplicates").get_data(as_text=True)
    assert "js/customer-duplicates.js" in html and "重复客户" in html

    def routes(username: str) -> set[str]:
        tree = client.get("/api/v1/me/menus", headers=login(username)).get_json()
        tree = tree if isinstance(tree, list) else tree["items"]
        group = next(n for n in tree if n["code"] == "customers")
        return {c["route"] for c in group["children"]}

    assert "/app/customers/duplicates" in routes("bl_430102")  # customer:merge
    assert "/app/customers/duplicates" not in routes("am_430102_1_1")
