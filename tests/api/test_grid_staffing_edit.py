"""Editing a current post (duties, KPI targets, start of the effective period) and the 网格三员 register page."""

from __future__ import annotations

V1 = "/api/v1"
LEADER = "sbl_430102_1"


def _grid(client, h):
    return client.get(f"{V1}/grids?level=community&page_size=1", headers=h).get_json()["items"][0]


def test_patch_changes_duties_kpis_and_start_of_a_current_post(client, login):
    h = login(LEADER)
    grid = _grid(client, h)
    post = next(a for a in client.get(f"{V1}/grids/{grid['id']}/assignments", headers=h).get_json()
                if a["post"] == "account_manager")
    r = client.patch(f"{V1}/grid-assignments/{post['id']}", headers=h, json={
        "responsibilities": "负责东片商户建档", "kpi_targets": {"households_profiled": 120, "deposits_wan": 300.5},
        "valid_from": "2026-03-01"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["responsibilities"] == "负责东片商户建档" and body["valid_from"] == "2026-03-01"
    assert body["kpi_targets"] == {"households_profiled": 120, "deposits_wan": 300.5}
    # only what is sent changes
    again = client.patch(f"{V1}/grid-assignments/{post['id']}", headers=h, json={"responsibilities": "只改职责"})
    kept = again.get_json()
    assert kept["valid_from"] == "2026-03-01" and kept["kpi_targets"]["households_profiled"] == 120
    for bad in ({"valid_from": None}, {"valid_from": "2026-13-01"}, {"valid_from": "x"},
                {"kpi_targets": {"x": -1}}, {"kpi_targets": "x"}):
        r = client.patch(f"{V1}/grid-assignments/{post['id']}", headers=h, json=bad)
        assert r.status_code == 422, (bad, r.get_json())
    # an ended post is history: 409
    assert client.post(f"{V1}/grid-assignments/{post['id']}/end", headers=h, json={"reason": "调岗"}).status_code == 200
    r = client.patch(f"{V1}/grid-assignments/{post['id']}", headers=h, json={"valid_from": "2026-04-01"})
    assert r.status_code == 409 and r.get_json()["code"] == "ASSIGNMENT_ENDED"


def test_patch_scope_and_permission(client, login):
    h = login(LEADER)
    post = next(a for a in client.get(f"{V1}/grids/{_grid(client, h)['id']}/assignments", headers=h).get_json())
    assert client.patch(f"{V1}/grid-assignments/{post['id']}", headers=login("bl_430104"),
                        json={"valid_from": "2026-02-01"}).status_code == 404
    assert client.patch(f"{V1}/grid-assignments/{post['id']}", headers=login("am_430102_1_1"),
                        json={"valid_from": "2026-02-01"}).status_code == 403


def test_assistants_page_and_menu(client, login):
    assert client.get("/app/grids/assistants").status_code == 200  # the shell; data needs the token
    page = client.get("/app/grids/assistants").get_data(as_text=True)
    assert "网格三员" in page and "grid-assistants.js" in page
    leader = [m["code"] for m in client.get(f"{V1}/me/menus", headers=login(LEADER)).get_json()]
    assert "grid_assistants" in leader
    # account managers read assistants (for the staff picker) but do not maintain the register: no menu entry
    am = [m["code"] for m in client.get(f"{V1}/me/menus", headers=login("am_430102_1_1")).get_json()]
    assert "grid_assistants" not in am
