"""Hand-over (移交) with include_customers: the giver's customers in the grid's subtree move to the receiver in
the same audited transaction; org follows the manager; nothing moves when the hand-over fails half-way."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context

V1 = "/api/v1"
LEADER = "sbl_430102_1"


def _staff(client, h, grid_id):
    return client.get(f"{V1}/grids/{grid_id}/assignments", headers=h).get_json()


def _owners(db, ids):
    set_context(db, SYSTEM)
    return dict(db.execute(text("SELECT id, owner_user_id FROM customers WHERE id = ANY(:i)"), {"i": ids}).all())


@pytest.fixture()
def setup(client, login, db_session):
    """A community grid of the leader's sub-branch, its account manager (the giver, owning customers in it),
    a receiver from another outlet of the sub-branch, and the giver's customers elsewhere."""
    h = login(LEADER)
    grids = client.get(f"{V1}/grids?level=community&page_size=50", headers=h).get_json()["items"]
    set_context(db_session, SYSTEM)
    for grid in grids:
        giver = next((a["user_id"] for a in _staff(client, h, grid["id"]) if a["post"] == "account_manager"), None)
        n = db_session.scalar(text("SELECT count(*) FROM customers WHERE grid_id = :g AND owner_user_id = :u"),
                              {"g": grid["id"], "u": giver})
        if giver and n >= 3:
            break
    else:
        pytest.fail("no community grid with an account manager owning customers")
    users = client.get(f"{V1}/users?role=account_manager&page_size=100", headers=h).get_json()["items"]
    giver_org = db_session.scalar(text("SELECT org_id FROM users WHERE id = :u"), {"u": giver})
    taker = next(u for u in users if u["org_id"] != giver_org and u["status"] == "active"
                 and u["id"] not in {a["user_id"] for a in _staff(client, h, grid["id"])})
    return {"h": h, "grid": grid, "giver": giver, "giver_org": giver_org, "taker": taker}


def test_hand_over_moves_the_givers_customers_in_the_subtree(client, login, db_session, setup):
    h, grid, giver, taker = setup["h"], setup["grid"], setup["giver"], setup["taker"]
    set_context(db_session, SYSTEM)
    # a building group inside the community holding one of the giver's customers (the subtree counts) ...
    child = db_session.scalar(text("""
        INSERT INTO grids (code, name, kind, level, org_id, parent_id, geom)
        SELECT code || '-B99', name || '测试组', 'physical', 'building_group', org_id, id,
               ST_Multi(ST_Intersection(geom, ST_Buffer(ST_PointOnSurface(geom), 0.0005)))
        FROM grids WHERE id = :g RETURNING id"""), {"g": grid["id"]})
    mine = [r[0] for r in db_session.execute(text(
        "SELECT id FROM customers WHERE grid_id = :g AND owner_user_id = :u ORDER BY id"),
        {"g": grid["id"], "u": giver}).all()]
    db_session.execute(text("UPDATE customers SET grid_id = :c WHERE id = :i"), {"c": child, "i": mine[0]})
    # ... a customer of the giver outside the grid (stays), another manager's customer in the grid (stays),
    # and one of the giver's customers booked to another org (moves, keeps its org)
    outside = db_session.scalar(text(
        "SELECT id FROM customers WHERE owner_user_id = :u AND grid_id <> :g AND grid_id <> :c LIMIT 1"),
        {"u": giver, "g": grid["id"], "c": child})
    if outside is None:
        outside = db_session.scalar(text("SELECT id FROM customers WHERE grid_id <> :g ORDER BY id LIMIT 1"),
                                    {"g": grid["id"]})
        db_session.execute(text("UPDATE customers SET owner_user_id = :u WHERE id = :i"), {"u": giver, "i": outside})
    others = db_session.scalar(text("SELECT id FROM customers WHERE grid_id = :g AND owner_user_id IS DISTINCT FROM :u "
                                    "LIMIT 1"), {"g": grid["id"], "u": giver})
    if others is None:
        others = mine.pop()
        db_session.execute(text("UPDATE customers SET owner_user_id = NULL WHERE id = :i"), {"i": others})
    branch_org = db_session.scalar(text("SELECT parent_id FROM orgs WHERE id = :o"), {"o": setup["giver_org"]})
    db_session.execute(text("UPDATE customers SET org_id = :o WHERE id = :i"), {"o": branch_org, "i": mine[1]})
    db_session.flush()
    others_owner = _owners(db_session, [others])[others]

    rid = "test-handover-customers"
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers={**h, "X-Request-ID": rid}, json={
        "from_user_id": giver, "to_user_id": taker["id"], "reason": "调岗", "include_customers": True})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["moved_customers"] == len(mine)

    set_context(db_session, SYSTEM)
    db_session.expire_all()
    rows = dict((i, (o, org)) for i, o, org in db_session.execute(text(
        "SELECT id, owner_user_id, org_id FROM customers WHERE id = ANY(:i)"), {"i": mine}).all())
    assert all(owner == taker["id"] for owner, _ in rows.values())
    assert rows[mine[0]][1] == taker["org_id"]  # org followed the manager
    assert rows[mine[1]][1] == branch_org  # booked elsewhere: org kept
    assert _owners(db_session, [outside])[outside] == giver
    assert _owners(db_session, [others])[others] == others_owner
    audited = db_session.scalar(text("SELECT count(*) FROM audit_log WHERE request_id = :r AND entity = 'customers' "
                                     "AND action = 'update'"), {"r": rid})
    assert audited == len(mine)
    # the ownership history records why (customer_ownerships, written by its trigger)
    history = db_session.execute(text("SELECT owner_user_id, source, reason FROM customer_ownerships "
                                      "WHERE customer_id = :c AND valid_to IS NULL"), {"c": mine[0]}).one()
    assert tuple(history) == (taker["id"], "grid_handover", "移交: 调岗")
    # the receiver's customer list (by ownership) now holds them
    listed = client.get(f"{V1}/customers?owner_user_id={taker['id']}&page_size=100", headers=h).get_json()
    assert set(mine) <= {c["id"] for c in listed["items"]}


