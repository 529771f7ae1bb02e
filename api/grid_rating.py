"""Grid rating (网格评级): schemes, on-demand rating of one grid, rating all grids as a job; job status."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import fields, validate
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select

from api.extensions import BaseSchema, Blueprint, db, principal, requires, state
from geo_core.db import elevated
from geo_core.errors import NotFound
from geo_core.grids import rating
from geo_core.grids.service import get_grid
from geo_core.scope import DataScope
from jobs.grids import rate_all_grids
from jobs.queues import DEFAULT

blp = Blueprint("grid_rating", __name__, url_prefix="/api/v1", description="网格评级与后台任务")


class RatingDimensionSchema(BaseSchema):
    key = fields.String(required=True, validate=validate.OneOf(list(rating.DIMENSIONS)))
    weight = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False, max=100))


class RatingSchemeSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_-]{1,40}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    is_active = fields.Boolean(load_default=True)
    dimensions = fields.List(fields.Nested(RatingDimensionSchema), required=True,
                             validate=validate.Length(min=1, max=20))
    grade_thresholds = fields.Dict(keys=fields.String(validate=validate.OneOf(["A", "B", "C"])),
                                   values=fields.Float(), required=True)
    available_dimensions = fields.Dict(dump_only=True)


class RatingSchemeUpdateSchema(RatingSchemeSchema):
    """PATCH: only the fields sent change."""

    is_active = fields.Boolean()


class GridRatingSchema(BaseSchema):
    grid_id = fields.Integer()
    score = fields.Float()
    grade = fields.String()
    scheme = fields.String(allow_none=True)
    components = fields.Dict()
    computed_at = fields.DateTime()


class RunArgs(BaseSchema):
    scheme = fields.String(load_default=None, validate=validate.Length(max=40))


class JobStatusSchema(BaseSchema):
    id = fields.String()
    status = fields.String()
    progress = fields.Dict()
    result = fields.Raw(allow_none=True)
    error = fields.String(allow_none=True)


@blp.route("/grid-rating-schemes")
class Schemes(MethodView):
    @requires("grid:read")
    @blp.response(200, RatingSchemeSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Rating schemes and the dimensions they may use"""
        schemes = db().scalars(select(rating.RatingScheme).order_by(rating.RatingScheme.id))
        return [rating.scheme_dict(s) for s in schemes]

    @requires("grid:rate")
    @blp.arguments(RatingSchemeSchema)
    @blp.response(201, RatingSchemeSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a rating scheme (weighted dimensions, grade thresholds A > B > C)"""
        rating.validate_scheme(data["dimensions"], data["grade_thresholds"])
        scheme = rating.RatingScheme(**data)
        db().add(scheme)
        db().flush()
        return rating.scheme_dict(scheme)


@blp.route("/grid-rating-schemes/<int:scheme_id>")
class SchemeById(MethodView):
    @requires("grid:rate")
    @blp.arguments(RatingSchemeUpdateSchema(partial=True))
    @blp.response(200, RatingSchemeSchema)
    def patch(self, data: dict[str, Any], scheme_id: int) -> dict[str, Any]:
        """Edit a rating scheme"""
        scheme = db().get(rating.RatingScheme, scheme_id)
        if scheme is None:
            raise NotFound("评级方案不存在", code="RATING_SCHEME_NOT_FOUND")
        rating.validate_scheme(data.get("dimensions", scheme.dimensions),
                               data.get("grade_thresholds", scheme.grade_thresholds))
        for key, value in data.items():
            setattr(scheme, key, value)
        db().flush()
        return rating.scheme_dict(scheme)


@blp.route("/grids/<int:grid_id>/rating")
class GridRatingView(MethodView):
    @requires("grid:read")
    @blp.response(200, GridRatingSchema)
    def get(self, grid_id: int) -> dict[str, Any]:
        """The grid's latest rating with its components"""
        get_grid(db(), grid_id)
        latest = rating.latest_rating(db(), grid_id)
        if latest is None:
            raise NotFound("该网格尚未评级", code="GRID_NOT_RATED")
        return rating.describe(latest, db().get(rating.RatingScheme, latest.scheme_id))

    @requires("grid:rate")
    @blp.arguments(RunArgs, location="query")
    @blp.response(200, GridRatingSchema)
    def post(self, args: dict[str, Any], grid_id: int) -> dict[str, Any]:
        """Rate one grid now, ranked among all grids of its level (an audited elevated computation)"""
        session = db()
        get_grid(session, grid_id)  # 404 unless the caller may see it
        scheme = rating.get_scheme(session, args.get("scheme"))
        with elevated(session, reason=f"rate grid {grid_id}"):
            rating.rate_grids(session, scheme, grid_id=grid_id)
        return rating.describe(rating.latest_rating(session, grid_id), scheme)


@blp.route("/grid-ratings/run")
class RunRating(MethodView):
    @requires("grid:rate")
    @blp.arguments(RunArgs, location="query")
    @blp.response(202, JobStatusSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Rate all grids in the background (RQ job); poll GET /api/v1/jobs/{id}"""
        rating.get_scheme(db(), args.get("scheme"))
        job = _queue().enqueue(rate_all_grids, args.get("scheme"), meta={"user_id": principal().user_id,
                                                                          "request_id": g.request_id},
                               job_timeout=600, result_ttl=86400)
        return _job_body(job)


@blp.route("/jobs/<job_id>")
class JobStatus(MethodView):
    @requires()
    @blp.response(200, JobStatusSchema)
    def get(self, job_id: str) -> dict[str, Any]:
        """Status and progress of a background job I started (admins: any job)"""
        try:
            job = Job.fetch(job_id, connection=state().redis)
        except NoSuchJobError as exc:
            raise NotFound("任务不存在或已过期", code="JOB_NOT_FOUND") from exc
        p = principal()
        if job.meta.get("user_id") != p.user_id and p.scope is not DataScope.all:
            raise NotFound("任务不存在或已过期", code="JOB_NOT_FOUND")
        return _job_body(job)


def _queue():  # noqa: ANN202
    from rq import Queue

    return Queue(DEFAULT, connection=state().redis)


def _job_body(job: Job) -> dict[str, Any]:
    status = job.get_status(refresh=True)
    result = job.return_value() if status == "finished" else None
    error = "任务执行失败" if status == "failed" else None
    return {"id": job.id, "status": str(getattr(status, "value", status)),
            "progress": {k: v for k, v in job.meta.items() if k in ("done", "total", "phase")}, "result": result,
            "error": error}

