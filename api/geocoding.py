"""Geocoding (地址解析): one address -> candidates, and batch runs over customers (RQ job with progress)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema
from rq import Queue, Retry

from api.customer_lists import job_status
from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, settings, state
from api.grids import crs_arg
from geo_core.crs import wgs84_to_bd09, wgs84_to_gcj02
from geo_core.errors import Conflict
from geo_core.geocoding import runs
from geo_core.geocoding.gazetteer import LEVELS, GeocodeResult
from geo_core.geocoding.models import GeocodeRun
from geo_core.geocoding.service import Geocoder, describe_providers
from geo_core.grids.service import find_grid_for_point
from jobs.geocoding import geocode_run
from jobs.queues import IMPORTS

blp = Blueprint("geocoding", __name__, url_prefix="/api/v1/geocode", description="地址解析（地理编码）")

LIVE_JOB = ("queued", "started", "deferred", "scheduled")


class GeocodeArgs(BaseSchema):
    address = fields.String(required=True, validate=validate.Length(min=2, max=300))
    online = fields.Boolean(load_default=True, metadata={"description": "false: the offline gazetteer only"})
    providers = fields.List(fields.String(validate=validate.OneOf(["gazetteer", "baidu", "gaode", "tianditu"])),
                            load_default=None, validate=validate.Length(min=1, max=4))


class GeocodeDivisionSchema(BaseSchema):
    code = fields.String()
    name = fields.String()
    level = fields.String()


class GeocodeCandidateSchema(BaseSchema):
    provider = fields.String()
    level = fields.String(metadata={"description": " | ".join(LEVELS)})
    confidence = fields.Float()
    lon = fields.Float(allow_none=True, metadata={"description": "in `crs`"})
    lat = fields.Float(allow_none=True)
    matched = fields.String(allow_none=True)
    division = fields.Nested(GeocodeDivisionSchema, allow_none=True)
    grid = fields.Dict(allow_none=True, metadata={"description": "{id, name}: my grid containing the point"})
    detail = fields.Dict()


class GeocodeAnswer(BaseSchema):
    address = fields.String()
    parsed = fields.Dict()
    best = fields.Nested(GeocodeCandidateSchema)
    candidates = fields.List(fields.Nested(GeocodeCandidateSchema))
    providers = fields.Dict(keys=fields.String(), values=fields.String(),
                            metadata={"description": "per provider: ok | no_result | skipped | disabled | error…"})
    crs = fields.String()


class GeocodeRunArgs(BaseSchema):
    customer_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)),
                               validate=validate.Length(min=1, max=runs.MAX_IDS))
    batch_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1),
                              metadata={"description": "a customer list batch (名单): its customers"})
    missing = fields.Boolean(load_default=False, metadata={"description": "every customer in scope lacking a point"})
    force = fields.Boolean(load_default=False,
                           metadata={"description": "also customers with a point, even corrected/GPS ones"})
    online = fields.Boolean(load_default=True)
    min_level = fields.String(load_default="community", validate=validate.OneOf(list(LEVELS[:-1])),
                              metadata={"description": "coarser results are counted but not applied"})

    @validates_schema
    def _one_target(self, data: dict[str, Any], **_: Any) -> None:
        chosen = [data.get("customer_ids") is not None, data.get("batch_id") is not None, bool(data.get("missing"))]
        if sum(chosen) != 1:
            raise ValidationError("customer_ids、batch_id、missing 三选一", field_name="customer_ids")


class GeocodeRunSchema(BaseSchema):
    id = fields.Integer()
    status = fields.String()
    target = fields.String()
    params = fields.Dict()
    batch_id = fields.Integer(allow_none=True)
    requested_by = fields.Integer()
    org_id = fields.Integer()
    total = fields.Integer(allow_none=True)
    done = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "by level, plus applied / too_coarse / skipped_* / failed"})
    error = fields.String(allow_none=True)
    job = fields.Dict(allow_none=True, metadata={"description": "{id, status, progress: {done, total, eta_s}}"})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class GeocodeRunListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(["queued", "running", "done", "failed"]))


class GeocodeRunPage(BaseSchema):
    items = fields.List(fields.Nested(GeocodeRunSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class GeocodeResultArgs(BaseSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    level = fields.String(validate=validate.OneOf(list(LEVELS)))
    applied = fields.Boolean()
    max_confidence = fields.Float(validate=validate.Range(min=0, max=1))


class GeocodeResultItem(BaseSchema):
    customer_id = fields.Integer()
    name = fields.String()
    address = fields.String(allow_none=True)
    level = fields.String()
    confidence = fields.Float()
    provider = fields.String()
    applied = fields.Boolean()
    matched = fields.String(allow_none=True)


class GeocodeResultPage(BaseSchema):
    items = fields.List(fields.Nested(GeocodeResultItem))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def dump_candidate(result: GeocodeResult, crs: str) -> dict[str, Any]:
    data = result.as_dict()
    if result.has_point and crs != "wgs84":
        convert = wgs84_to_gcj02 if crs == "gcj02" else wgs84_to_bd09
        lon, lat = convert(result.lon, result.lat)
        data["lon"], data["lat"] = round(float(lon), 7), round(float(lat), 7)
    return data


def dump_run(run: GeocodeRun) -> dict[str, Any]:
    data = {c: getattr(run, c) for c in GeocodeRunSchema._declared_fields if c != "job" and hasattr(run, c)}
    data["job"] = job_status(run.job_id)
    return data


def _enqueue(run: GeocodeRun) -> None:
    job = Queue(IMPORTS, connection=state().redis).enqueue(
        geocode_run, run.id, meta={"user_id": run.requested_by, "request_id": g.request_id, "geocode_run_id": run.id},
        job_timeout=6 * 3600, result_ttl=7 * 86400, failure_ttl=7 * 86400, retry=Retry(max=2, interval=[10, 60]))
    runs.mark(db(), run.id, job_id=job.id)
    db().refresh(run)


@blp.route("")
class Geocode(MethodView):
    @requires("geocode:run")
    @blp.arguments(GeocodeArgs)
    @blp.response(200, GeocodeAnswer)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Geocode one address: the parsed parts and candidate points (in `crs`) with level and confidence"""
        crs = crs_arg()
        session = db()
        geocoder = Geocoder(settings(), state().redis, online=args["online"], providers=args["providers"])
        outcome = geocoder.geocode(session, args["address"])
        for result in outcome.candidates:
            if result.has_point and result.grid_id is None:
                grid = find_grid_for_point(session, result.lon, result.lat)  # only grids I may see
                if grid is not None:
                    result.grid_id, result.grid_name = grid.id, grid.name
        return {"address": args["address"], "parsed": outcome.parsed.as_dict(),
                "best": dump_candidate(outcome.best, crs),
                "candidates": [dump_candidate(r, crs) for r in outcome.candidates],
                "providers": outcome.providers, "crs": crs}


