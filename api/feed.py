"""The big-data platform's daily feed: start an import of a day directory (RQ job), follow feed runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate
from rq import Queue
from sqlalchemy import select

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, state
from geo_core.errors import NotFound, ValidationFailed
from geo_core.feed.models import FeedRun
from geo_core.paging import paginate, valid_id
from jobs.feed import run_feed_import
from jobs.queues import IMPORTS

blp = Blueprint("feed", __name__, url_prefix="/api/v1/feed-runs", description="数据平台每日数据导入")


def feed_root() -> Path:
    """Day directories are read only below GM_FEED_ROOT (where the platform drops its files)."""
    return Path(os.environ.get("GM_FEED_ROOT", "/var/lib/gridmarket/feed")).resolve()


class FeedRunSchema(BaseSchema):
    id = fields.Integer()
    business_day = fields.Date()
    directory = fields.String()
    status = fields.String(metadata={"description": "running | done | failed"})
    files = fields.Dict(metadata={"description": "file -> {sha256, rows, encoding}"})
    checksum = fields.String(allow_none=True)
    counts = fields.Dict(metadata={"description": "table -> {inserted, updated, unchanged, deleted}"})
    errors = fields.List(fields.Dict(), metadata={"description": "[{file, line, field, message}]"})
    job_id = fields.String(allow_none=True)
    requested_by = fields.Integer(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class FeedRunPage(BaseSchema):
    items = fields.List(fields.Nested(FeedRunSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class FeedImportArgs(BaseSchema):
    directory = fields.String(required=True, validate=validate.Length(min=1, max=200),
                              metadata={"description": "day directory below GM_FEED_ROOT, e.g. 20261124"})
    day = fields.Date(load_default=None, metadata={"description": "business day (default: from the name)"})
    force = fields.Boolean(load_default=False, metadata={
        "description": "compare row by row even when the same files were imported already"})


def dump(run: FeedRun) -> dict[str, Any]:
    data = {c: getattr(run, c) for c in ("id", "business_day", "directory", "files", "checksum", "counts", "errors",
                                         "job_id", "requested_by", "started_at", "finished_at")}
    return {**data, "status": run.status.value}


@blp.route("")
class FeedRuns(MethodView):
    @requires("feed:import")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, FeedRunPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Feed runs, newest first"""
        stmt = select(FeedRun).order_by(FeedRun.id.desc())
        return page_body(paginate(db(), stmt, args["page"], args["page_size"]), dump)

    @requires("feed:import")
    @blp.arguments(FeedImportArgs)
    @blp.response(202, description="{job: {id, status}}; follow it at GET /api/v1/jobs/{id} (result: run_id)")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Import a day directory (RQ job on the imports queue; one transaction; same files again change nothing)"""
        root = feed_root()
        target = (root / args["directory"]).resolve()
        if not target.is_relative_to(root) or target == root or not target.is_dir():
            raise ValidationFailed.on("directory", "目录不存在或不在数据平台目录下")
        day = args.get("day")
        job = Queue(IMPORTS, connection=state().redis).enqueue(
            run_feed_import, str(target), day.isoformat() if day else None, args["force"],
            meta={"user_id": principal().user_id}, job_timeout=3600, result_ttl=7 * 86400, failure_ttl=7 * 86400)
        return {"job": {"id": job.id, "status": "queued"}}


@blp.route("/<int:run_id>")
class FeedRunById(MethodView):
    @requires("feed:import")
    @blp.response(200, FeedRunSchema)
    def get(self, run_id: int) -> dict[str, Any]:
        """One feed run with its counts and per-row errors"""
        run = db().get(FeedRun, run_id) if valid_id(run_id) else None
        if run is None:
            raise NotFound("导入记录不存在", code="FEED_RUN_NOT_FOUND")
        return dump(run)
