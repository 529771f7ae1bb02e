"""End-to-end test of the 建档任务 page (profile collection tasks) in a real headless Chromium against a real server
of the app on the session's migrated test database.

Setup creates collection tasks for a few of am_430102_1_1's customers through the live server's API (committed as
bl_430102). tests/e2e/customer_profile_tasks.mjs then drives the browser: the manager sees his open tasks and opens
one's profile form; the branch leader sees the team's, filters by the manager and cancels one; bl_430104 lists his.
This test compares what each saw with the database. GM_E2E_KEEP_SCREENSHOTS=1 copies the manager's view to
docs/screenshots/customers-profile-tasks.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from sqlalchemy import text

from tests.conftest import DEMO_PASSWORD
from tests.e2e.test_grid_editor import CHROMIUM, ROOT, _call, live_server, node  # noqa: F401  (fixtures)

SCRIPT = ROOT / "tests" / "e2e" / "customer_profile_tasks.mjs"
RUN_TIMEOUT_S = 120


def _create_tasks(base: str, customer_ids: list[int]) -> dict:
    status, body = _call(base, "POST", "/api/v1/auth/login", body={"username": "bl_430102", "password": DEMO_PASSWORD})
    assert status == 200, body
    status, batch = _call(base, "POST", "/api/v1/profile-tasks", body["access_token"],
                          {"customer_ids": customer_ids, "note": "E2E 建档任务"})
    assert status == 201, batch
    return batch


def test_customer_profile_tasks_page_end_to_end(node: str, live_server: str, owner_engine, tmp_path: Path) -> None:  # noqa: F811
    with owner_engine.connect() as conn:
        am_id = conn.execute(text("SELECT id FROM users WHERE username = 'am_430102_1_1'")).scalar_one()
        picked = list(conn.scalars(text(
            "SELECT c.id FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id "
            "WHERE c.owner_user_id = :u AND c.status = 'active' AND c.profile_type IS NOT NULL "
            "AND (p.customer_id IS NULL OR cardinality(p.missing) > 0) "
            "AND NOT EXISTS (SELECT 1 FROM profile_collection_tasks t "
            "WHERE t.customer_id = c.id AND t.status = 'open') "
            "ORDER BY c.id LIMIT 4"), {"u": am_id}))
    assert len(picked) == 4
    batch = _create_tasks(live_server, picked)
    assert batch["created"] == 4, batch
    with owner_engine.connect() as conn:
        to_cancel = conn.execute(text("SELECT max(id) FROM profile_collection_tasks WHERE batch_key = :k"),
                                 {"k": batch["batch_key"]}).scalar_one()

    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--chromium", str(CHROMIUM),
               "--assignee", str(am_id), "--cancel", str(to_cancel)]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    env = {**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD}
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                         check=False)
    elapsed = time.monotonic() - started
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}"
    artefacts.mkdir(parents=True, exist_ok=True)
    (artefacts / "customers-profile-tasks-e2e.log").write_text(output, encoding="utf-8")
    assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"], output

    with owner_engine.connect() as conn:
        # the manager saw exactly his open tasks (before the leader cancelled one)
        mine_now = set(conn.scalars(text(
            "SELECT id FROM profile_collection_tasks WHERE assignee_user_id = :u AND status = 'open'"), {"u": am_id}))
        assert set(result["manager"]) == mine_now | {to_cancel}
        assert set(picked) <= set(conn.scalars(text(
            "SELECT customer_id FROM profile_collection_tasks WHERE id = ANY(:ids)"), {"ids": result["manager"]}))
        # the leader's team list holds the manager's tasks; his filter showed exactly them
        assert set(result["leader"]["manager"]) == mine_now | {to_cancel}
        assert set(result["leader"]["manager"]) <= set(result["leader"]["team"])
        cancelled = conn.execute(text(
            "SELECT t.status::text, u.username FROM profile_collection_tasks t JOIN users u ON u.id = t.closed_by "
            "WHERE t.id = :i"), {"i": to_cancel}).one()
        assert tuple(cancelled) == ("cancelled", "bl_430102")
        # bl_430104 saw none of 芙蓉's tasks
        furong = set(conn.scalars(text(
            "SELECT t.id FROM profile_collection_tasks t JOIN customers c ON c.id = t.customer_id "
            "JOIN orgs o ON o.id = c.org_id WHERE o.path <@ (SELECT path FROM orgs WHERE code = 'BR430102')")))
        assert furong and not furong & set(result["other"])
    print(f"browser run {elapsed:.1f}s")  # target < 30 s; no timed assertion (shared noisy CPU)


def test_customer_profile_tasks_shell_and_menu(client, login) -> None:  # noqa: ANN001
    html = client.get("/app/customers/profile-tasks").get_data(as_text=True)
    assert "js/customer-profile-tasks.js" in html and "建档任务" in html

    def routes(username: str) -> set[str]:
        tree = client.get("/api/v1/me/menus", headers=login(username)).get_json()
        group = next(n for n in tree if n["code"] == "customers")
        return {c["route"] for c in group["children"]}

    assert "/app/customers/profile-tasks" in routes("am_430102_1_1")  # customer:read
    assert "/app/customers/profile-tasks" in routes("bl_430104")
