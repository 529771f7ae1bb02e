"""Custom customer events set while profiling (restocking day, gaokao, lunar birthday …), under their customer."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, db, principal, requires
from geo_core.reminders import events
from geo_core.reminders.models import CalendarKind, CustomerEvent, EventKind, Recurrence

blp = Blueprint("customer_events", __name__, url_prefix="/api/v1/customers", description="客户自定义事件")


class CustomerEventLunarSchema(BaseSchema):
    month = fields.Integer()
    day = fields.Integer()
    is_leap_month = fields.Boolean()


class CustomerEventSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    customer_id = fields.Integer(dump_only=True)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in EventKind]))
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    event_date = fields.Date(load_default=None, metadata={
        "description": "solar date; with calendar lunar it recurs on the lunar month/day it falls on"})
    calendar = fields.String(load_default="solar", validate=validate.OneOf([c.value for c in CalendarKind]))
    lunar_month = fields.Integer(load_only=True, validate=validate.Range(1, 12),
                                 metadata={"description": "instead of event_date: a lunar month/day (this lunar year)"})
    lunar_day = fields.Integer(load_only=True, validate=validate.Range(1, 30))
    is_leap_month = fields.Boolean(load_only=True, load_default=False)
    recurrence = fields.String(load_default="once", validate=validate.OneOf([r.value for r in Recurrence]))
    remind_days_before = fields.Integer(load_default=3, validate=validate.Range(0, 60))
    note = fields.String(allow_none=True, validate=validate.Length(max=500))
    lunar = fields.Nested(CustomerEventLunarSchema, dump_only=True, allow_none=True)
    created_by = fields.Integer(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class CustomerEventUpdateSchema(CustomerEventSchema):
    kind = fields.String(validate=validate.OneOf([k.value for k in EventKind]))
    title = fields.String(validate=validate.Length(min=1, max=100))
    event_date = fields.Date()
    calendar = fields.String(validate=validate.OneOf([c.value for c in CalendarKind]))
    recurrence = fields.String(validate=validate.OneOf([r.value for r in Recurrence]))
    remind_days_before = fields.Integer(validate=validate.Range(0, 60))
    is_leap_month = fields.Boolean(load_only=True)


class CustomerEventList(BaseSchema):
    items = fields.List(fields.Nested(CustomerEventSchema))
    total = fields.Integer()


def dump(event: CustomerEvent) -> dict[str, Any]:
    data = {c: getattr(event, c) for c in ("id", "customer_id", "title", "event_date", "remind_days_before", "note",
                                           "created_by", "created_at", "updated_at")}
    return {**data, "kind": event.kind.value, "calendar": event.calendar.value, "recurrence": event.recurrence.value,
            "lunar": events.lunar_of(event)}


@blp.route("/<int:customer_id>/events")
class CustomerEvents(MethodView):
    @requires("customer:read")
    @blp.response(200, CustomerEventList)
    def get(self, customer_id: int) -> dict[str, Any]:
        """The customer's custom events (404 if the customer is outside my scope)"""
        items = events.list_events(db(), customer_id)
        return {"items": [dump(e) for e in items], "total": len(items)}

    @requires("customer:edit")
    @blp.arguments(CustomerEventSchema)
    @blp.response(201, CustomerEventSchema)
    def post(self, data: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Add an event (solar date, or lunar month/day; once, yearly, monthly or weekly) that creates reminders"""
        return dump(events.create_event(db(), principal(), customer_id, data))


@blp.route("/<int:customer_id>/events/<int:event_id>")
class CustomerEventById(MethodView):
    @requires("customer:read")
    @blp.response(200, CustomerEventSchema)
    def get(self, customer_id: int, event_id: int) -> dict[str, Any]:
        """One event"""
        return dump(events.get_event(db(), customer_id, event_id))

    @requires("customer:edit")
    @blp.arguments(CustomerEventUpdateSchema(partial=True))
    @blp.response(200, CustomerEventSchema)
    def patch(self, data: dict[str, Any], customer_id: int, event_id: int) -> dict[str, Any]:
        """Edit an event"""
        return dump(events.update_event(db(), principal(), customer_id, event_id, data))

    @requires("customer:edit")
    @blp.response(204)
    def delete(self, customer_id: int, event_id: int) -> None:
        """Delete an event (reminders already created stay)"""
        events.delete_event(db(), customer_id, event_id)
