"""End-to-end test of the 建档与覆盖 page (coverage indicators, drill-down, profile statistics, collection tasks) in a
real headless Chromium against a real server of the app on the session's migrated test database.

tests/e2e/customer_coverage.mjs drives the browser (bl_430102: numbers equal the API's, drill into a sub-branch,
grid grouping, create collection tasks; bl_430104: no 芙蓉 row); this test then checks the tasks in the database.
GM_E2E_KEEP_SCREENSHOTS=1 copies the page's screenshot to docs/screenshots/customers-coverage.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from sqlalchemy import text

from tests.conftest import DEMO_PASSWORD
from tests.e2e.test_grid_editor import CHROMIUM, ROOT, live_server, node  # noqa: F401  (fixtures)

SCRIPT = ROOT / "tests" / "e2e" / "customer_coverage.mjs"
RUN_TIMEOUT_S = 120


def test_customer_coverage_page_end_to_end(node: str, live_server: str, owner_engine, tmp_path: Path) -> None:  # noqa: F811
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--chromium", str(CHROMIUM)]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    env = {**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD}
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                         check=False)
    elapsed = time.monotonic() - started
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}"
    artefacts.mkdir(parents=True, exist_ok=True)
    (artefacts / "customers-coverage-e2e.log").write_text(output, encoding="utf-8")
    assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["created"] > 0, output

    with owner_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT t.status::text, t.note, u.username, "
            "(SELECT g.path <@ (SELECT path FROM grids WHERE id = :g) FROM grids g WHERE g.id = c.grid_id) "
            "FROM profile_collection_tasks t JOIN customers c ON c.id = t.customer_id "
            "JOIN users u ON u.id = t.created_by WHERE t.batch_key = :k"),
            {"k": result["batch_key"], "g": result["grid_id"]}).all()
    try:
        assert len(rows) == result["created"]
        assert {(r[0], r[1], r[2], r[3]) for r in rows} == {("open", "E2E 补录", "bl_430102", True)}
    finally:  # the suite shares one database: remove the tasks this test created (other page tests count them)
        with owner_engine.begin() as conn:
            conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
            conn.execute(text("DELETE FROM profile_collection_tasks WHERE batch_key = :k"), {"k": result["batch_key"]})


def test_customer_coverage_shell_and_menu(client, login) -> None:  # noqa: ANN001
    html = client.get("/app/customers/coverage").get_data(as_text=True)
    assert "js/customer-coverage.js" in html and "建档与覆盖" in html

    def routes(username: str) -> set[str]:
        tree = client.get("/api/v1/me/menus", headers=login(username)).get_json()
        group = next(n for n in tree if n["code"] == "customers")
        return {c["route"] for c in group["children"]}

    assert "/app/customers/coverage" in routes("bl_430102")
    assert "/app/customers/coverage" in routes("am_430102_1_1")  # MANAGER_BASE holds coverage:read
