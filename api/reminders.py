"""Customer care reminders (客户关怀提醒): my / my team's reminders, mark done, handled-vs-missed statistics,
and a manual run of the daily job."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate, validates_schema
from marshmallow.exceptions import ValidationError
from rq import Queue

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, state
from geo_core.reminders import service
from geo_core.reminders.models import Reminder, ReminderKind, ReminderStatus
from jobs.queues import DEFAULT
from jobs.reminders import run_reminders

blp = Blueprint("reminders", __name__, url_prefix="/api/v1/reminders", description="客户关怀提醒")

KINDS = [k.value for k in ReminderKind]
STATUSES = [s.value for s in ReminderStatus]


class ReminderSchema(BaseSchema):
    id = fields.Integer()
    customer_id = fields.Integer()
    customer_name = fields.String(allow_none=True)
    owner_user_id = fields.Integer()
    owner_name = fields.String(allow_none=True)
    org_id = fields.Integer()
    kind = fields.String(metadata={"description": " | ".join(KINDS)})
    ref = fields.String(metadata={"description": "holiday code, loan no. or event id within the kind"})
    due_date = fields.Date()
    title = fields.String()
    detail = fields.Dict()
    status = fields.String(metadata={"description": " | ".join(STATUSES)})
    action_note = fields.String(allow_none=True)
    done_at = fields.DateTime(allow_none=True)
    done_by = fields.Integer(allow_none=True)
    missed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class ReminderPage(BaseSchema):
    items = fields.List(fields.Nested(ReminderSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class ReminderListArgs(PageArgs):
    scope = fields.String(load_default="mine", validate=validate.OneOf(["mine", "team"]),
                          metadata={"description": "mine: addressed to me; team: every reminder in my data scope"})
    status = fields.String(validate=validate.OneOf(STATUSES))
    kind = fields.String(validate=validate.OneOf(KINDS))
    due_from = fields.Date()
    due_to = fields.Date()
    customer_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    owner_user_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    org_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1),
                            metadata={"description": "in this org's subtree"})


class ReminderDoneArgs(BaseSchema):
    note = fields.String(required=True, validate=validate.Length(min=2, max=1000),
                         metadata={"description": "what was done (处理情况), required"})


class ReminderStatsArgs(BaseSchema):
    date_from = fields.Date(required=True, metadata={"description": "due dates from (inclusive)"})
    date_to = fields.Date(required=True, metadata={"description": "due dates to (inclusive)"})
    group_by = fields.String(load_default="owner", validate=validate.OneOf(["owner", "org"]))
    org_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    kind = fields.String(validate=validate.OneOf(KINDS))

    @validates_schema
    def period(self, data: dict[str, Any], **_: Any) -> None:
        if "date_from" in data and "date_to" in data:
            if data["date_to"] < data["date_from"]:
                raise ValidationError("结束日期不能早于开始日期", "date_to")
            if (data["date_to"] - data["date_from"]).days > 366 * 3:
                raise ValidationError("统计区间不能超过 3 年", "date_to")


class ReminderStatRowSchema(BaseSchema):
    id = fields.Integer(metadata={"description": "user id (group_by owner) or org id"})
    name = fields.String()
    total = fields.Integer()
    done = fields.Integer(metadata={"description": "handled"})
    missed = fields.Integer()
    open = fields.Integer()
    handled_rate = fields.Float(allow_none=True, metadata={"description": "done / (done + missed)"})


class ReminderStatsSchema(BaseSchema):
    date_from = fields.Date()
    date_to = fields.Date()
    group_by = fields.String()
    rows = fields.List(fields.Nested(ReminderStatRowSchema))
    totals = fields.Nested(ReminderStatRowSchema)


class ReminderRunArgs(BaseSchema):
    day = fields.Date(load_default=None, metadata={"description": "business day (default today)"})


def dump(reminder: Reminder, customer_name: str | None = None, owner_name: str | None = None) -> dict[str, Any]:
    data = {c: getattr(reminder, c) for c in ("id", "customer_id", "owner_user_id", "org_id", "ref", "due_date",
                                              "title", "detail", "action_note", "done_at", "done_by", "missed_at",
                                              "created_at")}
    return {**data, "kind": reminder.kind.value, "status": reminder.status.value, "customer_name": customer_name,
            "owner_name": owner_name}


@blp.route("")
class Reminders(MethodView):
    @requires("reminder:read")
    @blp.arguments(ReminderListArgs, location="query")
    @blp.response(200, ReminderPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """My reminders (scope=mine) or my team's (scope=team), by due date"""
        args.pop("q", None)
        page = service.list_reminders(db(), principal(), **args)
        return page_body(page, lambda row: dump(*row))


@blp.route("/<int:reminder_id>")
class ReminderById(MethodView):
    @requires("reminder:read")
    @blp.response(200, ReminderSchema)
    def get(self, reminder_id: int) -> dict[str, Any]:
        """One reminder (404 outside my scope)"""
        return dump(service.get_reminder(db(), reminder_id))


@blp.route("/<int:reminder_id>/done")
class ReminderDone(MethodView):
    @requires("reminder:handle")
    @blp.arguments(ReminderDoneArgs)
    @blp.response(200, ReminderSchema)
    def post(self, args: dict[str, Any], reminder_id: int) -> dict[str, Any]:
        """Mark an open reminder done with what was done (409 if already done or missed)"""
        return dump(service.mark_done(db(), principal(), reminder_id, args["note"]))


@blp.route("/stats")
class ReminderStats(MethodView):
    @requires("reminder:read")
    @blp.arguments(ReminderStatsArgs, location="query")
    @blp.response(200, ReminderStatsSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Handled vs missed (and still open) per manager or per org for reminders due in a period"""
        rows = service.reminder_stats(db(), **args)
        out = [{"id": r.key_id, "name": r.name, "total": r.total, "done": r.done, "missed": r.missed,
                "open": r.open, "handled_rate": r.handled_rate} for r in rows]
        total = service.StatRow(0, "合计", sum(r.total for r in rows), sum(r.done for r in rows),
                                sum(r.missed for r in rows), sum(r.open for r in rows))
        return {"date_from": args["date_from"], "date_to": args["date_to"], "group_by": args["group_by"],
                "rows": out, "totals": {"id": 0, "name": total.name, "total": total.total, "done": total.done,
                                        "missed": total.missed, "open": total.open,
                                        "handled_rate": total.handled_rate}}


@blp.route("/runs")
class ReminderRuns(MethodView):
    @requires("reminder:run")
    @blp.arguments(ReminderRunArgs)
    @blp.response(202, description="{job: {id, status}}: the daily reminder job, enqueued")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Run the daily reminder job now for a day (idempotent)"""
        day: date | None = args.get("day")
        job = Queue(DEFAULT, connection=state().redis).enqueue(
            run_reminders, day.isoformat() if day else None, meta={"user_id": principal().user_id},
            job_timeout=3600, result_ttl=7 * 86400, failure_ttl=7 * 86400)
        return {"job": {"id": job.id, "status": "queued"}}
