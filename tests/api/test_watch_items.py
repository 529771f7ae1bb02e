"""我的关注: own markers and followed objects; leaders read the team's; nobody edits another's."""

from __future__ import annotations

W = "/api/v1/watch-items"


def _grid_id(client, h, code):
    return next(g["id"] for g in client.get(f"/api/v1/grids?q={code}", headers=h).get_json()["items"]
                if g["code"] == code)


def test_marker_is_placed_in_its_grid_and_counted(client, login):
    h = login("bl_430102")
    centre = client.get(f"/api/v1/grids/{_grid_id(client, h, 'G430102001001')}/summary", headers=h).get_json()
    community = client.get(f"/api/v1/grids/{centre['grid']['id']}", headers=h).get_json()
    from shapely.geometry import shape

    p = shape(community["geometry"]).representative_point()
    r = client.post(W, json={"title": "菜市场老板张姐", "note": "周三进货", "lon": p.x, "lat": p.y}, headers=h)
    assert r.status_code == 201, r.get_json()
    item = r.get_json()
    assert item["grid_id"] == community["id"] and abs(item["lon"] - p.x) < 1e-9
    summary = client.get(f"/api/v1/grids/{community['id']}/summary", headers=h).get_json()
    assert summary["watch_items"] == 1
    gcj = client.get(f"{W}/{item['id']}?crs=gcj02", headers=h).get_json()
    assert abs(gcj["lon"] - p.x) > 0.003  # shifted for Gaode overlays
    feats = client.get(f"{W}/geojson", headers=h).get_json()["features"]
    assert [f["id"] for f in feats] == [item["id"]]


def test_follow_an_object_and_validation(client, login):
    h = login("am_430102_1_1")
    outlet = client.get("/api/v1/orgs?q=OU43010201", headers=h).get_json()["items"][0]
    r = client.post(W, json={"title": "关注本网点", "target_type": "org", "target_id": outlet["id"]}, headers=h)
    assert r.status_code == 201
    assert client.post(W, json={"title": "x"}, headers=h).status_code == 422  # neither place nor target
    assert client.post(W, json={"title": "x", "target_type": "poi"}, headers=h).status_code == 422
    yuelu = _grid_id(client, login("admin"), "G430104007")
    r = client.post(W, json={"title": "x", "target_type": "grid", "target_id": yuelu}, headers=h)
    assert r.status_code == 422  # not visible to him


def test_leader_reads_team_items_but_cannot_change_them(client, login):
    am = login("am_430102_1_1")
    item = client.post(W, json={"title": "我的标注", "lon": 112.99, "lat": 28.19}, headers=am).get_json()
    leader = login("bl_430102")
    assert client.get(f"{W}/{item['id']}", headers=leader).status_code == 200
    team = client.get(f"{W}?mine=false", headers=leader).get_json()
    assert item["id"] in [i["id"] for i in team["items"]]
    assert client.patch(f"{W}/{item['id']}", json={"title": "改"}, headers=leader).status_code == 403
    assert client.delete(f"{W}/{item['id']}", headers=leader).status_code == 403
    other = login("am_430102_1_2")
    assert client.get(f"{W}/{item['id']}", headers=other).status_code == 404  # a peer does not see it
    assert client.get(f"{W}/{item['id']}", headers=login("bl_430104")).status_code == 404
    assert client.delete(f"{W}/{item['id']}", headers=am).status_code == 204
