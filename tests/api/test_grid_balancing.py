"""Balancing what-if: fairer loads, locked grids stay, contiguity kept, applied as hand-overs; scope."""

from __future__ import annotations

PREVIEW = "/api/v1/grid-balancing/preview"


def _user_id(client, h, username):
    return client.get(f"/api/v1/users?q={username}", headers=h).get_json()["items"][0]["id"]


def _managers(client, h):
    return [_user_id(client, h, u) for u in ("am_430102_1_1", "am_430102_2_1", "am_430102_3_1")]


def test_preview_improves_balance_and_keeps_contiguity(client, login):
    h = login("bl_430102")
    r = client.post(PREVIEW, json={"manager_ids": _managers(client, h)}, headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["balance"]["cv_after"] <= body["balance"]["cv_before"]
    assert len(body["managers"]) == 3
    for m in body["managers"]:
        assert m["pieces_after"] <= max(m["pieces_before"], 1) or m["before"]["units"] == 0
    assert sum(m["after"]["units"] for m in body["managers"]) == sum(m["before"]["units"] for m in body["managers"])
    feats = {f["id"]: f["properties"] for f in body["features"]["features"]}
    for move in body["moves"]:
        assert feats[move["grid_id"]]["before"] == move["from_user_id"]
        assert feats[move["grid_id"]]["after"] == move["to_user_id"]


def test_locked_grids_stay_and_apply_writes_handovers(client, login):
    h = login("bl_430102")
    managers = _managers(client, h)
    first = client.post(PREVIEW, json={"manager_ids": managers}, headers=h).get_json()
    if not first["moves"]:
        return  # already balanced: nothing to lock or apply
    locked = [first["moves"][0]["grid_id"]]
    second = client.post(PREVIEW, json={"manager_ids": managers, "locked_grid_ids": locked}, headers=h).get_json()
    assert locked[0] not in {m["grid_id"] for m in second["moves"]}
    r = client.post("/api/v1/grid-balancing/apply", json={"moves": first["moves"], "reason": "季度平衡"}, headers=h)
    assert r.status_code == 200, r.get_json()
    assert len(r.get_json()["handover_ids"]) == len(first["moves"])
    again = client.post(PREVIEW, json={"manager_ids": managers}, headers=h).get_json()
    assert abs(again["balance"]["cv_before"] - first["balance"]["cv_after"]) < 1e-3
    # the same moves again are refused (the giver no longer holds the post) and nothing changes
    r = client.post("/api/v1/grid-balancing/apply", json={"moves": first["moves"], "reason": "重复"}, headers=h)
    assert r.status_code == 422


def test_balancing_scope_and_input(client, login):
    admin = login("admin")
    yuelu_am = _user_id(client, admin, "am_430104_1_1")
    h = login("sbl_430102_1")
    mine = _user_id(client, h, "am_430102_1_1")
    r = client.post(PREVIEW, json={"manager_ids": [mine, yuelu_am]}, headers=h)
    assert r.status_code == 422 and "manager_ids" in r.get_json()["errors"]
    assert client.post(PREVIEW, json={"manager_ids": [mine, mine]}, headers=h).status_code == 422
    assert client.post(PREVIEW, json={"manager_ids": [mine]}, headers=h).status_code == 422
    assert client.post(PREVIEW, json={"manager_ids": "x"}, headers=h).status_code == 422
    assert client.post(PREVIEW, json={"manager_ids": [mine, yuelu_am]},
                       headers=login("am_430102_1_1")).status_code == 403


def test_customers_and_value_join_the_load(client, login, db_session):
    from sqlalchemy import text

    from geo_core.db import SYSTEM, set_context

    h = login("bl_430102")
    managers = _managers(client, h)
    only_customers = {"households": 0, "customers": 1, "value": 0, "area": 0, "travel": 0}
    body = client.post(PREVIEW, json={"manager_ids": managers, "weights": only_customers}, headers=h).get_json()
    assert body["weights"] == only_customers
    set_context(db_session, SYSTEM)
    feats = body["features"]["features"]
    for f in feats:
        n, value = db_session.execute(text(
            "SELECT count(*), coalesce(sum(coalesce(deposit_balance, 0) + coalesce(loan_balance, 0)), 0) "
            "FROM customers c WHERE c.status = 'active' AND c.grid_id IN "
            "(SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :g))"), {"g": f["id"]}).one()
        assert f["properties"]["customers"] == n and abs(f["properties"]["value"] - float(value)) < 0.01
    assert sum(f["properties"]["customers"] for f in feats) > 0
    for m in body["managers"]:
        mine = [f["properties"] for f in feats if f["properties"]["before"] == m["user_id"]
                and len(f["properties"]["shared_by"]) == 1]
        if m["before"]["shared_units"] == 0:
            assert m["before"]["customers"] == sum(p["customers"] for p in mine)
    assert client.post(PREVIEW, json={"manager_ids": managers, "weights": {"customers": -1}},
                       headers=h).status_code == 422
