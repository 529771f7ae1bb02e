"""Grid staffing (定格-定岗-定人-定责): assignments with history, leader uniqueness, hand-over (移交) that is
audited and atomic, grid assistants (网格三员), and data scope tested from the attacker's side."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from geo_core.db import SYSTEM, set_context

V1 = "/api/v1"
ATTACKER = "sbl_430102_1"  # sub-branch leader in 芙蓉, scope: his sub-branch and its outlets


def _user(client, login, username):
    items = client.get(f"{V1}/users?q={username}", headers=login("admin")).get_json()["items"]
    return next(u for u in items if u["username"] == username)


def _staff(client, h, grid_id, include_ended=False):
    r = client.get(f"{V1}/grids/{grid_id}/assignments?include_ended={str(include_ended).lower()}", headers=h)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


@pytest.fixture()
def grid(client, login):
    """A community grid of 芙蓉 owned by an outlet under the attacker's sub-branch (seeded with staff)."""
    body = client.get(f"{V1}/grids?level=community&page_size=1", headers=login(ATTACKER)).get_json()
    assert body["total"] > 0
    return body["items"][0]


@pytest.fixture()
def yuelu_grid(client, login):
    items = client.get(f"{V1}/grids?q=G430104&level=community&page_size=1", headers=login("admin")).get_json()["items"]
    return items[0]


def _end(client, h, assignment_id, reason):
    return client.post(f"{V1}/grid-assignments/{assignment_id}/end", headers=h, json={"reason": reason})


def _free_managers(client, login, grid_id, h):
    """Active account managers visible to the attacker who hold no current post on the grid."""
    taken = {a["user_id"] for a in _staff(client, h, grid_id)}
    users = client.get(f"{V1}/users?role=account_manager&page_size=100", headers=login(ATTACKER)).get_json()["items"]
    return [u for u in users if u["id"] not in taken and u["status"] == "active"]


def _free_manager(client, login, grid_id, h):
    return _free_managers(client, login, grid_id, h)[0]


def test_demo_seed_staffs_every_community_grid(client, login, grid, db_session):
    set_context(db_session, SYSTEM)
    missing = db_session.scalar(text(
        "SELECT count(*) FROM grids g WHERE g.level = 'community' AND NOT EXISTS (SELECT 1 FROM grid_assignments a "
        "WHERE a.grid_id = g.id AND a.post = 'grid_leader' AND a.valid_to IS NULL)"))
    assert missing == 0
    staff = _staff(client, login(ATTACKER), grid["id"])
    posts = [a["post"] for a in staff]
    me = client.get(f"{V1}/me", headers=login(ATTACKER)).get_json()
    leader = next(a for a in staff if a["post"] == "grid_leader")
    assert leader["user_id"] == me["id"] and leader["post_label"] == "网格长"
    assert 1 <= posts.count("account_manager") <= 2 and posts.count("grid_assistant") >= 1
    helper = next(a for a in staff if a["post"] == "grid_assistant")
    assert helper["assistant_id"] and helper["user_id"] is None and helper["name"]
    assert all(a["kpi_targets"] and a["responsibilities"] and a["is_current"] for a in staff)


