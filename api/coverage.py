"""Coverage indicators (覆盖指标) for the cockpit and the strategy map: live per grid / org / manager inside the
caller's scope, daily snapshots over time, and the snapshot job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema

from api.extensions import BaseSchema, Blueprint, db, principal, requires, state
from geo_core.coverage import indicators, snapshots
from jobs.coverage import snapshot_coverage
from jobs.queues import DEFAULT

blp = Blueprint("coverage", __name__, url_prefix="/api/v1/coverage", description="覆盖指标")


class CoverageArgs(BaseSchema):
    group_by = fields.String(load_default="org", validate=validate.OneOf(list(indicators.GROUPS)))
    parent_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), metadata={
        "description": "grid (group_by=grid) or org (org, manager): that subtree only; grid/org groups are then "
                       "the parent and its direct children"})
    not_visited_days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=3650))


class CoverageMetrics(BaseSchema):
    customers = fields.Integer()
    placed = fields.Integer()
    profileable = fields.Integer()
    profiled = fields.Integer()
    unlinked_pois = fields.Integer()
    known_units = fields.Integer()
    formal = fields.Integer()
    credited = fields.Integer()
    with_credit_line = fields.Integer()
    borrowing = fields.Integer()
    not_visited = fields.Integer()
    in_grid_rate = fields.Float(allow_none=True, metadata={"description": "入格率"})
    profile_rate = fields.Float(allow_none=True, metadata={"description": "建档率"})
    credit_rate = fields.Float(allow_none=True, metadata={"description": "授信率"})
    usage_rate = fields.Float(allow_none=True, metadata={"description": "用信率"})
    not_visited_rate = fields.Float(allow_none=True)
    not_visited_days = fields.Integer()


class CoverageRow(CoverageMetrics):
    key = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True)
    org_id = fields.Integer(allow_none=True)


class CoverageSchema(BaseSchema):
    group_by = fields.String()
    not_visited_days = fields.Integer()
    as_of = fields.DateTime()
    items = fields.List(fields.Nested(CoverageRow))
    totals = fields.Nested(CoverageMetrics)


class CoverageSeriesArgs(BaseSchema):
    level = fields.String(required=True, validate=validate.OneOf(list(snapshots.LEVELS)))
    key = fields.Integer(validate=validate.Range(min=0, max=2**31 - 1))
    since = fields.Date()
    until = fields.Date()

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise ValidationError("since 不能晚于 until", "since")
        if since and until and until - since > timedelta(days=snapshots.MAX_SERIES_DAYS):
            raise ValidationError(f"最多查询 {snapshots.MAX_SERIES_DAYS} 天", "since")


class CoverageSeriesPoint(BaseSchema):
    day = fields.Date()
    metrics = fields.Nested(CoverageMetrics)


class CoverageSeriesItem(BaseSchema):
    key = fields.Integer()
    name = fields.String(allow_none=True)
    points = fields.List(fields.Nested(CoverageSeriesPoint))


class CoverageSeriesSchema(BaseSchema):
    level = fields.String()
    items = fields.List(fields.Nested(CoverageSeriesItem))


class CoverageSnapshotArgs(BaseSchema):
    not_visited_days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=3650))


class CoverageJobSchema(BaseSchema):
    id = fields.String()
    status = fields.String()


@blp.route("")
class Coverage(MethodView):
    @requires("coverage:read")
    @blp.arguments(CoverageArgs, location="query")
    @blp.response(200, CoverageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """入格率 / 建档率 / 授信率 / 用信率 / not visited for N days, per grid, org or manager, in my scope"""
        result = indicators.compute(db(), args["group_by"], parent_id=args.get("parent_id"),
                                    not_visited_days=args["not_visited_days"])
        return {"group_by": result.group_by, "not_visited_days": result.not_visited_days, "as_of": result.as_of,
                "items": result.rows, "totals": result.totals}


@blp.route("/series")
class Series(MethodView):
    @requires("coverage:read")
    @blp.arguments(CoverageSeriesArgs, location="query")
    @blp.response(200, CoverageSeriesSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Daily snapshots over time for the grids / orgs / managers I may see (whole-entity figures)"""
        rows = snapshots.read_series(db(), args["level"], key=args.get("key"), since=args.get("since"),
                                     until=args.get("until"))
        items: dict[int, dict[str, Any]] = {}
        for row in rows:
            item = items.setdefault(row.key, {"key": row.key, "name": row.name, "points": []})
            item["points"].append({"day": row.day, "metrics": row.metrics})
        return {"level": args["level"], "items": list(items.values())}


@blp.route("/snapshots")
class Snapshots(MethodView):
    @requires("coverage:run")
    @blp.arguments(CoverageSnapshotArgs, location="query")
    @blp.response(202, CoverageJobSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Compute today's snapshots in the background (RQ job); poll GET /api/v1/jobs/{id}"""
        from rq import Queue

        job = Queue(DEFAULT, connection=state().redis).enqueue(
            snapshot_coverage, args["not_visited_days"], meta={"user_id": principal().user_id,
                                                               "request_id": g.request_id},
            job_timeout=1800, result_ttl=86400)
        return {"id": job.id, "status": str(job.get_status())}
