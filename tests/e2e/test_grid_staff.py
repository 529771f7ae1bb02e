"""End-to-end test of grid staffing, rating and balancing (网格人员 / 网格评级 / 网格平衡) in headless Chromium.

Same harness as test_grid_editor.py: the app runs on a free loopback port against the session's migrated test
database, tests/e2e/grid_staff.mjs drives the browser, and an RQ worker (a subprocess on the test Redis) runs the
"rate all grids" job the page starts. The browser commits data (an assignment, hand-overs, ratings); afterwards
the owner engine puts the staffing and rating tables back exactly as they were, so the demo seed is unchanged
for the tests that follow.

Environment: GM_E2E_ARTEFACTS=<dir> keeps the screenshots there (default: pytest's tmp dir);
GM_E2E_KEEP_SCREENSHOTS=1 also copies them to docs/screenshots/grid-staff-*.png and grid-balance-*.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import DEMO_PASSWORD
from tests.e2e.test_grid_editor import CHROMIUM, ROOT, RUN_TIMEOUT_S, live_server, node  # noqa: F401

SCRIPT = ROOT / "tests" / "e2e" / "grid_staff.mjs"


def _snapshot(engine: Any) -> dict[str, Any]:
    """What the browser may change: the newest ids and the assignments current right now."""
    with engine.connect() as conn:
        snap = {table: conn.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}"))
                for table in ("grid_assignments", "grid_handovers", "grid_ratings")}
        snap["current"] = sorted(conn.scalars(text("SELECT id FROM grid_assignments WHERE valid_to IS NULL")))
    return snap


def _restore(engine: Any, snap: dict[str, Any]) -> dict[str, int]:
    """Delete what was created after the snapshot and re-open the posts it ended; returns rows touched."""
    with engine.begin() as conn:
        done = {
            "handovers": conn.execute(text("DELETE FROM grid_handovers WHERE id > :n"),
                                      {"n": snap["grid_handovers"]}).rowcount,
            "assignments": conn.execute(text("DELETE FROM grid_assignments WHERE id > :n"),
                                        {"n": snap["grid_assignments"]}).rowcount,
            "reopened": conn.execute(text(
                "UPDATE grid_assignments SET valid_to = NULL, ended_reason = NULL, ended_by = NULL "
                "WHERE id = ANY(:ids) AND valid_to IS NOT NULL"), {"ids": snap["current"]}).rowcount,
            "ratings": conn.execute(text("DELETE FROM grid_ratings WHERE id > :n"),
                                    {"n": snap["grid_ratings"]}).rowcount,
        }
    return done


@pytest.fixture()
def rq_worker(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """An RQ worker on the test Redis and database (the env conftest set), stopped afterwards."""
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=os.environ.copy(),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=5)
        log.close()


def test_grid_staff_rating_and_balancing(node: str, live_server: str, owner_engine, rq_worker,  # noqa: ANN001, F811
                                         tmp_path: Path) -> None:
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--chromium", str(CHROMIUM),
               "--rate-all"]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    env = {**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD}
    before = _snapshot(owner_engine)
    started = time.monotonic()
    try:
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             check=False)
    finally:
        restored = _restore(owner_engine, before)
    elapsed = time.monotonic() - started
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}\nrestored: {restored}"
    assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"], output
    assert _snapshot(owner_engine) == before, f"staffing data not restored: {restored}"
    # created: the assignment, its hand-over copy and one per balancing move; ended posts re-opened
    assert restored["handovers"] == 1 + len(result["balance_handover_ids"]), output
    assert restored["assignments"] == 2 + len(result["balance_handover_ids"]), output
    assert restored["reopened"] == len(result["balance_handover_ids"]), output
    assert restored["ratings"] > 1, output  # rated now + every grid by the job
    for prefix in ("grid-staff-", "grid-balance-"):
        assert len(list(artefacts.glob(f"{prefix}0*.png"))) >= 3, output


def test_grid_balance_page_shell(client) -> None:  # noqa: ANN001
    """The page is served with the base-map config; the menu entry needs grid:assign."""
    html = client.get("/app/grids/balance").get_data(as_text=True)
    assert "网格平衡" in html and "js/grid-balance.js" in html
    config = json.loads(html.split('id="gb-basemap-config">', 1)[1].split("</script>", 1)[0])
    assert "bdimg.com" in config["baidu"]["url"]


def test_grid_balance_menu_follows_grid_assign(client, login) -> None:  # noqa: ANN001
    def codes(username: str) -> list[str]:
        return [m["code"] for m in client.get("/api/v1/me/menus", headers=login(username)).get_json()]

    leader = codes("bl_430102")
    assert "grid_balance" in leader and leader.index("grid_balance") > leader.index("grids")
    assert "grid_balance" not in codes("am_430102_1_1")
