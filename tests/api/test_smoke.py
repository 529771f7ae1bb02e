def test_login_and_me(client, login):
    r = client.get("/api/v1/me", headers=login("admin"))
    assert r.status_code == 200
    assert r.get_json()["data_scope"] == "all"
