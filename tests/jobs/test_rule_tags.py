"""Rule tag recomputation on a real RQ worker: set-based insert of missing / delete of no-longer-matching tags,
reporting added/removed, limited to the tag's org subtree, idempotent, audited in an elevated job context.

The worker runs in its own transactions, so these tests commit (through a client whose requests commit) and
restore what they changed afterwards."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import text

from geo_core.db import make_session_factory
from geo_core.tags.service import recompute as recompute_all
from jobs.queues import DEFAULT
from tests.committing import committing_client

T = "/api/v1/tags"
FURONG = "(SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs WHERE code = 'BR430102'))"


@pytest.fixture()
def live(app, redis_conn, owner_engine):
    """(client, login) whose requests commit, the app on the test Redis; created tags and changed balances are
    restored afterwards."""
    with owner_engine.connect() as conn:
        first_tag = conn.scalar(text("SELECT coalesce(max(id), 0) FROM tags"))
        balances = conn.execute(text("SELECT id, deposit_balance FROM customers")).all()
    with committing_client(app, redis_conn) as (client, login):
        try:
            yield client, login
        finally:
            with owner_engine.begin() as conn:
                conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
                conn.execute(text("DELETE FROM tags WHERE id > :t"), {"t": first_tag})
                conn.execute(text("UPDATE customers c SET deposit_balance = b.v FROM unnest(CAST(:i AS int[]), "
                                  "CAST(:v AS numeric[])) b(i, v) WHERE c.id = b.i AND c.deposit_balance IS DISTINCT "
                                  "FROM b.v"), {"i": [i for i, _ in balances], "v": [v for _, v in balances]})
            with make_session_factory(owner_engine).begin() as session:  # the seeded rule tags as they were
                recompute_all(session)


def run_worker(redis_conn) -> None:
    SimpleWorker([Queue(DEFAULT, connection=redis_conn)], connection=redis_conn).work(burst=True)


def recompute(client, h, redis_conn, tag_id: int | None = None) -> dict:
    url = f"{T}/{tag_id}/recompute" if tag_id is not None else f"{T}/recompute"
    r = client.post(url, headers=h)
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    run_worker(redis_conn)
    job = Job.fetch(job_id, connection=redis_conn)
    assert job.is_finished, job.latest_result()
    polled = client.get(f"/api/v1/jobs/{job_id}", headers=h).get_json()
    assert polled["status"] == "finished" and polled["result"] == job.return_value()
    return {"job_id": job_id, **job.return_value()}


def carriers(owner_engine, tag_id: int) -> set[int]:
    with owner_engine.connect() as conn:
        return set(conn.scalars(text("SELECT customer_id FROM customer_tags WHERE tag_id = :t"), {"t": tag_id}))


def expected(owner_engine, where: str) -> set[int]:
    with owner_engine.connect() as conn:
        return set(conn.scalars(text(f"SELECT id FROM customers c WHERE c.status = 'active' AND {where}")))


def test_recompute_adds_and_removes_inside_the_tag_org(live, owner_engine, redis_conn):
    client, login = live
    h = login("bl_430102")
    rule = {"all": [{"field": "deposit_balance", "op": ">=", "value": 200000},
                    {"field": "products", "op": "contains", "value": "WEALTH"}]}
    r = client.post(T, json={"code": "furong_wealth", "name": "芙蓉理财大户", "kind": "rule", "rule": rule}, headers=h)
    assert r.status_code == 201, r.get_json()
    tag = r.get_json()
    where = f"c.deposit_balance >= 200000 AND 'WEALTH' = ANY(c.products) AND c.org_id IN {FURONG}"
    want = expected(owner_engine, where)
    everywhere = expected(owner_engine, "c.deposit_balance >= 200000 AND 'WEALTH' = ANY(c.products)")
    assert 0 < len(want) < len(everywhere)  # a branch's tag covers the branch only
    result = recompute(client, h, redis_conn, tag["id"])
    assert (result["added"], result["removed"]) == (len(want), 0)
    assert carriers(owner_engine, tag["id"]) == want
    detail = client.get(f"{T}/{tag['id']}", headers=h).get_json()
    assert (detail["computed_added"], detail["computed_removed"], detail["customer_count"]) == (len(want), 0, len(want))
    # one customer drops out, one comes in: +1 -1, nothing else touched
    gone = min(want)
    with owner_engine.begin() as conn:
        newcomer = conn.scalar(text(
            f"SELECT id FROM customers c WHERE c.org_id IN {FURONG} AND c.status = 'active' "
            "AND 'WEALTH' = ANY(c.products) AND c.deposit_balance < 200000 ORDER BY id LIMIT 1"))
        conn.execute(text("UPDATE customers SET deposit_balance = 1000 WHERE id = :i"), {"i": gone})
        conn.execute(text("UPDATE customers SET deposit_balance = 250000 WHERE id = :i"), {"i": newcomer})
    result = recompute(client, h, redis_conn, tag["id"])
    assert (result["added"], result["removed"]) == (1, 1)
    assert carriers(owner_engine, tag["id"]) == (want - {gone}) | {newcomer}
    assert recompute(client, h, redis_conn, tag["id"])["tags"] == [
        {"tag_id": tag["id"], "code": "furong_wealth", "added": 0, "removed": 0, "total": len(want)}]
    # audited: the elevation with its reason, one summary row per statement, the recompute event with counts
    me = client.get("/api/v1/me", headers=h).get_json()["id"]
    with owner_engine.connect() as conn:
        rows = conn.execute(text("SELECT action, detail FROM audit_log WHERE request_id = :j AND actor_user_id = :u "
                                 "ORDER BY id"), {"j": result["job_id"], "u": me}).all()
    actions = [a for a, _ in rows]
    assert actions[0] == "elevate" and "recompute_rule_tags" in rows[0][1]["reason"]
    assert {"insert_bulk", "delete_bulk", "recompute"} <= set(actions)
    event = next(d for a, d in rows if a == "recompute")
    assert (event["added"], event["removed"]) == (1, 1)
    # other branches cannot recompute it; only scope-all admins recompute everything
    assert client.post(f"{T}/{tag['id']}/recompute", headers=login("bl_430104")).status_code == 404
    assert client.post(f"{T}/recompute", headers=h).status_code == 403


def test_recompute_all_is_idempotent_and_matches_the_rules(live, owner_engine, redis_conn):
    client, login = live
    h = login("admin")
    first = recompute(client, h, redis_conn)
    codes = {t["code"] for t in first["tags"]}
    assert {"high_net_worth", "young_adult", "catering_merchant", "near_outlet_500m"} <= codes
    assert first["added"] == first["removed"] == 0  # the seed computed them already
    rich = next(t for t in first["tags"] if t["code"] == "high_net_worth")
    assert carriers(owner_engine, rich["tag_id"]) == expected(owner_engine, "c.deposit_balance >= 500000")
    with owner_engine.begin() as conn:
        target = conn.scalar(text("SELECT id FROM customers WHERE deposit_balance < 500000 ORDER BY id LIMIT 1"))
        conn.execute(text("UPDATE customers SET deposit_balance = 800000 WHERE id = :i"), {"i": target})
    second = recompute(client, h, redis_conn)
    assert next(t for t in second["tags"] if t["code"] == "high_net_worth")["added"] == 1
    assert target in carriers(owner_engine, rich["tag_id"])
    assert recompute(client, h, redis_conn)["added"] == 0
