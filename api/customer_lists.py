"""Customer lists (名单): templates, blank files, uploads, preview, submit (RQ job), batches and their rows."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Response, g, request
from flask.views import MethodView
from marshmallow import fields, validate
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, settings, state
from api.files import FileUpload, uploaded_file
from geo_core import tabular
from geo_core.crs import CRS_NAMES
from geo_core.customers import lists
from geo_core.customers.lists_models import CustomerImportBatch, CustomerListTemplate, ImportStatus
from geo_core.customers.models import CustomerKind, ProfileType
from geo_core.customers.service import Keys
from geo_core.errors import Conflict
from jobs.customer_imports import META_KEYS, import_customer_list
from jobs.queues import IMPORTS

blp = Blueprint("customer_lists", __name__, url_prefix="/api/v1", description="名单模板与导入")

LIVE_JOB = ("queued", "deferred", "scheduled")


def keys() -> Keys:
    return Keys.of(settings())


class TemplateFieldSchema(BaseSchema):
    key = fields.String(required=True, validate=validate.Regexp(lists.KEY_RE.pattern))
    label = fields.String(required=True, validate=validate.Length(min=1, max=50))
    value_type = fields.String(data_key="type", attribute="type", load_default="string",
                               validate=validate.OneOf(lists.FIELD_TYPES))
    required = fields.Boolean(load_default=False)
    dict_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64),
                              metadata={"description": "dictionary (参数字典) code; enum fields only"})
    regex = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200),
                          metadata={"description": "the whole cell must match"})
    unique = fields.Boolean(load_default=False, metadata={"description": "unique key: once per file"})
    maps_to = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(list(lists.MAPS_TO)),
                            metadata={"description": "customer column filled; null = extra attribute (entry.extra)"})
    max_length = fields.Integer(load_default=None, allow_none=True,
                                validate=validate.Range(1, lists.MAX_FIELD_LENGTH))


class TemplateSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True, allow_none=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))
    customer_kind = fields.String(required=True, validate=validate.OneOf([k.value for k in CustomerKind]),
                                  metadata={"description": "kind of the customers created (unless a column maps kind)"})
    profile_type = fields.String(load_default=None, allow_none=True,
                                 validate=validate.OneOf([p.value for p in ProfileType]))
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(CRS_NAMES),
                        metadata={"description": "coordinate system of lon/lat columns"})
    fields_ = fields.List(fields.Nested(TemplateFieldSchema), data_key="fields", attribute="fields", required=True,
                          validate=validate.Length(min=1, max=100))
    is_builtin = fields.Boolean(dump_only=True)
    org_id = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "null: shared by all orgs"})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class TemplateUpdateSchema(TemplateSchema):
    """PATCH: only the fields sent change."""

    description = fields.String(allow_none=True, validate=validate.Length(max=1000))
    profile_type = fields.String(allow_none=True, validate=validate.OneOf([p.value for p in ProfileType]))
    crs = fields.String(validate=validate.OneOf(CRS_NAMES))


class BlankArgs(BaseSchema):
    format = fields.String(load_default="xlsx", validate=validate.OneOf(["xlsx", "csv"]))


class UploadArgs(BaseSchema):
    template_id = fields.Integer(required=True, validate=validate.Range(min=1))
    name = fields.String(load_default=None, validate=validate.Length(max=100),
                         metadata={"description": "batch name (default: the file name)"})


class JobSchema(BaseSchema):
    id = fields.String()
    status = fields.String()
    progress = fields.Dict(metadata={"description": "phase (validate|write|commit|done), done, total (rows), "
                                                    "eta_s, rows_per_s"})


class BatchSchema(BaseSchema):
    id = fields.Integer()
    name = fields.String()
    template_id = fields.Integer()
    template_name = fields.String()
    importer_user_id = fields.Integer()
    org_id = fields.Integer()
    status = fields.String(metadata={"description": "uploaded|validated|running|done|failed|rejected"})
    filename = fields.String()
    file_size = fields.Integer()
    total_rows = fields.Integer()
    valid_rows = fields.Integer(allow_none=True)
    invalid_rows = fields.Integer(allow_none=True)
    matched_rows = fields.Integer(allow_none=True)
    created_rows = fields.Integer(allow_none=True)
    skipped_rows = fields.Integer(allow_none=True)
    skip_invalid = fields.Boolean()
    error = fields.String(allow_none=True)
    job_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    validated_at = fields.DateTime(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class BatchDetailSchema(BatchSchema):
    job = fields.Nested(JobSchema, allow_none=True)
    report = fields.Dict(allow_none=True, metadata={"description": "skipped rows with their errors (skip_invalid)"})


class BatchListArgs(PageArgs):
    created_from = fields.DateTime(metadata={"description": "created at or after"})
    created_to = fields.DateTime(metadata={"description": "created before"})
    importer_user_id = fields.Integer(validate=validate.Range(min=1))
    template_id = fields.Integer(validate=validate.Range(min=1))
    status = fields.String(validate=validate.OneOf([s.value for s in ImportStatus]))


class BatchPage(BaseSchema):
    items = fields.List(fields.Nested(BatchSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class RenameArgs(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class PreviewArgs(BaseSchema):
    only = fields.String(load_default="all", validate=validate.OneOf(["all", "invalid", "matched", "new"]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    refresh = fields.Boolean(load_default=False, metadata={"description": "validate again (e.g. after other imports)"})


class PreviewSchema(BaseSchema):
    batch = fields.Nested(BatchSchema)
    ignored_columns = fields.List(fields.String())
    items = fields.List(fields.Dict(), metadata={"description": "{row, status: invalid|matched|new, errors: "
                                                                "{field: [message]}, customer_id, matched_by, values}"})
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class SubmitArgs(BaseSchema):
    skip_invalid = fields.Boolean(load_default=False,
                                  metadata={"description": "import the valid rows and report the skipped ones"})


class EntryArgs(BaseSchema):
    matched = fields.Boolean(load_default=None, allow_none=True)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class EntryPage(BaseSchema):
    items = fields.List(fields.Dict(), metadata={"description": "row_no, matched, extra, customer_id, name, kind, "
                                                                "category, masks, address, grid_id, owner, org"})
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def dump_template(template: CustomerListTemplate) -> dict[str, Any]:
    data = {c: getattr(template, c) for c in ("id", "code", "name", "description", "crs", "fields", "is_builtin",
                                              "org_id", "created_at", "updated_at")}
    return {**data, "customer_kind": lists.value_of(template.customer_kind),
            "profile_type": lists.value_of(template.profile_type)}


def dump_batch(batch: CustomerImportBatch, *, detail: bool = False) -> dict[str, Any]:
    data = {c: getattr(batch, c) for c in BatchSchema._declared_fields if hasattr(CustomerImportBatch, c)}
    data["status"] = lists.value_of(batch.status)
    data["template_name"] = batch.template_snapshot.get("name")
    if detail:
        data["job"] = job_status(batch.job_id)
        data["report"] = batch.report
    return data


def job_status(job_id: str | None) -> dict[str, Any] | None:
    if not job_id:
        return None
    try:
        job = Job.fetch(job_id, connection=state().redis)
    except NoSuchJobError:
        return None
    status = job.get_status(refresh=True)
    return {"id": job.id, "status": str(getattr(status, "value", status)),
            "progress": {k: job.meta.get(k) for k in META_KEYS if k in job.meta}}


@blp.before_request
def _allow_large_upload() -> None:
    """List files may be up to 40 MB (100,000+ rows), above the app-wide request limit."""
    if request.endpoint == f"{blp.name}.Imports" and request.method == "POST":
        request.max_content_length = lists.MAX_IMPORT_BYTES + 1024 * 1024


@blp.route("/customer-list-templates")
class Templates(MethodView):
    @requires("list:read")
    @blp.response(200, TemplateSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """List templates I can use (built-in and shared ones, and my orgs')"""
        return [dump_template(t) for t in lists.list_templates(db())]

    @requires("list:edit")
    @blp.arguments(TemplateSchema)
    @blp.response(201, TemplateSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a list template: fields with type, required, dictionary, regex, unique key and customer column"""
        return dump_template(lists.create_template(db(), principal(), data))


@blp.route("/customer-list-templates/<int:template_id>")
class TemplateById(MethodView):
    @requires("list:read")
    @blp.response(200, TemplateSchema)
    def get(self, template_id: int) -> dict[str, Any]:
        """One list template"""
        return dump_template(lists.get_template(db(), template_id))

    @requires("list:edit")
    @blp.arguments(TemplateUpdateSchema(partial=True))
    @blp.response(200, TemplateSchema)
    def patch(self, data: dict[str, Any], template_id: int) -> dict[str, Any]:
        """Edit a list template (batches already uploaded keep the template they were uploaded with)"""
        return dump_template(lists.update_template(db(), principal(), template_id, data))

    @requires("list:edit")
    @blp.response(204)
    def delete(self, template_id: int) -> None:
        """Delete a template no batch uses (built-in templates cannot be deleted)"""
        lists.delete_template(db(), principal(), template_id)


@blp.route("/customer-list-templates/<int:template_id>/blank")
class TemplateBlank(MethodView):
    @requires("list:read")
    @blp.arguments(BlankArgs, location="query")
    @blp.doc(responses={"200": {"description": "an empty XLSX or CSV (UTF-8 with BOM) with the labels as headers"}})
    def get(self, args: dict[str, Any], template_id: int) -> Response:
        """Download the template as a blank file to fill in"""
        template = lists.get_template(db(), template_id)
        fmt = args["format"]
        response = Response(lists.blank_file(template, fmt), mimetype=tabular.FORMATS[fmt])
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(template.name)}.{fmt}"
        return response


@blp.route("/customer-imports")
class Imports(MethodView):
    @requires("list:read")
    @blp.arguments(BatchListArgs, location="query")
    @blp.response(200, BatchPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Import batches in my scope by time range, importer, template, name (q) and status"""
        return page_body(lists.list_batches(db(), **args), dump_batch)

    @requires("list:edit")
    @blp.arguments(FileUpload, location="files")
    @blp.arguments(UploadArgs, location="query")
    @blp.response(201, BatchDetailSchema)
    @blp.alt_response(422, description="file rejected (format, encoding, size, missing required columns)")
    def post(self, _files: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """Upload a CSV (UTF-8 or GBK) or XLSX list (multipart `file`) against a template (≤ 40 MB).

        Then GET …/preview, then POST …/submit."""
        filename, data = uploaded_file()
        batch = lists.upload_batch(db(), principal(), keys(), template_id=args["template_id"], name=args["name"],
                                   filename=filename, data=data)
        return dump_batch(batch, detail=True)


@blp.route("/customer-imports/<int:batch_id>")
class ImportById(MethodView):
    @requires("list:read")
    @blp.response(200, BatchDetailSchema)
    def get(self, batch_id: int) -> dict[str, Any]:
        """A batch with its job's status and progress (rows done / total, ETA); 404 outside my scope"""
        return dump_batch(lists.refresh_liveness(db(), lists.get_batch(db(), batch_id)), detail=True)

    @requires("list:edit")
    @blp.arguments(RenameArgs)
    @blp.response(200, BatchDetailSchema)
    def patch(self, args: dict[str, Any], batch_id: int) -> dict[str, Any]:
        """Rename a batch"""
        return dump_batch(lists.rename_batch(db(), batch_id, args["name"]), detail=True)

    @requires("list:edit")
    @blp.response(204)
    def delete(self, batch_id: int) -> None:
        """Delete a batch that was never submitted (with its file)"""
        lists.delete_batch(db(), batch_id)


@blp.route("/customer-imports/<int:batch_id>/preview")
class ImportPreview(MethodView):
    @requires("list:edit")
    @blp.arguments(PreviewArgs, location="query")
    @blp.response(200, PreviewSchema)
    def get(self, args: dict[str, Any], batch_id: int) -> dict[str, Any]:
        """Per-row, per-field errors and matches with existing customers (identifiers masked).

        The first call validates every row and records the counts (status `validated`)."""
        out = lists.preview_batch(db(), principal(), keys(), batch_id, **args)
        return {**out, "batch": dump_batch(out["batch"])}


@blp.route("/customer-imports/<int:batch_id>/submit")
class ImportSubmit(MethodView):
    @requires("list:edit")
    @blp.arguments(SubmitArgs)
    @blp.response(202, BatchDetailSchema)
    @blp.alt_response(422, description="IMPORT_HAS_ERRORS (without skip_invalid) or IMPORT_EMPTY")
    def post(self, args: dict[str, Any], batch_id: int) -> dict[str, Any]:
        """Import the batch in the background (queue `imports`): all rows in one transaction, or none"""
        session = db()
        pending = job_status(lists.get_batch(session, batch_id).job_id)
        if pending and pending["status"] in LIVE_JOB:
            raise Conflict("该批次已提交，正在排队", code="IMPORT_QUEUED")
        p = principal()
        batch = lists.submit_batch(session, p, keys(), batch_id, skip_invalid=args["skip_invalid"])
        job = Queue(IMPORTS, connection=state().redis).enqueue(
            import_customer_list, batch.id, args["skip_invalid"],
            meta={"user_id": batch.importer_user_id, "submitted_by": p.user_id, "request_id": g.request_id,
                  "batch_id": batch.id},
            job_timeout=3600, result_ttl=7 * 86400, failure_ttl=7 * 86400)
        lists.set_job(session, batch, job.id)
        return dump_batch(batch, detail=True)


@blp.route("/customer-imports/<int:batch_id>/rows")
class ImportRows(MethodView):
    @requires("list:read")
    @blp.arguments(EntryArgs, location="query")
    @blp.response(200, EntryPage)
    def get(self, args: dict[str, Any], batch_id: int) -> dict[str, Any]:
        """The imported list: each row's customer (matched or created), masks only, and its extra attributes"""
        result = lists.list_entries(db(), batch_id, **args)
        return {"items": result.items, "total": result.total, "page": result.page, "page_size": result.page_size}
