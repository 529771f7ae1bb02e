"""A test client whose requests commit (outside the per-test transaction), with the app on the test Redis: for
tests that run jobs on a real RQ worker, which must see the rows the request wrote. The caller snapshots and
cleans up what its test creates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import DEMO_PASSWORD

Login = Callable[[str], dict[str, str]]


@contextmanager
def committing_client(app: Flask, redis_conn: object) -> Iterator[tuple[FlaskClient, Login]]:
    state = app.extensions["gridmarket"]
    original, state.redis = state.redis, redis_conn
    client, tokens = app.test_client(), {}

    def login(username: str) -> dict[str, str]:
        if username not in tokens:
            r = client.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.get_json()
            tokens[username] = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
        return tokens[username]

    try:
        yield client, login
    finally:
        state.redis = original