def test_assign_list_update_end_keeps_history(client, login, grid):
    h = login(ATTACKER)
    am = _free_manager(client, login, grid["id"], h)
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h, json={
        "post": "account_manager", "user_id": am["id"], "responsibilities": "负责楼栋建档",
        "kpi_targets": {"households_profiled": 500, "deposits_wan": 2000}})
    assert r.status_code == 201, r.get_json()
    a = r.get_json()
    assert a["name"] == am["name"] and a["post_label"] == "客户经理" and a["is_current"] and a["valid_to"] is None
    assert a["kpi_targets"] == {"households_profiled": 500, "deposits_wan": 2000}
    assert a["grid_code"] == grid["code"] and a["valid_from"]
    again = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                        json={"post": "account_manager", "user_id": am["id"]})
    assert again.status_code == 409 and again.get_json()["code"] == "ASSIGNMENT_EXISTS"
    assert a["id"] in {x["id"] for x in _staff(client, h, grid["id"])}
    mine = client.get(f"{V1}/users/{am['id']}/grid-assignments", headers=h).get_json()
    assert grid["id"] in {x["grid_id"] for x in mine}

    r = client.patch(f"{V1}/grid-assignments/{a['id']}", headers=h,
                     json={"responsibilities": "负责建档与走访", "kpi_targets": {"households_profiled": 600}})
    assert r.status_code == 200 and r.get_json()["kpi_targets"] == {"households_profiled": 600}

    r = client.post(f"{V1}/grid-assignments/{a['id']}/end", headers=h, json={"reason": "调岗"})
    ended = r.get_json()
    assert r.status_code == 200 and not ended["is_current"] and ended["valid_to"] and ended["ended_reason"] == "调岗"
    assert ended["ended_by"] == client.get(f"{V1}/me", headers=h).get_json()["id"]
    assert a["id"] not in {x["id"] for x in _staff(client, h, grid["id"])}
    history = {x["id"]: x for x in _staff(client, h, grid["id"], include_ended=True)}
    assert history[a["id"]]["ended_reason"] == "调岗"
    assert client.get(f"{V1}/grid-assignments/{a['id']}", headers=h).get_json()["valid_to"] == ended["valid_to"]
    assert client.post(f"{V1}/grid-assignments/{a['id']}/end", headers=h, json={"reason": "x"}).status_code == 409
    r = client.patch(f"{V1}/grid-assignments/{a['id']}", headers=h, json={"responsibilities": "x"})
    assert r.status_code == 409 and r.get_json()["code"] == "ASSIGNMENT_ENDED"
    assert grid["id"] not in {x["grid_id"] for x in client.get(f"{V1}/users/{am['id']}/grid-assignments",
                                                               headers=h).get_json()}
    # the same person may take the post again: a new row, the old one stays as history
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h, json={"post": "account_manager",
                                                                             "user_id": am["id"]})
    assert r.status_code == 201 and r.get_json()["id"] != a["id"]


def test_history_cannot_be_deleted_by_the_app(connection):
    with pytest.raises(ProgrammingError, match="permission denied"):
        with connection.begin_nested():
            connection.execute(text("DELETE FROM grid_assignments"))
    with pytest.raises(ProgrammingError, match="permission denied"):
        with connection.begin_nested():
            connection.execute(text("UPDATE grid_handovers SET reason = 'x'"))


def test_second_current_grid_leader_is_409_naming_the_leader(client, login, grid):
    h = login(ATTACKER)
    me = client.get(f"{V1}/me", headers=h).get_json()
    other = _free_manager(client, login, grid["id"], h)
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h, json={"post": "grid_leader",
                                                                             "user_id": other["id"]})
    body = r.get_json()
    assert r.status_code == 409 and body["code"] == "GRID_LEADER_TAKEN"
    assert me["name"] in body["message"] and "移交" in body["message"]
    leader = next(a for a in _staff(client, h, grid["id"]) if a["post"] == "grid_leader")
    assert _end(client, h, leader["id"], "卸任").status_code == 200
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h, json={"post": "grid_leader",
                                                                             "user_id": other["id"]})
    assert r.status_code == 201 and r.get_json()["name"] == other["name"]
    # a leader from a higher org (outside my scope) is still named on a grid I can see
    admin = login("admin")
    bl = _user(client, login, "bl_430102")
    assert _end(client, h, r.get_json()["id"], "x").status_code == 200
    assert client.post(f"{V1}/grids/{grid['id']}/assignments", headers=admin,
                       json={"post": "grid_leader", "user_id": bl["id"]}).status_code == 201
    assert client.get(f"{V1}/users/{bl['id']}", headers=h).status_code == 404
    leader = next(a for a in _staff(client, h, grid["id"]) if a["post"] == "grid_leader")
    assert leader["name"] == bl["name"]
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h, json={"post": "grid_leader",
                                                                             "user_id": other["id"]})
    assert r.status_code == 409 and bl["name"] in r.get_json()["message"]


