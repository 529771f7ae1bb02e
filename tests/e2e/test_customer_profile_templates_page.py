"""End-to-end test of the 建档模板 page (profile templates: list, field editor, version history) in a real headless
Chromium against a real server of the app on the session's migrated test database.

tests/e2e/customer_profile_templates.mjs drives the browser (admin edits the 商户 template: a bad regex shows the
API's 422 under its row, the fixed field saves as version n+1; bl_430102 sees read-only tables); this test then
checks the versions in the database and finally puts the original version back as the current, active one so
other tests sharing the database see the seeded template.
GM_E2E_KEEP_SCREENSHOTS=1 copies the page's screenshot to docs/screenshots/customers-profile-templates.png.
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

SCRIPT = ROOT / "tests" / "e2e" / "customer_profile_templates.mjs"
RUN_TIMEOUT_S = 120


def _restore(owner_engine, template_id: int, version: int, code: str) -> None:  # noqa: ANN001
    """Drop the versions the browser made and make the original one current and active again."""
    with owner_engine.begin() as conn:
        conn.execute(text("DELETE FROM profile_templates WHERE code = :c AND version > :v"), {"c": code, "v": version})
        conn.execute(text("UPDATE profile_templates SET is_current = true, is_active = true WHERE id = :i"),
                     {"i": template_id})


def test_customer_profile_templates_page_end_to_end(node: str, live_server: str, owner_engine,  # noqa: F811
                                                    tmp_path: Path) -> None:
    with owner_engine.connect() as conn:
        original = conn.execute(text(
            "SELECT id, version, code FROM profile_templates WHERE profile_type::text = 'merchant' AND is_active"
        )).one()
    artefacts = Path(os.environ.get("GM_E2E_ARTEFACTS") or tmp_path / "artefacts")
    command = [node, str(SCRIPT), "--base", live_server, "--out", str(artefacts), "--chromium", str(CHROMIUM)]
    if os.environ.get("GM_E2E_KEEP_SCREENSHOTS") == "1":
        command += ["--keep", str(ROOT / "docs" / "screenshots")]
    env = {**os.environ, "GM_E2E_PASSWORD": DEMO_PASSWORD}
    try:
        started = time.monotonic()
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             check=False)
        elapsed = time.monotonic() - started
        output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}\nartefacts: {artefacts}"
        artefacts.mkdir(parents=True, exist_ok=True)
        (artefacts / "customers-profile-templates-e2e.log").write_text(output, encoding="utf-8")
        assert run.returncode == 0, f"browser run failed after {elapsed:.1f}s\n{output}"
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["ok"] and result["oldId"] == original.id and result["code"] == original.code, output

        with owner_engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT id, version, is_current, is_active, fields FROM profile_templates WHERE code = :c "
                "ORDER BY version"), {"c": original.code}).all()
            active = conn.execute(text(
                "SELECT id FROM profile_templates WHERE profile_type::text = 'merchant' AND is_active")).scalars().all()
        latest, old = rows[-1], next(r for r in rows if r.id == original.id)
        assert latest.version == original.version + 1 == result["newVersion"]
        assert latest.is_current and latest.is_active and active == [latest.id]
        assert not old.is_current and not old.is_active
        added = [f for f in latest.fields if f["key"] == result["new_key"]]
        assert added == [{**added[0], "label": "门头招牌", "type": "string", "regex": "[A-Za-z0-9]{1,30}",
                          "group": "经营情况", "required": False}]
        keys = [f["key"] for f in latest.fields]
        assert len(keys) == result["fields"] and keys.index(result["new_key"]) == len(keys) - 2  # moved up one row
        assert [f["key"] for f in old.fields] == [k for k in keys if k != result["new_key"]]
    finally:
        _restore(owner_engine, original.id, original.version, original.code)
    with owner_engine.connect() as conn:
        back = conn.execute(text(
            "SELECT id FROM profile_templates WHERE profile_type::text = 'merchant' AND is_active")).scalars().all()
    assert back == [original.id]


def test_customer_profile_templates_shell_and_menu(client, login) -> None:  # noqa: ANN001
    html = client.get("/app/customers/profile-templates").get_data(as_text=True)
    assert "js/customer-profile-templates.js" in html and "建档模板" in html

    def routes(username: str) -> set[str]:
        tree = client.get("/api/v1/me/menus", headers=login(username)).get_json()
        group = next(n for n in tree if n["code"] == "customers")
        return {c["route"] for c in group["children"]}

    assert "/app/customers/profile-templates" in routes("admin")
    assert "/app/customers/profile-templates" not in routes("bl_430102")  # profile_template:read only
    assert "/app/customers/profile-templates" not in routes("am_430102_1_1")
