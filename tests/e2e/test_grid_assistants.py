"""End-to-end test of the 网格三员 register, editing a post and balancing customers inside a grid (headless Chromium).

Same harness as test_grid_editor.py: the app runs on a free loopback port against the session's migrated test
database and tests/e2e/grid_assistants.mjs drives the browser as a branch leader. The browser commits data (an
assistant created and deleted, one set inactive, a post edited, customers moved with their hand-over records);
afterwards the owner engine puts those tables back as they were (customers' owners and their ownership history
included), so the demo seed is unchanged for the tests that follow.

Environment: GM_E2E_ARTEFACTS=<dir> keeps the screenshots there (default: pytest's tmp dir);
GM_E2E_KEEP_SCREENSHOTS=1 also copies them to docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.conftest import DEMO_PASSWORD
from tests.e2e.test_grid_editor import CHROMIUM, ROOT, RUN_TIMEOUT_S, live_server, node  # noqa: F401

SCRIPT = ROOT / "tests" / "e2e" / "grid_assistants.mjs"


def _snapshot(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            "max": {t: conn.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}"))
                    for t in ("grid_assistants", "grid_handovers", "customer_ownerships")},
            "assistants": sorted(map(tuple, conn.execute(text("SELECT id, status::text, notes FROM grid_assistants")))),
            "posts": sorted(map(tuple, conn.execute(text(
                "SELECT id, responsibilities, kpi_targets::text, valid_from FROM grid_assignments")))),
            "owners": sorted(map(tuple, conn.execute(text("SELECT id, owner_user_id, org_id FROM customers")))),
            "open_ownerships": sorted(conn.scalars(text("SELECT id FROM customer_ownerships WHERE valid_to IS NULL"))),
        }


def _restore(engine: Any, snap: dict[str, Any]) -> dict[str, int]:
    with engine.begin() as conn:
        done = {
            "handovers": conn.execute(text("DELETE FROM grid_handovers WHERE id > :n"),
                                      {"n": snap["max"]["grid_handovers"]}).rowcount,
            "assistants": conn.execute(text("DELETE FROM grid_assistants WHERE id > :n"),
                                       {"n": snap["max"]["grid_assistants"]}).rowcount,
        }
        conn.execute(text("UPDATE grid_assistants a SET status = s.status::assistant_status, notes = s.notes "
                          "FROM json_to_recordset(CAST(:rows AS json)) AS s(id int, status text, notes text) "
                          "WHERE a.id = s.id AND (a.status::text <> s.status OR a.notes IS DISTINCT FROM s.notes)"),
                     {"rows": json.dumps([{"id": i, "status": st, "notes": n} for i, st, n in snap["assistants"]])})
        posts = json.dumps([{"id": i, "r": r, "k": k, "v": v.isoformat()} for i, r, k, v in snap["posts"]])
        done["posts"] = conn.execute(text(
            "UPDATE grid_assignments a SET responsibilities = s.r, kpi_targets = CAST(s.k AS jsonb), valid_from = s.v "
            "FROM json_to_recordset(CAST(:rows AS json)) AS s(id int, r text, k text, v date) WHERE a.id = s.id "
            "AND (a.responsibilities IS DISTINCT FROM s.r OR a.kpi_targets <> CAST(s.k AS jsonb) "
            "OR a.valid_from <> s.v)"), {"rows": posts}).rowcount
        done["customers"] = conn.execute(text(
            "UPDATE customers c SET owner_user_id = s.o, org_id = s.g "
            "FROM json_to_recordset(CAST(:rows AS json)) AS s(id int, o int, g int) WHERE c.id = s.id "
            "AND (c.owner_user_id IS DISTINCT FROM s.o OR c.org_id <> s.g)"),
            {"rows": json.dumps([{"id": i, "o": o, "g": g} for i, o, g in snap["owners"]])}).rowcount
        # the ownership history as it was: drop the periods the run (and this restore) opened, re-open the old ones
        conn.execute(text("DELETE FROM customer_ownerships WHERE id > :n"), {"n": snap["max"]["customer_ownerships"]})
        conn.execute(text("UPDATE customer_ownerships SET valid_to = NULL "
                          "WHERE id = ANY(:ids) AND valid_to IS NOT NULL"), {"ids": snap["open_ownerships"]})
    return done


def test_assistants_register_post_edit_and_customer_balancing(node: str, live_server: str,  # noqa: F811
                                                              owner_engine, tmp_path: Path) -> None:  # noqa: ANN001
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--chromium", str(CHROMIUM)]
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
    assert _snapshot(owner_engine) == before, f"data not restored: {restored}"
    assert restored["customers"] == result["balanced"]["moved"] > 0, output
    assert restored["handovers"] == len(result["balanced"]["handovers"]), output
    assert restored["posts"] == 1 and restored["assistants"] == 0, output  # the created one was deleted in the run
    for prefix in ("grid-assistants-0", "grid-balance-0", "grid-staff-06"):
        assert list(artefacts.glob(f"{prefix}*.png")), output