def test_hand_over_moves_posts_keeps_history_and_is_audited(client, login, grid, db_session):
    h = login(ATTACKER)
    before = _staff(client, h, grid["id"])
    giver_id = next(a["user_id"] for a in before if a["post"] == "account_manager")
    given = [a for a in before if a["user_id"] == giver_id]
    taker = _free_manager(client, login, grid["id"], h)
    rid = "test-staff-handover-1"
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers={**h, "X-Request-ID": rid}, json={
        "from_user_id": giver_id, "to_user_id": taker["id"], "reason": "调往其他网点", "include_customers": True})
    assert r.status_code == 201, r.get_json()
    ho = r.get_json()
    set_context(db_session, SYSTEM)
    owned = db_session.scalar(text("SELECT count(*) FROM customers WHERE owner_user_id = :u AND grid_id = :g"),
                              {"u": taker["id"], "g": grid["id"]})
    assert ho["moved_assignments"] == len(given) and ho["include_customers"]
    assert ho["moved_customers"] == owned  # the giver's customers of the grid (tests/api/test_grid_handover_customers)
    assert ho["to_user_name"] == taker["name"] and ho["grid_code"] == grid["code"] and ho["reason"] == "调往其他网点"

    now = _staff(client, h, grid["id"])
    assert giver_id not in {a["user_id"] for a in now}
    received = [a for a in now if a["user_id"] == taker["id"]]
    assert sorted((a["post"], a["responsibilities"], str(a["kpi_targets"])) for a in received) == sorted(
        (a["post"], a["responsibilities"], str(a["kpi_targets"])) for a in given)
    ended = [a for a in _staff(client, h, grid["id"], include_ended=True) if a["id"] in {g["id"] for g in given}]
    assert len(ended) == len(given) and all(a["ended_reason"] == "移交: 调往其他网点" and a["valid_to"] for a in ended)

    listed = client.get(f"{V1}/handovers?grid_id={grid['id']}", headers=h).get_json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == ho["id"]
    by_user = client.get(f"{V1}/handovers?user_id={giver_id}", headers=h).get_json()["items"]
    assert ho["id"] in {x["id"] for x in by_user}
    assert client.get(f"{V1}/handovers/{ho['id']}", headers=h).get_json()["detail"]["assignments"]

    set_context(db_session, SYSTEM)
    rows = set(db_session.execute(text("SELECT action, entity FROM audit_log WHERE request_id = :r"), {"r": rid}).all())
    assert {("update", "grid_assignments"), ("insert", "grid_assignments"), ("insert", "grid_handovers")} <= rows


def test_hand_over_is_atomic_when_it_fails_half_way(client, login, grid, db_session):
    h = login(ATTACKER)
    me = client.get(f"{V1}/me", headers=h).get_json()
    # the leader also becomes an account manager; the receiver already is one of the grid's account managers
    assert client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                       json={"post": "account_manager", "user_id": me["id"]}).status_code == 201
    before = _staff(client, h, grid["id"])
    taker_id = next(a["user_id"] for a in before if a["post"] == "account_manager" and a["user_id"] != me["id"])
    rid = "test-staff-handover-atomic"
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers={**h, "X-Request-ID": rid},
                    json={"from_user_id": me["id"], "to_user_id": taker_id, "reason": "轮岗"})
    # the leader post moved first, then the account-manager post collided: everything is undone
    assert r.status_code == 409 and r.get_json()["code"] == "HANDOVER_CONFLICT"
    assert "to_user_id" in r.get_json()["errors"] and r.get_json()["detail"]["post"] == "account_manager"
    after = _staff(client, h, grid["id"])
    assert {a["id"] for a in after} == {a["id"] for a in before}
    assert next(a for a in after if a["post"] == "grid_leader")["user_id"] == me["id"]
    assert client.get(f"{V1}/handovers?grid_id={grid['id']}", headers=h).get_json()["total"] == 0
    set_context(db_session, SYSTEM)
    assert db_session.scalar(text("SELECT count(*) FROM audit_log WHERE request_id = :r"), {"r": rid}) == 0


def test_hand_over_rolls_back_when_moving_customers_fails(client, login, grid, monkeypatch):
    from geo_core.errors import Conflict
    from geo_core.grids import staffing

    def broken(*_args, **_kwargs):
        raise Conflict("管户关系移交失败", code="CUSTOMERS_LOCKED")

    monkeypatch.setattr(staffing, "move_customers", broken)
    h = login(ATTACKER)
    before = _staff(client, h, grid["id"])
    giver_id = next(a["user_id"] for a in before if a["post"] == "account_manager")
    taker = _free_manager(client, login, grid["id"], h)
    body = {"from_user_id": giver_id, "to_user_id": taker["id"], "reason": "离职"}
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers=h, json={**body, "include_customers": True})
    assert r.status_code == 409 and r.get_json()["code"] == "CUSTOMERS_LOCKED"
    assert _staff(client, h, grid["id"]) == before
    assert client.get(f"{V1}/handovers?grid_id={grid['id']}", headers=h).get_json()["total"] == 0
    # without customers the same hand-over goes through
    assert client.post(f"{V1}/grids/{grid['id']}/handover", headers=h, json=body).status_code == 201


