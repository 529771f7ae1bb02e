"""Customer duplicates (客户查重), merges with undo (客户合并/撤销) and account ownership history (管户关系)."""

from __future__ import annotations

import re
from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import fields, validate
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from api.extensions import BaseSchema, Blueprint, db, principal, requires, state
from geo_core.customers import dedup, merge, ownership
from geo_core.errors import NotFound, ValidationFailed
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org
from jobs.dedup import detect_duplicates
from jobs.queues import DEFAULT

blp = Blueprint("customer_dedup", __name__, url_prefix="/api/v1",
                description="客户查重与合并（撤销合并）、管户关系历史")

ID = validate.Range(min=1, max=2**31 - 1)
STATUSES = ["open", "merged", "dismissed"]
SIDES = ["survivor", "merged"]
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class DuplicateCustomerSummary(BaseSchema):
    id = fields.Integer()
    kind = fields.String()
    category = fields.String()
    name = fields.String()
    customer_no = fields.String(allow_none=True)
    id_number_mask = fields.String(allow_none=True)
    uscc_mask = fields.String(allow_none=True)
    phone_mask = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    owner_user_id = fields.Integer(allow_none=True)
    org_id = fields.Integer()
    grid_id = fields.Integer(allow_none=True)
    status = fields.String()


class DuplicateCandidateSchema(BaseSchema):
    id = fields.Integer()
    reasons = fields.List(fields.String(), metadata={
        "description": "same_id_number, same_uscc, same_phone, same_name, same_pinyin, similar_name, within_50m, "
                       "same_address"})
    score = fields.Float()
    name_similarity = fields.Float(allow_none=True)
    distance_m = fields.Float(allow_none=True)
    status = fields.String()
    detected_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)
    decided_by = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    merge_id = fields.Integer(allow_none=True)
    customer_a = fields.Nested(DuplicateCustomerSummary)
    customer_b = fields.Nested(DuplicateCustomerSummary)


class DuplicateFieldComparison(BaseSchema):
    field = fields.String()
    a = fields.Raw(allow_none=True)
    b = fields.Raw(allow_none=True)
    same = fields.Boolean()


class DuplicateCandidateDetail(DuplicateCandidateSchema):
    fields_ = fields.List(fields.Nested(DuplicateFieldComparison), data_key="fields")


class DuplicateCandidatePage(BaseSchema):
    items = fields.List(fields.Nested(DuplicateCandidateSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class DuplicateCandidateArgs(BaseSchema):
    status = fields.String(load_default="open", validate=validate.OneOf(STATUSES))
    customer_id = fields.Integer(load_default=None, validate=ID)
    min_score = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=1))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=500))


class DuplicateDetectArgs(BaseSchema):
    customer_id = fields.Integer(load_default=None, validate=ID,
                                 metadata={"description": "one customer and its neighbourhood"})
    org_id = fields.Integer(load_default=None, validate=ID, metadata={"description": "an org subtree"})
    grid_id = fields.Integer(load_default=None, validate=ID, metadata={"description": "a grid subtree"})


class DuplicateDetectResult(BaseSchema):
    candidate_ids = fields.List(fields.Integer())
    count = fields.Integer()


class DuplicateScanArgs(BaseSchema):
    org_id = fields.Integer(load_default=None, validate=ID, metadata={"description": "an org subtree"})
    grid_id = fields.Integer(load_default=None, validate=ID, metadata={"description": "or a grid subtree"})


class DuplicateScanSchema(BaseSchema):
    id = fields.String()
    status = fields.String(metadata={"description": "queued, started, finished, failed ..."})
    phase = fields.String(allow_none=True)
    candidates = fields.Integer(allow_none=True)


class DuplicateDismissArgs(BaseSchema):
    note = fields.String(required=True, validate=validate.Length(min=2, max=200))


class CustomerMergeArgs(BaseSchema):
    survivor_id = fields.Integer(required=True, validate=ID)
    merged_id = fields.Integer(required=True, validate=ID)
    choices = fields.Dict(keys=fields.String(validate=validate.OneOf(list(merge.FIELD_GROUPS))),
                          values=fields.String(validate=validate.OneOf(SIDES)), load_default=dict,
                          metadata={"description": "field group -> survivor|merged (default survivor); groups: "
                                                   + ", ".join(merge.FIELD_GROUPS)})
    candidate_id = fields.Integer(load_default=None, validate=ID)
    reason = fields.String(load_default=None, validate=validate.Length(max=200))


class CustomerMergeReference(BaseSchema):
    table = fields.String()
    column = fields.String()
    moved = fields.Integer()
    deleted = fields.Integer(metadata={"description": "rows that duplicated one of the survivor's (kept for undo)"})


class CustomerMergeSchema(BaseSchema):
    id = fields.Integer()
    survivor_id = fields.Integer()
    merged_id = fields.Integer()
    candidate_id = fields.Integer(allow_none=True)
    status = fields.String(metadata={"description": "done | undone"})
    choices = fields.Dict(keys=fields.String(), values=fields.String())
    reason = fields.String(allow_none=True)
    references = fields.List(fields.Nested(CustomerMergeReference))
    merged_by = fields.Integer(allow_none=True)
    merged_at = fields.DateTime()
    undone_by = fields.Integer(allow_none=True)
    undone_at = fields.DateTime(allow_none=True)


class CustomerOwnershipSchema(BaseSchema):
    id = fields.Integer()
    owner_user_id = fields.Integer(allow_none=True)
    owner_name = fields.String(allow_none=True)
    org_id = fields.Integer(allow_none=True)
    org_name = fields.String(allow_none=True)
    valid_from = fields.DateTime()
    valid_to = fields.DateTime(allow_none=True, metadata={"description": "null: current owner"})
    changed_by = fields.Integer(allow_none=True)
    changed_by_name = fields.String(allow_none=True)
    source = fields.String(allow_none=True, metadata={
        "description": "create, edit, batch_assign, grid_handover, merge, merge_undo, backfill ..."})
    reason = fields.String(allow_none=True)


