"""Bad input never gives a 500: malformed JSON, wrong types, unknown ids, huge ids, missing auth."""

from __future__ import annotations

import pytest

BAD_BODIES = [
    ("{not json", "application/json"),
    ("[]", "application/json"),
    ('{"name": {"nested": [1, 2]}, "org_id": "x", "level": 5, "parent_id": -1}', "application/json"),
    ('{"username": null, "password": null}', "application/json"),
    ("name=x", "application/x-www-form-urlencoded"),
    ('"just a string"', "application/json"),
    ('{"code": "' + "x" * 5000 + '"}', "application/json"),
]


def _rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield method, rule.rule


def _concrete(rule: str, value: str) -> str:
    import re

    return re.sub(r"<(?:int:)?[a-z_]+>", value, rule)


@pytest.mark.parametrize("body,ctype", BAD_BODIES)
def test_no_endpoint_answers_bad_bodies_with_500(app, client, login, body, ctype):
    h = login("admin")
    for method, rule in _rules(app):
        for ident in ("1", "999999", "99999999999"):
            url = _concrete(rule, ident)
            r = client.open(url, method=method, data=body, content_type=ctype, headers=h)
            assert r.status_code < 500, (method, url, r.status_code, r.get_data(as_text=True)[:300])
            if r.status_code >= 400:
                assert {"code", "message", "status"} <= set(r.get_json())


def test_every_api_endpoint_requires_auth_unless_public(app, client):
    public = {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/sso"}
    for method, rule in _rules(app):
        r = client.open(_concrete(rule, "1"), method=method, json={})
        if rule in public:
            assert r.status_code in (400, 401, 403, 422), rule
        else:
            assert r.status_code == 401, (method, rule, r.status_code)
            assert r.get_json()["code"] == "AUTH_REQUIRED"


@pytest.mark.parametrize("query", [
    "page=0", "page=abc", "page_size=100000", "q=" + "x" * 500, "level=nope", "org_id=-5", "org_id=1e9",
    "format=pdf", "under_id=99999999999",
])
def test_bad_query_parameters_are_422(client, login, query):
    h = login("admin")
    for path in ("/api/v1/orgs", "/api/v1/users", "/api/v1/users/export", "/api/v1/orgs/export"):
        r = client.get(f"{path}?{query}", headers=h)
        assert r.status_code in (200, 422), (path, query, r.status_code)


def test_unknown_route_and_method_are_json(client, login):
    r = client.get("/api/v1/nope", headers=login("admin"))
    assert r.status_code == 404 and r.get_json()["code"] == "NOT_FOUND"
    r = client.put("/api/v1/me", headers=login("admin"))
    assert r.status_code == 405 and r.get_json()["code"] == "METHOD_NOT_ALLOWED"