@blp.route("/providers")
class Providers(MethodView):
    @requires("geocode:run")
    @blp.response(200, description="[{name, label, enabled}] in chain order")
    def get(self) -> dict[str, Any]:
        """The geocoder chain and which providers are enabled (a provider without a key is not)"""
        return {"chain": describe_providers(settings()), "min_confidence": settings().geocoder_min_confidence}


@blp.route("/runs")
class Runs(MethodView):
    @requires("geocode:run")
    @blp.arguments(GeocodeRunListArgs, location="query")
    @blp.response(200, GeocodeRunPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Geocode runs I can see (my orgs' and my own)"""
        page = runs.list_runs(db(), status=args.get("status"), page=args["page"], page_size=args["page_size"])
        return page_body(page, dump_run)

    @requires("geocode:run")
    @blp.arguments(GeocodeRunArgs)
    @blp.response(202, GeocodeRunSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Geocode customers in the background: by ids, a list batch, or all in scope lacking a point"""
        run = runs.create_run(db(), principal(), customer_ids=args.get("customer_ids"), batch_id=args.get("batch_id"),
                              missing=args["missing"], force=args["force"], online=args["online"],
                              min_level=args["min_level"])
        _enqueue(run)
        return dump_run(run)


@blp.route("/runs/<int:run_id>")
class RunById(MethodView):
    @requires("geocode:run")
    @blp.response(200, GeocodeRunSchema)
    def get(self, run_id: int) -> dict[str, Any]:
        """A run with its counts by level and its job's progress (404 outside my scope)"""
        return dump_run(runs.get_run(db(), run_id))


@blp.route("/runs/<int:run_id>/results")
class RunResults(MethodView):
    @requires("geocode:run")
    @blp.arguments(GeocodeResultArgs, location="query")
    @blp.response(200, GeocodeResultPage)
    def get(self, args: dict[str, Any], run_id: int) -> dict[str, Any]:
        """What the run found per customer, least confident first (to review and correct on the map)"""
        return page_body(runs.list_results(db(), run_id, **args), lambda r: r)


@blp.route("/runs/<int:run_id>/resume")
class RunResume(MethodView):
    @requires("geocode:run")
    @blp.response(202, GeocodeRunSchema)
    def post(self, run_id: int) -> dict[str, Any]:
        """Continue a failed run after its last committed chunk"""
        run = runs.get_run(db(), run_id)
        pending = job_status(run.job_id)
        if run.status == "done" or (pending and pending["status"] in LIVE_JOB):
            raise Conflict("该任务已完成或正在执行", code="GEOCODE_RUN_ACTIVE")
        runs.mark(db(), run.id, status="queued", error=None)
        _enqueue(run)
        return dump_run(run)