def test_hand_over_rules(client, login, grid, yuelu_grid):
    h = login(ATTACKER)
    staff = _staff(client, h, grid["id"])
    giver = next(a["user_id"] for a in staff if a["post"] == "account_manager")
    taker, bystander = _free_managers(client, login, grid["id"], h)[:2]
    url = f"{V1}/grids/{grid['id']}/handover"

    def post(**body):
        return client.post(url, headers=h, json={"from_user_id": giver, "to_user_id": taker["id"], "reason": "调岗",
                                                  **body})

    for body, field in (({"reason": "   "}, "reason"), ({"to_user_id": giver}, "to_user_id"),
                        ({"from_user_id": bystander["id"]}, "from_user_id"),
                        ({"to_user_id": _user(client, login, "am_430104_1_1")["id"]}, "to_user_id"),
                        ({"reason": None}, "reason"), ({"to_user_id": "x"}, "to_user_id")):
        r = post(**body)
        assert r.status_code == 422 and field in r.get_json()["errors"], (body, r.get_json())
    r = client.post(url, headers=h, json={"from_user_id": giver, "to_user_id": taker["id"]})
    assert r.status_code == 422 and "reason" in r.get_json()["errors"]
    admin = login("admin")
    assert client.patch(f"{V1}/users/{taker['id']}", headers=admin, json={"status": "disabled"}).status_code == 200
    r = post()
    assert r.status_code == 422 and "to_user_id" in r.get_json()["errors"]
    assert client.post(f"{V1}/grids/99999999999/handover", headers=h,
                       json={"from_user_id": 1, "to_user_id": 2, "reason": "x"}).status_code == 404
    assert client.post(f"{V1}/grids/{yuelu_grid['id']}/handover", headers=h,
                       json={"from_user_id": giver, "to_user_id": taker["id"], "reason": "x"}).status_code == 404


def test_scope_from_the_attackers_side(client, login, grid, yuelu_grid):
    admin, h = login("admin"), login(ATTACKER)
    victim = _user(client, login, "am_430104_1_1")
    yuelu_staff = _staff(client, admin, yuelu_grid["id"])
    victim_assignment = yuelu_staff[0]
    victim_assistant_id = next(a["assistant_id"] for a in yuelu_staff if a["assistant_id"])
    victim_handover = client.post(f"{V1}/grids/{yuelu_grid['id']}/handover", headers=admin, json={
        "from_user_id": next(a["user_id"] for a in yuelu_staff if a["post"] == "account_manager"),
        "to_user_id": victim["id"] if victim["id"] not in {a["user_id"] for a in yuelu_staff}
        else _user(client, login, "am_430104_br")["id"], "reason": "岳麓内部调整"}).get_json()
    assert victim_handover["id"]

    # grids of another branch do not exist for him
    g = yuelu_grid["id"]
    assert client.get(f"{V1}/grids/{g}/assignments", headers=h).status_code == 404
    assert client.get(f"{V1}/grids/{g}/assignments?include_ended=true", headers=h).status_code == 404
    me = client.get(f"{V1}/me", headers=h).get_json()
    assert client.post(f"{V1}/grids/{g}/assignments", headers=h,
                       json={"post": "account_manager", "user_id": me["id"]}).status_code == 404
    assert client.post(f"{V1}/grids/{g}/handover", headers=h, json={
        "from_user_id": victim_handover["to_user_id"], "to_user_id": me["id"], "reason": "x"}).status_code == 404
    # nor their assignments, hand-overs or assistants, by id or in lists
    aid = victim_assignment["id"]
    assert client.get(f"{V1}/grid-assignments/{aid}", headers=h).status_code == 404
    assert client.patch(f"{V1}/grid-assignments/{aid}", headers=h, json={"responsibilities": "x"}).status_code == 404
    assert client.post(f"{V1}/grid-assignments/{aid}/end", headers=h, json={"reason": "x"}).status_code == 404
    assert client.get(f"{V1}/users/{victim['id']}/grid-assignments", headers=h).status_code == 404
    assert client.get(f"{V1}/handovers/{victim_handover['id']}", headers=h).status_code == 404
    listed = client.get(f"{V1}/handovers?page_size=500", headers=h).get_json()["items"]
    assert victim_handover["id"] not in {x["id"] for x in listed}
    assert client.get(f"{V1}/handovers?grid_id={g}", headers=h).get_json()["total"] == 0
    assert client.get(f"{V1}/grid-assistants/{victim_assistant_id}", headers=h).status_code == 404
    assert client.patch(f"{V1}/grid-assistants/{victim_assistant_id}", headers=h,
                        json={"name": "x"}).status_code == 404
    assert client.delete(f"{V1}/grid-assistants/{victim_assistant_id}", headers=h).status_code == 404
    mine = client.get(f"{V1}/grid-assistants?page_size=500", headers=h).get_json()
    assert mine["total"] > 0 and victim_assistant_id not in {a["id"] for a in mine["items"]}
    orgs = {o["id"] for o in client.get(f"{V1}/orgs?page_size=500", headers=h).get_json()["items"]}
    assert {a["org_id"] for a in mine["items"]} <= orgs
    # and he cannot put another branch's people on his own grid, or register assistants there
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                    json={"post": "account_manager", "user_id": victim["id"]})
    assert r.status_code == 422 and "user_id" in r.get_json()["errors"]
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                    json={"post": "grid_assistant", "assistant_id": victim_assistant_id})
    assert r.status_code == 422 and "assistant_id" in r.get_json()["errors"]
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers=h, json={
        "from_user_id": _staff(client, h, grid["id"])[0]["user_id"], "to_user_id": victim["id"], "reason": "x"})
    assert r.status_code == 422 and "to_user_id" in r.get_json()["errors"]
    yuelu_org = client.get(f"{V1}/orgs?q=BR430104", headers=admin).get_json()["items"][0]
    r = client.post(f"{V1}/grid-assistants", headers=h, json={"name": "间谍", "org_id": yuelu_org["id"]})
    assert r.status_code == 422 and "org_id" in r.get_json()["errors"]


