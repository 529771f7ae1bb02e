"""Custom customer events set while profiling (a merchant's restocking day, a child's gaokao date, a lunar
birthday): CRUD under their customer, who must be visible to the caller (else 404)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_core.customers.service import get_customer
from geo_core.errors import NotFound, ValidationFailed
from geo_core.paging import valid_id
from geo_core.reminders.lunar import lunar_to_solar, solar_to_lunar
from geo_core.reminders.models import CalendarKind, CustomerEvent, EventKind, Recurrence
from geo_core.scope import Principal

BANK_TZ = ZoneInfo("Asia/Shanghai")

FIELDS = ("kind", "title", "event_date", "calendar", "recurrence", "remind_days_before", "note")


def list_events(session: Session, customer_id: int) -> list[CustomerEvent]:
    get_customer(session, customer_id)
    return list(session.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == customer_id)
                                .order_by(CustomerEvent.event_date, CustomerEvent.id)))


def get_event(session: Session, customer_id: int, event_id: int) -> CustomerEvent:
    get_customer(session, customer_id)
    event = session.get(CustomerEvent, event_id) if valid_id(event_id) else None
    if event is None or event.customer_id != customer_id:
        raise NotFound("事件不存在", code="EVENT_NOT_FOUND")
    return event


def _resolve_date(data: dict[str, Any], today: date) -> None:
    """A lunar date (lunar_month/lunar_day[/is_leap_month]) becomes the solar date it falls on this lunar year."""
    month, day = data.pop("lunar_month", None), data.pop("lunar_day", None)
    leap = bool(data.pop("is_leap_month", False))
    if month is None and day is None:
        return
    if month is None or day is None:
        raise ValidationFailed.on("lunar_month" if month is None else "lunar_day", "农历月、日须同时填写")
    data["calendar"] = CalendarKind.lunar.value
    year = solar_to_lunar(today)[0]
    solar = lunar_to_solar(year, month, day, leap)
    if solar is None:
        raise ValidationFailed.on("lunar_day", "农历日期无效")
    data["event_date"] = solar


def _check(event: CustomerEvent) -> None:
    if event.calendar is CalendarKind.lunar and event.recurrence not in (Recurrence.once, Recurrence.yearly):
        raise ValidationFailed.on("recurrence", "农历事件只能是一次性或每年重复")
    if event.event_date is None:
        raise ValidationFailed.on("event_date", "必填")


def create_event(session: Session, actor: Principal, customer_id: int, data: dict[str, Any],
                 today: date | None = None) -> CustomerEvent:
    get_customer(session, customer_id)
    data = dict(data)
    _resolve_date(data, today or datetime.now(BANK_TZ).date())
    event = CustomerEvent(customer_id=customer_id, created_by=actor.user_id, updated_by=actor.user_id,
                          kind=EventKind(data["kind"]), title=data["title"], event_date=data.get("event_date"),
                          calendar=CalendarKind(data.get("calendar", "solar")),
                          recurrence=Recurrence(data.get("recurrence", "once")),
                          remind_days_before=data.get("remind_days_before", 3), note=data.get("note"))
    _check(event)
    session.add(event)
    session.flush()
    return event


def update_event(session: Session, actor: Principal, customer_id: int, event_id: int, data: dict[str, Any],
                 today: date | None = None) -> CustomerEvent:
    event = get_event(session, customer_id, event_id)
    data = dict(data)
    _resolve_date(data, today or datetime.now(BANK_TZ).date())
    for key in FIELDS:
        if key in data:
            value = data[key]
            if key == "kind":
                value = EventKind(value)
            elif key == "calendar":
                value = CalendarKind(value)
            elif key == "recurrence":
                value = Recurrence(value)
            setattr(event, key, value)
    _check(event)
    event.updated_by = actor.user_id
    session.flush()
    return event


def delete_event(session: Session, customer_id: int, event_id: int) -> None:
    session.delete(get_event(session, customer_id, event_id))
    session.flush()


def lunar_of(event: CustomerEvent) -> dict[str, Any] | None:
    if event.calendar is not CalendarKind.lunar:
        return None
    _, month, day, leap = solar_to_lunar(event.event_date)
    return {"month": month, "day": day, "is_leap_month": leap}
