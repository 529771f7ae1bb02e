"""Balancing customers inside a grid: fairer loads, compact, locked customers stay, applied as one audited batch
(all or nothing); scope and input checks."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context

PREVIEW = "/api/v1/grid-balancing/customers/preview"
APPLY = "/api/v1/grid-balancing/customers/apply"
LEADER = "bl_430102"


def _user_id(client, h, username):
    return next(u["id"] for u in client.get(f"/api/v1/users?q={username}", headers=h).get_json()["items"]
                if u["username"] == username)


@pytest.fixture()
def township(client, login, db_session):
    """A 芙蓉 township whose customers are all given to one manager, and two more managers with none there."""
    h = login(LEADER)
    grid = next(g for g in client.get("/api/v1/grids?q=G430102001&level=township", headers=h).get_json()["items"]
                if g["code"] == "G430102001")
    managers = [_user_id(client, h, u) for u in ("am_430102_1_1", "am_430102_1_2", "am_430102_2_1")]
    set_context(db_session, SYSTEM)
    ids = [r[0] for r in db_session.execute(text(
        "SELECT id FROM customers WHERE status = 'active' AND geom IS NOT NULL AND grid_id IN "
        "(SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :g)) ORDER BY id"),
        {"g": grid["id"]}).all()]
    assert len(ids) >= 30
    db_session.execute(text("UPDATE customers SET owner_user_id = :m WHERE id = ANY(:i)"),
                       {"m": managers[0], "i": ids})
    db_session.flush()
    return {"h": h, "grid": grid, "managers": managers, "ids": ids}


def test_preview_spreads_customers_fairly_and_compactly(client, township):
    h, grid, managers = township["h"], township["grid"], township["managers"]
    r = client.post(PREVIEW, json={"grid_id": grid["id"], "manager_ids": managers}, headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["balance"]["cv_before"] > 1 and body["balance"]["cv_after"] < 0.2
    before = {m["user_id"]: m["before"] for m in body["managers"]}
    after = {m["user_id"]: m["after"] for m in body["managers"]}
    assert before[managers[0]]["customers"] == len(township["ids"]) and before[managers[1]]["customers"] == 0
    assert all(a["customers"] > 0 for a in after.values())
    assert sum(a["customers"] for a in after.values()) == len(township["ids"])
    # each manager's share is tighter than the whole township was under one manager
    assert all(a["compactness_m"] < before[managers[0]]["compactness_m"] for a in after.values())
    feats = {f["id"]: f["properties"] for f in body["features"]["features"]}
    assert len(feats) == len(township["ids"])
    assert all(feats[m["customer_id"]]["after"] == m["to_user_id"] for m in body["moves"])
    # in another crs the points shift, the proposal does not
    gcj = client.post(f"{PREVIEW}?crs=gcj02", json={"grid_id": grid["id"], "manager_ids": managers}, headers=h)
    a, b = body["features"]["features"][0], gcj.get_json()["features"]["features"][0]
    assert a["id"] == b["id"] and math.dist(a["geometry"]["coordinates"], b["geometry"]["coordinates"]) > 1e-3
    assert gcj.get_json()["moves"] == body["moves"]


def test_locked_customers_stay(client, township):
    h, grid, managers = township["h"], township["grid"], township["managers"]
    locked = township["ids"][:10]
    body = client.post(PREVIEW, json={"grid_id": grid["id"], "manager_ids": managers,
                                      "locked_customer_ids": locked}, headers=h).get_json()
    assert not set(locked) & {m["customer_id"] for m in body["moves"]}
    assert all(f["properties"]["locked"] == (f["id"] in locked) for f in body["features"]["features"])


def test_apply_moves_owners_in_one_audited_batch(client, township, db_session):
    h, grid, managers = township["h"], township["grid"], township["managers"]
    body = client.post(PREVIEW, json={"grid_id": grid["id"], "manager_ids": managers}, headers=h).get_json()
    rid = "test-customer-balance-apply"
    r = client.post(APPLY, json={"grid_id": grid["id"], "moves": body["moves"], "reason": "季度平衡"},
                    headers={**h, "X-Request-ID": rid})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["moved_customers"] == len(body["moves"])
    set_context(db_session, SYSTEM)
    db_session.expire_all()
    owners = dict(db_session.execute(text("SELECT id, owner_user_id FROM customers WHERE id = ANY(:i)"),
                                     {"i": township["ids"]}).all())
    assert all(owners[m["customer_id"]] == m["to_user_id"] for m in body["moves"])
    assert db_session.scalar(text("SELECT count(*) FROM audit_log WHERE request_id = :r AND entity = 'customers'"),
                             {"r": rid}) == len(body["moves"])
    history = db_session.execute(text("SELECT owner_user_id, source, reason FROM customer_ownerships "
                                      "WHERE customer_id = :c AND valid_to IS NULL"),
                                 {"c": body["moves"][0]["customer_id"]}).one()
    assert tuple(history) == (body["moves"][0]["to_user_id"], "grid_balancing", "网格客户平衡调整：季度平衡")
    handovers = client.get(f"/api/v1/handovers?grid_id={grid['id']}", headers=h).get_json()["items"]
    assert {x["id"] for x in handovers} == set(r.get_json()["handover_ids"])
    assert sum(x["moved_customers"] for x in handovers) == len(body["moves"])
    assert all(x["moved_assignments"] == 0 and x["reason"] == "网格客户平衡调整：季度平衡" for x in handovers)
    again = client.post(PREVIEW, json={"grid_id": grid["id"], "manager_ids": managers}, headers=h).get_json()
    assert abs(again["balance"]["cv_before"] - body["balance"]["cv_after"]) < 1e-3


def test_stale_apply_is_refused_and_changes_nothing(client, township, db_session):
    h, grid, managers = township["h"], township["grid"], township["managers"]
    body = client.post(PREVIEW, json={"grid_id": grid["id"], "manager_ids": managers}, headers=h).get_json()
    moves = body["moves"]
    # the last customer changed hands since the preview: the whole batch is refused
    stale = [*moves[:-1], {**moves[-1], "from_user_id": managers[2]}]
    r = client.post(APPLY, json={"grid_id": grid["id"], "moves": stale, "reason": "季度平衡"}, headers=h)
    assert r.status_code == 422 and "moves" in r.get_json()["errors"]
    set_context(db_session, SYSTEM)
    db_session.expire_all()
    owners = set(db_session.scalars(text("SELECT owner_user_id FROM customers WHERE id = ANY(:i)"),
                                    {"i": township["ids"]}).all())
    assert owners == {managers[0]}
    assert client.get(f"/api/v1/handovers?grid_id={grid['id']}", headers=h).get_json()["total"] == 0


def test_scope_and_input(client, login, township, db_session):
    grid, managers = township["grid"], township["managers"]
    other = login("bl_430104")
    yuelu_am = _user_id(client, other, "am_430104_1_1")
    # another branch's leader: the grid is not his (404), and neither are the customers
    assert client.post(PREVIEW, json={"grid_id": grid["id"], "manager_ids": [yuelu_am, managers[0]]},
                       headers=other).status_code == 404
    moves = [{"customer_id": township["ids"][0], "from_user_id": managers[0], "to_user_id": yuelu_am}]
    assert client.post(APPLY, json={"grid_id": grid["id"], "moves": moves, "reason": "越权"},
                       headers=other).status_code == 404
    h = township["h"]
    # a manager outside the caller's scope cannot receive customers
    r = client.post(APPLY, json={"grid_id": grid["id"], "moves": moves, "reason": "越权"}, headers=h)
    assert r.status_code == 422
    # a customer of another grid cannot be moved through this one
    set_context(db_session, SYSTEM)
    elsewhere, owner = db_session.execute(text(
        "SELECT id, owner_user_id FROM customers WHERE NOT (id = ANY(:i)) AND owner_user_id IS NOT NULL "
        "AND org_id IN (SELECT org_id FROM users WHERE username LIKE 'am_430102_%') LIMIT 1"),
        {"i": township["ids"]}).one()
    to = managers[1] if owner != managers[1] else managers[2]
    r = client.post(APPLY, json={"grid_id": grid["id"], "reason": "越界", "moves": [
        {"customer_id": elsewhere, "from_user_id": owner, "to_user_id": to}]}, headers=h)
    assert r.status_code == 422 and "moves" in r.get_json()["errors"]
    for bad in ({"grid_id": grid["id"], "manager_ids": [managers[0]]},
                {"grid_id": grid["id"], "manager_ids": "x"},
                {"grid_id": 0, "manager_ids": managers},
                {"grid_id": grid["id"], "manager_ids": managers, "weights": {"count": -1}},
                {"grid_id": grid["id"], "manager_ids": managers, "weights": {"count": 0, "value": 0}},
                {"grid_id": grid["id"], "manager_ids": managers, "stay_bonus": 5}):
        assert client.post(PREVIEW, json=bad, headers=h).status_code == 422, bad
    assert client.post(PREVIEW, json={"grid_id": 2**40, "manager_ids": managers}, headers=h).status_code in (404, 422)
    assert client.post(PREVIEW, json={"grid_id": grid["id"], "manager_ids": managers},
                       headers=login("am_430102_1_1")).status_code == 403
