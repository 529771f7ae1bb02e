"""Reminders: the daily generation on the seeded demo (feed-like accounts, loans, snapshots, events), idempotence,
missed marking, the list / done / statistics API and data scope attacked from another branch."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context
from geo_core.reminders.generate import ReminderRules, generate_reminders
from geo_core.reminders.lunar import lunar_to_solar, solar_to_lunar

R = "/api/v1/reminders"
AS_OF = date(2026, 11, 24)  # the demo's holdings_as_of / latest snapshot day


@pytest.fixture()
def system(db_session):
    set_context(db_session, SYSTEM)
    return db_session


def generate(session, day: date, **rules) -> dict[str, int]:
    set_context(session, SYSTEM)  # API calls on the same connection leave their own scope behind
    counts = generate_reminders(session, day, ReminderRules(**rules))
    session.flush()
    return counts


def me(client, h) -> dict:
    return client.get("/api/v1/me", headers=h).get_json()


def test_generation_covers_every_kind_and_is_idempotent(system):
    first = generate(system, AS_OF)
    assert first["birthday"] > 0 and first["balance_change"] > 0 and first["loan_due"] > 0
    assert first["loan_overdue"] > 0 and first["missed"] == 0
    total = system.scalar(text("SELECT count(*) FROM reminders"))
    assert total == sum(v for k, v in first.items() if k != "missed")
    again = generate(system, AS_OF)
    assert set(again.values()) == {0}  # unique (customer, kind, ref, due date): nothing twice
    assert system.scalar(text("SELECT count(*) FROM reminders")) == total
    # each reminder goes to the customer's manager, in the customer's org
    assert system.scalar(text("SELECT count(*) FROM reminders r JOIN customers c ON c.id = r.customer_id "
                              "WHERE r.owner_user_id <> c.owner_user_id OR r.org_id <> c.org_id")) == 0
    # windows: loans due within 7 days; birthdays within 3; balance changes of the snapshot day
    rows = system.execute(text("SELECT kind::text, min(due_date), max(due_date) FROM reminders GROUP BY 1")).all()
    window = {k: (lo, hi) for k, lo, hi in rows}
    assert AS_OF <= window["loan_due"][0] and window["loan_due"][1] <= date(2026, 12, 1)
    assert AS_OF <= window["birthday"][0] and window["birthday"][1] <= date(2026, 11, 27)
    assert window["balance_change"] == window["loan_overdue"] == (AS_OF, AS_OF)
    # an overdue episode is reminded once, however many days the run sees it again
    assert generate(system, date(2026, 11, 26))["loan_overdue"] == 0
    change = system.execute(text("SELECT title, detail FROM reminders WHERE kind = 'balance_change' LIMIT 1")).one()
    assert "存款减少" in change[0] and change[1]["deposit_before"] - change[1]["deposit_after"] >= 80000
    # a higher threshold finds nothing new; a loan-due window of 0 days neither
    assert generate(system, AS_OF, balance_change_min=10**9, loan_due_days=0)["balance_change"] == 0


def test_holidays_and_custom_events(system):
    counts = generate(system, date(2027, 2, 1))  # 春节 2027-02-06 is within the 7-day look-ahead
    assert counts["holiday"] > 0
    rows = system.execute(text(
        "SELECT DISTINCT r.ref, r.due_date FROM reminders r WHERE r.kind = 'holiday'")).all()
    assert [tuple(r) for r in rows] == [("spring_festival", date(2027, 2, 6))]
    assert system.scalar(text(
        "SELECT count(*) FROM reminders r JOIN customers c ON c.id = r.customer_id WHERE r.kind = 'holiday' "
        "AND (c.category <> 'formal' OR c.deposit_balance < 50000)")) == 0
    # the demo's events of am_430102_1_1: weekly restocking (1 day before), anniversaries (3 and 7 days before)
    counts = generate(system, date(2026, 11, 26))
    events = system.execute(text(
        "SELECT e.kind::text, r.due_date, r.title FROM reminders r JOIN customer_events e ON r.ref = e.id::text "
        "WHERE r.kind = 'custom_event' ORDER BY 2")).all()
    assert counts["custom_event"] == 3
    assert [(k, d) for k, d, _ in events] == [("restock", date(2026, 11, 27)), ("anniversary", date(2026, 11, 28)),
                                              ("anniversary", date(2026, 12, 1))]
    assert generate(system, date(2026, 12, 3))["custom_event"] == 1  # the next restocking day, 2026-12-04
    # the lunar birthday recurs on its lunar month/day: in 2027 on another solar date than in 1975
    _, month, day, _ = solar_to_lunar(date(1975, 9, 16))
    expected = lunar_to_solar(2027, month, day)
    assert expected != date(2027, 9, 16)
    assert generate(system, expected - timedelta(days=3))["custom_event"] >= 1
    lunar = system.execute(text("SELECT r.due_date FROM reminders r JOIN customer_events e ON r.ref = e.id::text "
                                "WHERE e.calendar = 'lunar'")).scalars().all()
    assert lunar == [expected]


def test_missed_after_grace_and_done_is_final(system, client, login):
    generate(system, AS_OF)
    h = login("am_430102_1_1")
    mine = client.get(f"{R}?status=open&page_size=500", headers=h).get_json()
    assert mine["total"] > 0
    first = mine["items"][0]
    r = client.post(f"{R}/{first['id']}/done", json={"note": "已电话联系，客户下周来网点"}, headers=h)
    assert r.status_code == 200, r.get_json()
    done = r.get_json()
    assert done["status"] == "done" and done["done_by"] == me(client, h)["id"] and done["done_at"]
    assert client.post(f"{R}/{first['id']}/done", json={"note": "再次"}, headers=h).status_code == 409
    missed = generate(system, date(2026, 12, 31))["missed"]
    assert missed > 0
    statuses = {i["id"]: i["status"] for i in client.get(f"{R}?page_size=500&due_to=2026-12-01",
                                                         headers=h).get_json()["items"]}
    assert statuses[first["id"]] == "done" and set(statuses.values()) == {"done", "missed"}
    other = next(i for i, s in statuses.items() if s == "missed")
    r = client.post(f"{R}/{other}/done", json={"note": "补处理"}, headers=h)
    assert r.status_code == 409 and r.get_json()["code"] == "REMINDER_CLOSED"


def test_done_needs_a_note(system, client, login):
    generate(system, AS_OF)
    h = login("am_430102_1_1")
    rid = client.get(R, headers=h).get_json()["items"][0]["id"]
    for body in ({}, {"note": ""}, {"note": 5}, {"note": "x" * 1001}):
        r = client.post(f"{R}/{rid}/done", json=body, headers=h)
        assert r.status_code == 422 and "note" in str(r.get_json()), body
    assert client.get(f"{R}/{rid}", headers=h).get_json()["status"] == "open"


def test_scope_mine_team_and_other_branch(system, client, login):
    generate(system, AS_OF)
    am, sbl, bl, other = (login(u) for u in ("am_430102_1_1", "sbl_430102_1", "bl_430102", "bl_430104"))
    am_id = me(client, am)["id"]
    mine = client.get(f"{R}?page_size=500", headers=am).get_json()
    team = client.get(f"{R}?scope=team&page_size=500", headers=am).get_json()
    assert mine["total"] > 0 and {i["owner_user_id"] for i in mine["items"]} == {am_id}
    assert team["total"] == mine["total"]  # scope self: a manager's team is himself
    furong = client.get(f"{R}?scope=team&page_size=1", headers=bl).get_json()["total"]
    sub = client.get(f"{R}?scope=team&page_size=1", headers=sbl).get_json()["total"]
    assert furong > sub > 0
    set_context(system, SYSTEM)
    all_rows = system.scalar(text("SELECT count(*) FROM reminders"))
    assert furong < all_rows
    # 岳麓 sees none of 芙蓉's reminders by list, filter, id, done or statistics
    rid = mine["items"][0]["id"]
    assert client.get(f"{R}/{rid}", headers=other).status_code == 404
    assert client.post(f"{R}/{rid}/done", json={"note": "越权处理"}, headers=other).status_code == 404
    assert client.get(f"{R}?scope=team&owner_user_id={am_id}", headers=other).get_json()["total"] == 0
    furong_org = me(client, bl)["org"]["id"]
    assert client.get(f"{R}?scope=team&org_id={furong_org}", headers=other).get_json()["total"] == 0
    stats = client.get(f"{R}/stats?date_from=2026-11-01&date_to=2026-12-31&group_by=owner",
                       headers=other).get_json()
    assert am_id not in {row["id"] for row in stats["rows"]}
    # a grid assistant has no reminder permission
    assert client.get(R, headers=login("ga_430102_1")).status_code == 403


def test_statistics_handled_vs_missed(system, client, login):
    generate(system, AS_OF)
    am, bl = login("am_430102_1_1"), login("bl_430102")
    items = client.get(f"{R}?page_size=500", headers=am).get_json()["items"]
    for item in items[:2]:
        assert client.post(f"{R}/{item['id']}/done", json={"note": "已上门拜访"}, headers=am).status_code == 200
    generate(system, date(2026, 12, 31))
    am_id = me(client, am)["id"]
    period = "date_from=2026-11-01&date_to=2026-12-31"
    by_owner = client.get(f"{R}/stats?{period}", headers=bl).get_json()
    row = next(r for r in by_owner["rows"] if r["id"] == am_id)
    assert row["done"] == 2 and row["missed"] == len(items) - 2 and row["open"] == 0
    assert row["handled_rate"] == round(2 / len(items), 4)
    set_context(system, SYSTEM)
    with_owner = system.scalar(text("SELECT count(*) FROM reminders r JOIN users u ON u.id = r.owner_user_id "
                                    "JOIN orgs o ON o.id = r.org_id WHERE o.code LIKE '%430102%' "
                                    "AND r.due_date BETWEEN '2026-11-01' AND '2026-12-31'"))
    assert by_owner["totals"]["total"] == with_owner
    by_org = client.get(f"{R}/stats?{period}&group_by=org", headers=bl).get_json()
    assert sum(r["total"] for r in by_org["rows"]) == by_owner["totals"]["total"]
    mine = client.get(f"{R}/stats?{period}", headers=am).get_json()
    assert [r["id"] for r in mine["rows"]] == [am_id]
    bad = client.get(f"{R}/stats?date_from=2026-12-31&date_to=2026-11-01", headers=bl)
    assert bad.status_code == 422 and "date_to" in str(bad.get_json())