def test_without_include_customers_nothing_moves(client, db_session, setup):
    h, grid, giver, taker = setup["h"], setup["grid"], setup["giver"], setup["taker"]
    set_context(db_session, SYSTEM)
    mine = [r[0] for r in db_session.execute(text(
        "SELECT id FROM customers WHERE grid_id = :g AND owner_user_id = :u"), {"g": grid["id"], "u": giver}).all()]
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers=h, json={
        "from_user_id": giver, "to_user_id": taker["id"], "reason": "调岗"})
    assert r.status_code == 201 and r.get_json()["moved_customers"] == 0
    assert set(_owners(db_session, mine).values()) == {giver}


def test_failed_hand_over_leaves_owners_unchanged(client, db_session, setup):
    """Customers move first; the receiver already holds the account-manager post, so the post move collides
    (409) and the whole transaction, customer moves included, is undone."""
    h, grid, giver, taker = setup["h"], setup["grid"], setup["giver"], setup["taker"]
    assert client.post(f"{V1}/grids/{grid['id']}/assignments", headers=h,
                       json={"post": "account_manager", "user_id": taker["id"]}).status_code == 201
    set_context(db_session, SYSTEM)
    mine = [r[0] for r in db_session.execute(text(
        "SELECT id FROM customers WHERE grid_id = :g AND owner_user_id = :u"), {"g": grid["id"], "u": giver}).all()]
    rid = "test-handover-customers-atomic"
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers={**h, "X-Request-ID": rid}, json={
        "from_user_id": giver, "to_user_id": taker["id"], "reason": "调岗", "include_customers": True})
    assert r.status_code == 409 and r.get_json()["code"] == "HANDOVER_CONFLICT"
    db_session.expire_all()
    assert set(_owners(db_session, mine).values()) == {giver}
    assert db_session.scalar(text("SELECT count(*) FROM audit_log WHERE request_id = :r"), {"r": rid}) == 0


def test_out_of_scope_leader_cannot_move_customers(client, login, setup):
    grid, giver, taker = setup["grid"], setup["giver"], setup["taker"]
    r = client.post(f"{V1}/grids/{grid['id']}/handover", headers=login("bl_430104"), json={
        "from_user_id": giver, "to_user_id": taker["id"], "reason": "x", "include_customers": True})
    assert r.status_code == 404