def test_account_manager_cannot_assign(client, login, grid):
    h = login("am_430102_1_1")
    me = client.get(f"{V1}/me", headers=h).get_json()
    for url, body in ((f"{V1}/grids/{grid['id']}/assignments", {"post": "account_manager", "user_id": me["id"]}),
                      (f"{V1}/grids/{grid['id']}/handover", {"from_user_id": me["id"], "to_user_id": 1, "reason": "x"}),
                      (f"{V1}/grid-assignments/1/end", {"reason": "x"}),
                      (f"{V1}/grid-assistants", {"name": "x"})):
        r = client.post(url, headers=h, json=body)
        assert r.status_code == 403 and r.get_json()["code"] == "PERMISSION_DENIED", url
    assert client.patch(f"{V1}/grid-assignments/1", headers=h, json={}).status_code == 403
    assert client.get(f"{V1}/grid-assistants", headers=h).status_code == 200  # assistant:read
    assert client.get(f"{V1}/users/{me['id']}/grid-assignments", headers=h).status_code == 200


def test_grid_assistant_crud(client, login, grid):
    h = login(ATTACKER)
    me = client.get(f"{V1}/me", headers=h).get_json()
    r = client.post(f"{V1}/grid-assistants", headers=h, json={"name": "  刘志愿  ", "phone": "13900001111",
                                                             "kind": "volunteer", "notes": "退休教师"})
    assert r.status_code == 201, r.get_json()
    a = r.get_json()
    assert a["org_id"] == me["org"]["id"] and a["kind_label"] == "志愿者" and a["status"] == "active"
    assert a["name"] == "刘志愿"
    page = client.get(f"{V1}/grid-assistants?q=刘志愿&page_size=5", headers=h).get_json()
    assert page["total"] == 1 and page["items"][0]["id"] == a["id"] and page["page_size"] == 5
    assert client.get(f"{V1}/grid-assistants?kind=volunteer&page=2&page_size=1", headers=h).get_json()["page"] == 2

    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                    json={"post": "account_manager", "assistant_id": a["id"]})
    assert r.status_code == 422 and "assistant_id" in r.get_json()["errors"]
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                    json={"post": "grid_assistant", "assistant_id": a["id"], "kpi_targets": {"visits": 10}})
    assert r.status_code == 201 and r.get_json()["name"] == "刘志愿" and r.get_json()["user_id"] is None
    r = client.delete(f"{V1}/grid-assistants/{a['id']}", headers=h)
    assert r.status_code == 409 and r.get_json()["code"] == "ASSISTANT_HAS_ASSIGNMENTS"

    r = client.patch(f"{V1}/grid-assistants/{a['id']}", headers=h, json={"status": "inactive", "phone": None})
    assert r.status_code == 200 and r.get_json()["status"] == "inactive" and r.get_json()["phone"] is None
    other = client.post(f"{V1}/grid-assistants", headers=h, json={"name": "临时"}).get_json()
    assert other["kind"] == "other"
    client.patch(f"{V1}/grid-assistants/{other['id']}", headers=h, json={"status": "inactive"})
    r = client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                    json={"post": "grid_assistant", "assistant_id": other["id"]})
    assert r.status_code == 422 and "assistant_id" in r.get_json()["errors"]
    assert client.delete(f"{V1}/grid-assistants/{other['id']}", headers=h).status_code == 204
    assert client.get(f"{V1}/grid-assistants/{other['id']}", headers=h).status_code == 404
    for bad in ({"name": ""}, {"name": "x", "kind": "boss"}, {"name": "x", "phone": "call me"},
                {"name": "x", "org_id": 99999999999}, {"name": "x", "user_id": -1}, {"name": "x" * 65}):
        r = client.post(f"{V1}/grid-assistants", headers=h, json=bad)
        assert r.status_code == 422, (bad, r.get_json())


