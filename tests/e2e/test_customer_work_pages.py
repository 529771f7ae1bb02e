"""End-to-end test of 客群管理, 标签管理, 客户提醒 and 客户建档 in a real headless Chromium.

A real server of the app (werkzeug, in a thread) runs on a free loopback port against the session's migrated test
database; a real RQ worker (`gridmarket worker`, a subprocess on the test Redis) recomputes the rule tag the page
creates. The demo's reminders are generated for 2026-11-24 first (the daily job's function, committed). Then
tests/e2e/customer_work.mjs drives the browser (see its header) and this test checks the database: the group was
submitted by bl_430102 and approved by admin with a snapshot, the rule tag was recomputed, the reminder is done with
the manager's note, the profile saved with the fixed business hours.

Environment: GM_E2E_ARTEFACTS=<dir> keeps the screenshots there (default: pytest's tmp dir);
GM_E2E_KEEP_SCREENSHOTS=1 also copies them to docs/screenshots/customer-work-*.png; CHROMIUM_PATH overrides
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
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.db import SYSTEM, set_context
from geo_core.reminders.generate import generate_reminders
from tests.conftest import DEMO_PASSWORD
from tests.e2e.test_grid_editor import CHROMIUM, ROOT, live_server, node  # noqa: F401  (fixtures)

SCRIPT = ROOT / "tests" / "e2e" / "customer_work.mjs"
RUN_TIMEOUT_S = 150
AS_OF = date(2026, 11, 24)  # the demo feed's latest snapshot day


@pytest.fixture()
def rq_worker(live_server: str, redis_conn) -> Iterator[subprocess.Popen]:  # noqa: F811, ANN001
    """A real RQ worker on the test database and Redis (the env conftest set), stopped after the test."""
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gridmarket"), "worker"], cwd=ROOT, env=os.environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def _prepare(owner_engine) -> tuple[int, int | None]:  # noqa: ANN001
    """Generate the demo reminders (idempotent); pick a merchant of am_430102_1_1 (its profile emptied) and one of
    his persons with no profile type."""
    with Session(owner_engine) as session:
        set_context(session, SYSTEM)
        generate_reminders(session, AS_OF)
        session.commit()
        customer_id = session.scalar(text(
            "SELECT c.id FROM customers c JOIN users u ON u.id = c.owner_user_id WHERE u.username = 'am_430102_1_1' "
            "AND c.profile_type = 'merchant' AND c.status = 'active' ORDER BY "
            "(EXISTS (SELECT 1 FROM customer_profiles p WHERE p.customer_id = c.id)), c.id LIMIT 1"))
        assert customer_id is not None, "the demo should give am_430102_1_1 a merchant"
        # start from a blank archive so completeness visibly rises
        session.execute(text("DELETE FROM customer_profiles WHERE customer_id = :c"), {"c": customer_id})
        session.commit()
        untyped = session.scalar(text(
            "SELECT c.id FROM customers c JOIN users u ON u.id = c.owner_user_id WHERE u.username = 'am_430102_1_1' "
            "AND c.profile_type IS NULL AND c.kind = 'person' AND c.status = 'active' ORDER BY c.id LIMIT 1"))
        return customer_id, untyped


def test_customer_work_pages_end_to_end(node: str, live_server: str, rq_worker, owner_engine,  # noqa: F811
                                        tmp_path: Path) -> None:
    tag = f"E2E-{uuid.uuid4().hex[:8].upper()}"
    customer_id, untyped = _prepare(owner_engine)
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--tag", tag,
               "--profile-customer", str(customer_id), "--chromium", str(CHROMIUM)]
    if untyped is not None:
        command += ["--untyped-customer", str(untyped)]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    env = {**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD}
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                         check=False)
    elapsed = time.monotonic() - started
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}"
    artefacts.mkdir(parents=True, exist_ok=True)
    (artefacts / "customer-work-e2e.log").write_text(output, encoding="utf-8")
    if run.returncode != 0 and rq_worker.poll() is not None:
        output += f"\n--- worker\n{rq_worker.stdout.read().decode(errors='replace')}"
    assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["tag"] == tag, output
    assert len(list(artefacts.glob("customer-work-*.png"))) >= 6, output

    with owner_engine.connect() as conn:
        group = conn.execute(text(
            "SELECT g.id, g.status::text, g.member_count, s.username, r.username, g.definition FROM customer_groups g "
            "JOIN users s ON s.id = g.submitted_by JOIN users r ON r.id = g.reviewed_by WHERE g.name = :n"),
            {"n": tag}).one()
        assert group[1:5] == ("approved", group[2], "bl_430102", "admin") and group[2] > 0
        assert group[5]["rule"] == {"all": [{"field": "age", "op": ">=", "value": 30}]}
        assert len(group[5]["tags"]["any"]) == 1
        assert group[5]["polygon"]["type"] in ("Polygon", "MultiPolygon") and group[5]["crs"] == "wgs84"
        members = conn.scalar(text("SELECT count(*) FROM customer_group_members WHERE group_id = :g"), {"g": group[0]})
        assert members == group[2]
        log = conn.execute(text(
            "SELECT r.action::text, u.username, r.comment FROM customer_group_reviews r JOIN users u "
            "ON u.id = r.actor_user_id WHERE r.group_id = :g ORDER BY r.id"), {"g": group[0]}).all()
        assert [tuple(x) for x in log] == [("submit", "bl_430102", None), ("approve", "admin", "E2E 同意：口径清晰")]

        tag_row = conn.execute(text(
            "SELECT kind::text, rule, computed_at IS NOT NULL, (SELECT count(*) FROM customer_tags ct "
            "WHERE ct.tag_id = t.id) FROM tags t WHERE code = :c"), {"c": result["tag_code"]}).one()
        assert tag_row[0] == "rule" and tag_row[1] == {"all": [{"field": "deposit_balance", "op": ">=",
                                                                 "value": 200000}]}
        assert tag_row[2] and tag_row[3] >= result["tag_preview"] > 0 and result["tag_count"] > 0

        reminder = conn.execute(text(
            "SELECT r.status::text, r.action_note, u.username FROM reminders r JOIN users u ON u.id = r.done_by "
            "WHERE r.id = :i"), {"i": result["reminder_id"]}).one()
        assert tuple(reminder) == ("done", "E2E 已电话联系客户并预约走访", "am_430102_1_1")

        profile = conn.execute(text(
            "SELECT data->>'business_hours', data->>'contact_phone', completeness, revision, source "
            "FROM customer_profiles WHERE customer_id = :c"), {"c": customer_id}).one()
        assert profile[0] == "08:00-21:00" and profile[1] != "13800001234"  # the phone is kept sealed, masked
        assert float(profile[2]) == pytest.approx(result["completeness_after"]) and profile[2] > 0
        assert profile[3] == 1 and profile[4] == "pc"  # the refused save wrote nothing
        event = conn.execute(text(
            "SELECT kind::text, recurrence::text, event_date, remind_days_before FROM customer_events "
            "WHERE customer_id = :c AND title = 'E2E 每周一进货'"), {"c": customer_id}).one()
        assert tuple(event) == ("restock", "weekly", date(2026, 11, 30), 1)
    assert result["completeness_after"] > result["completeness_before"]
    if untyped is not None:  # the form was only shown: no profile, no type set
        assert result["farmer_fields"] > 5
        with owner_engine.connect() as conn:
            assert conn.scalar(text("SELECT profile_type IS NULL AND NOT EXISTS (SELECT 1 FROM customer_profiles p "
                                    "WHERE p.customer_id = c.id) FROM customers c WHERE c.id = :c"), {"c": untyped})


def test_customer_work_page_shells(client) -> None:  # noqa: ANN001
    """The four pages render their shells (data comes from the API) with no off-site asset."""
    for path, needle in (("/app/customers/groups", "js/customer-groups.js"),
                         ("/app/customers/tags", "js/customer-tags.js"),
                         ("/app/customers/reminders", "js/reminders.js"),
                         ("/app/customers/42/profile", "js/customer-profile.js")):
        r = client.get(path)
        html = r.get_data(as_text=True)
        assert r.status_code == 200 and needle in html, path
        assert "http://" not in html and "https://" not in html, path
    assert 'data-customer-id="42"' in client.get("/app/customers/42/profile").get_data(as_text=True)
    assert 'href="/app/customers/42/profile"' in client.get("/app/customers/42").get_data(as_text=True)  # 360 button
    assert client.get("/app/customers/x/profile").status_code == 404


def test_customer_work_menus_follow_permissions(client, login) -> None:  # noqa: ANN001
    """客户管理 › 客群管理 / 标签管理 / 客户提醒 follow group:read, tag:read and reminder:read."""

    def routes(username: str) -> set[str]:
        tree = client.get("/api/v1/me/menus", headers=login(username)).get_json()
        tree = tree if isinstance(tree, list) else tree["items"]
        group = next((n for n in tree if n["code"] == "customers"), {"children": []})
        return {c["route"] for c in group["children"]}

    mine = {"/app/customers/groups", "/app/customers/tags", "/app/customers/reminders"}
    assert mine <= routes("bl_430102") and mine <= routes("am_430102_1_1") and mine <= routes("admin")
    assistant = routes("ga_430102_1")  # tag:read only
    assert "/app/customers/tags" in assistant and not {"/app/customers/groups", "/app/customers/reminders"} & assistant
