"""Custom customer events (set while profiling) under /api/v1/customers/{id}/events: CRUD, lunar dates,
validation, scope."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from geo_core.db import SYSTEM, set_context
from geo_core.reminders.events import BANK_TZ
from geo_core.reminders.lunar import lunar_to_solar, solar_to_lunar


def my_customer(db_session) -> int:
    set_context(db_session, SYSTEM)
    return db_session.scalar(text(
        "SELECT c.id FROM customers c JOIN users u ON u.id = c.owner_user_id WHERE u.username = 'am_430102_1_1' "
        "AND c.kind = 'company' ORDER BY c.id LIMIT 1"))


def test_crud_and_lunar_dates(client, login, db_session):
    cid = my_customer(db_session)
    h = login("am_430102_1_1")
    base = f"/api/v1/customers/{cid}/events"
    r = client.post(base, json={"kind": "restock", "title": "进货日", "event_date": "2026-12-02",
                                "recurrence": "weekly", "remind_days_before": 1, "note": "周三进货"}, headers=h)
    assert r.status_code == 201, r.get_json()
    restock = r.get_json()
    assert (restock["recurrence"], restock["calendar"], restock["lunar"]) == ("weekly", "solar", None)
    r = client.post(base, json={"kind": "birthday_custom", "title": "老板农历生日", "lunar_month": 8, "lunar_day": 15,
                                "recurrence": "yearly"}, headers=h)
    assert r.status_code == 201, r.get_json()
    lunar = r.get_json()
    assert lunar["calendar"] == "lunar" and lunar["lunar"] == {"month": 8, "day": 15, "is_leap_month": False}
    year = solar_to_lunar(datetime.now(BANK_TZ).date())[0]
    assert lunar["event_date"] == lunar_to_solar(year, 8, 15).isoformat()
    listing = client.get(base, headers=h).get_json()
    assert listing["total"] >= 2 and {e["id"] for e in listing["items"]} >= {restock["id"], lunar["id"]}
    r = client.patch(f"{base}/{restock['id']}", json={"remind_days_before": 2, "title": "周三进货"}, headers=h)
    assert r.status_code == 200 and r.get_json()["remind_days_before"] == 2
    assert client.delete(f"{base}/{restock['id']}", headers=h).status_code == 204
    assert client.get(f"{base}/{restock['id']}", headers=h).status_code == 404
    set_context(db_session, SYSTEM)
    audited = db_session.scalar(text("SELECT count(*) FROM audit_log WHERE entity = 'customer_events' "
                                     "AND entity_id = :i"), {"i": str(restock["id"])})
    assert audited == 3  # insert, update, delete


def test_validation(client, login, db_session):
    cid = my_customer(db_session)
    h = login("am_430102_1_1")
    base = f"/api/v1/customers/{cid}/events"
    for body, field in (({"kind": "party", "title": "x", "event_date": "2026-12-01"}, "kind"),
                        ({"kind": "other", "title": "", "event_date": "2026-12-01"}, "title"),
                        ({"kind": "other", "title": "x", "event_date": "2026-02-30"}, "event_date"),
                        ({"kind": "other", "title": "x"}, "event_date"),
                        ({"kind": "other", "title": "x", "lunar_month": 8}, "lunar_day"),
                        ({"kind": "other", "title": "x", "lunar_month": 13, "lunar_day": 1}, "lunar_month"),
                        ({"kind": "other", "title": "x", "event_date": "2026-12-01", "calendar": "lunar",
                          "recurrence": "weekly"}, "recurrence"),
                        ({"kind": "other", "title": "x", "event_date": "2026-12-01", "remind_days_before": 99},
                         "remind_days_before")):
        r = client.post(base, json=body, headers=h)
        assert r.status_code == 422 and field in str(r.get_json()), (body, r.get_json())


def test_other_branch_gets_404(client, login, db_session):
    cid = my_customer(db_session)
    base = f"/api/v1/customers/{cid}/events"
    r = client.post(base, json={"kind": "gaokao", "title": "孩子高考", "event_date": "2027-06-07"},
                    headers=login("am_430102_1_1"))
    event_id = r.get_json()["id"]
    other = login("bl_430104")
    assert client.get(base, headers=other).status_code == 404
    assert client.get(f"{base}/{event_id}", headers=other).status_code == 404
    assert client.patch(f"{base}/{event_id}", json={"title": "改"}, headers=other).status_code == 404
    assert client.delete(f"{base}/{event_id}", headers=other).status_code == 404
    assert client.post(base, json={"kind": "other", "title": "x", "event_date": "2027-01-01"},
                       headers=other).status_code == 404
    # another customer's id with this event id is not a way in either
    assert client.get(f"/api/v1/customers/{cid + 1}/events/{event_id}",
                      headers=login("bl_430102")).status_code == 404