def test_bad_input_is_422_never_500(client, login, grid):
    h = login(ATTACKER)
    me = client.get(f"{V1}/me", headers=h).get_json()
    url = f"{V1}/grids/{grid['id']}/assignments"
    cases = [
        ({}, "post"), ({"post": "boss", "user_id": me["id"]}, "post"), ({"post": "account_manager"}, "user_id"),
        ({"post": "account_manager", "user_id": me["id"], "assistant_id": 1}, "user_id"),
        ({"post": "account_manager", "user_id": 99999999999}, "user_id"),
        ({"post": "account_manager", "user_id": 2147483647}, "user_id"),
        ({"post": "account_manager", "user_id": me["id"], "kpi_targets": {"x": -1}}, "kpi_targets"),
        ({"post": "account_manager", "user_id": me["id"], "kpi_targets": {"x": "many"}}, "kpi_targets"),
        ({"post": "account_manager", "user_id": me["id"], "kpi_targets": {"x": True}}, "kpi_targets"),
        ({"post": "account_manager", "user_id": me["id"], "kpi_targets": [1, 2]}, "kpi_targets"),
        ({"post": "account_manager", "user_id": me["id"], "kpi_targets": {"": 1}}, "kpi_targets"),
        ({"post": "account_manager", "user_id": me["id"], "valid_from": "yesterday"}, "valid_from"),
        ({"post": "account_manager", "user_id": me["id"], "responsibilities": "x" * 2001}, "responsibilities"),
    ]
    for body, field in cases:
        r = client.post(url, headers=h, json=body)
        assert r.status_code == 422 and field in (r.get_json().get("errors") or {}), (body, r.get_json())
    r = client.post(url, headers=h, data="NaN", content_type="application/json")
    assert r.status_code in (400, 422)
    raw = '{"post": "account_manager", "user_id": ' + str(me["id"]) + ', "kpi_targets": {"x": NaN}}'
    r = client.post(url, headers=h, data=raw, content_type="application/json")
    assert r.status_code in (400, 422)
    assert client.get(f"{url}?include_ended=maybe", headers=h).status_code == 422
    for q in ("user_id=abc", "grid_id=-1", "grid_id=99999999999", "page=0"):
        assert client.get(f"{V1}/handovers?{q}", headers=h).status_code == 422, q
    assert client.post(f"{V1}/grid-assignments/1/end", headers=h, json={}).status_code == 422
    for ident in ("0", "99999999999"):
        assert client.get(f"{V1}/grid-assignments/{ident}", headers=h).status_code == 404
        assert client.get(f"{V1}/grids/{ident}/assignments", headers=h).status_code == 404
        assert client.get(f"{V1}/handovers/{ident}", headers=h).status_code == 404
        assert client.get(f"{V1}/users/{ident}/grid-assignments", headers=h).status_code == 404


def test_deleting_grid_or_user_respects_staffing_history(client, login, grid, db_session):
    admin = login("admin")
    staff = _staff(client, admin, grid["id"])
    manager = next(a for a in staff if a["post"] == "account_manager")
    r = client.delete(f"{V1}/users/{manager['user_id']}", headers=admin)
    assert r.status_code == 409 and r.get_json()["code"] == "USER_HAS_DEPENDENTS"
    # the grid's customers must be moved before it can go (customers issue); staff history cascades
    from geo_core.db import SYSTEM, set_context

    set_context(db_session, SYSTEM)
    db_session.execute(text("UPDATE customers SET grid_id = NULL WHERE grid_id = :g"), {"g": grid["id"]})
    db_session.flush()
    assert client.delete(f"{V1}/grids/{grid['id']}", headers=admin).status_code == 204
    assert client.get(f"{V1}/grid-assignments/{manager['id']}", headers=admin).status_code == 404