@blp.route("/customer-duplicates")
class Candidates(MethodView):
    @requires("customer:read")
    @blp.arguments(DuplicateCandidateArgs, location="query")
    @blp.response(200, DuplicateCandidatePage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Duplicate candidate pairs whose two customers are both in my scope, best score first"""
        page = dedup.list_candidates(db(), **args)
        return {"items": page.items, "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/customer-duplicates/detect")
class Detect(MethodView):
    @requires("customer:edit")
    @blp.arguments(DuplicateDetectArgs)
    @blp.response(200, DuplicateDetectResult)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Run duplicate detection now for one customer, an org or grid subtree, or (no argument) my whole scope"""
        ids = dedup.detect(db(), principal().user_id, dedup.Scope.of(**args))
        return {"candidate_ids": ids, "count": len(ids)}


def _scan(job: Job) -> dict[str, Any]:
    status = job.get_status(refresh=True)
    return {"id": job.id, "status": str(getattr(status, "value", status)), "phase": job.meta.get("phase"),
            "candidates": job.meta.get("candidates")}


@blp.route("/customer-duplicates/scans")
class Scans(MethodView):
    @requires("customer:merge")
    @blp.arguments(DuplicateScanArgs)
    @blp.response(202, DuplicateScanSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Detect duplicates in an org or grid subtree in the background (RQ job running with my data scope)"""
        session, p = db(), principal()
        if args["org_id"] is None and args["grid_id"] is None:
            raise ValidationFailed.on("org_id", "请指定机构或网格")
        if args["org_id"] is not None and session.get(Org, args["org_id"]) is None:
            raise NotFound("机构不存在", code="ORG_NOT_FOUND")
        if args["grid_id"] is not None and session.get(Grid, args["grid_id"]) is None:
            raise NotFound("网格不存在", code="GRID_NOT_FOUND")
        job = Queue(DEFAULT, connection=state().redis).enqueue(
            detect_duplicates, p.user_id, args["org_id"], args["grid_id"],
            meta={"user_id": p.user_id, "request_id": g.request_id}, job_timeout=3600, result_ttl=86400,
            failure_ttl=7 * 86400)
        return _scan(job)


@blp.route("/customer-duplicates/scans/<string:job_id>")
class ScanById(MethodView):
    @requires("customer:merge")
    @blp.response(200, DuplicateScanSchema)
    def get(self, job_id: str) -> dict[str, Any]:
        """A duplicate scan's status and result (only for the user who started it)"""
        try:
            job = Job.fetch(job_id, connection=state().redis) if JOB_ID.match(job_id) else None
        except NoSuchJobError:
            job = None
        if job is None or job.meta.get("user_id") != principal().user_id or job.origin != DEFAULT:
            raise NotFound("任务不存在", code="JOB_NOT_FOUND")
        return _scan(job)


@blp.route("/customer-duplicates/<int:candidate_id>")
class CandidateById(MethodView):
    @requires("customer:read")
    @blp.response(200, DuplicateCandidateDetail)
    def get(self, candidate_id: int) -> dict[str, Any]:
        """One candidate pair, field by field (identifiers masked; 404 unless both customers are in my scope)"""
        detail = dedup.compare(db(), candidate_id)
        detail["fields_"] = detail.pop("fields")
        return detail


@blp.route("/customer-duplicates/<int:candidate_id>/dismiss")
class Dismiss(MethodView):
    @requires("customer:merge")
    @blp.arguments(DuplicateDismissArgs)
    @blp.response(200, DuplicateCandidateSchema)
    def post(self, args: dict[str, Any], candidate_id: int) -> dict[str, Any]:
        """Not duplicates: dismiss the pair (later detections leave it dismissed)"""
        return dedup.dismiss(db(), principal(), candidate_id, args["note"])


@blp.route("/customer-merges")
class Merges(MethodView):
    @requires("customer:merge")
    @blp.arguments(CustomerMergeArgs)
    @blp.response(201, CustomerMergeSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Merge `merged_id` into `survivor_id` in one transaction (references moved, history kept, undoable)"""
        session = db()
        merge_id = merge.merge_customers(session, principal(), args["survivor_id"], args["merged_id"],
                                         choices=args["choices"], reason=args["reason"],
                                         candidate_id=args["candidate_id"])
        return merge.get_merge(session, merge_id)


@blp.route("/customer-merges/<int:merge_id>")
class MergeById(MethodView):
    @requires("customer:read")
    @blp.response(200, CustomerMergeSchema)
    def get(self, merge_id: int) -> dict[str, Any]:
        """One merge record (404 unless both customers are in my scope)"""
        return merge.get_merge(db(), merge_id)


@blp.route("/customer-merges/<int:merge_id>/undo")
class Undo(MethodView):
    @requires("customer:merge")
    @blp.response(200, CustomerMergeSchema)
    def post(self, merge_id: int) -> dict[str, Any]:
        """Undo a merge exactly; 409 MERGE_UNDO_CONFLICT (with the conflicts) when either side changed since"""
        session = db()
        merge.undo_merge(session, principal(), merge_id)
        return merge.get_merge(session, merge_id)


@blp.route("/customers/<int:customer_id>/ownerships")
class Ownerships(MethodView):
    @requires("customer:read")
    @blp.response(200, CustomerOwnershipSchema(many=True))
    def get(self, customer_id: int) -> list[Any]:
        """Account ownership history (管户关系): owner and org periods with who changed them and why, newest first"""
        return ownership.list_ownerships(db(), customer_id)
