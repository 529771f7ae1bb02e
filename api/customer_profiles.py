"""Profiles (建档): field templates, a customer's profile, profile collection tasks (补录任务), statistics."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, settings
from geo_core.customers import profile_stats, profile_tasks, profile_templates, profiles
from geo_core.customers.models import ProfileType
from geo_core.customers.profile_models import ProfileCollectionTask, ProfileTemplate, TaskStatus
from geo_core.customers.service import Keys, get_customer

blp = Blueprint("customer_profiles", __name__, url_prefix="/api/v1", description="客户建档")

PROFILE_TYPES = [p.value for p in ProfileType]
CODE = validate.Regexp(r"^[a-z][a-z0-9_]{1,39}$", error="编码须为小写字母开头的字母、数字、下划线（2-40 位）")
FIELD_DOC = ("[{key, label, type: " + "|".join(profile_templates.FIELD_TYPES) + ", required, options: "
             "[{value, label}], regex, min, max, max_length, group, unit, weight, help}]")


class ProfileTemplateSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=CODE)
    version = fields.Integer(dump_only=True)
    profile_type = fields.String(required=True, validate=validate.OneOf(PROFILE_TYPES))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    fields_ = fields.List(fields.Dict(), required=True, data_key="fields", attribute="fields",
                          metadata={"description": FIELD_DOC})
    activate = fields.Boolean(load_only=True, load_default=True,
                              metadata={"description": "make it the template its profile type is filled against"})
    is_current = fields.Boolean(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    is_builtin = fields.Boolean(dump_only=True)
    created_by = fields.Integer(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class ProfileTemplateEditSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    fields_ = fields.List(fields.Dict(), data_key="fields", attribute="fields", metadata={"description": FIELD_DOC})
    activate = fields.Boolean()


class ProfileTemplateListArgs(BaseSchema):
    profile_type = fields.String(validate=validate.OneOf(PROFILE_TYPES))
    code = fields.String(validate=validate.Length(max=40))
    all_versions = fields.Boolean(load_default=False)


class ProfileBody(BaseSchema):
    data = fields.Dict(required=True, metadata={"description": "{field key: value} per the active template"})
    source = fields.String(load_default="pc", validate=validate.OneOf(list(profiles.SOURCES)))
    profile_type = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(PROFILE_TYPES),
                                 metadata={"description": "sets the customer's profile type when given"})


class ProfileSchema(BaseSchema):
    customer_id = fields.Integer()
    profile_type = fields.String()
    template_id = fields.Integer()
    template_code = fields.String()
    template_version = fields.Integer()
    template_is_active = fields.Boolean()
    revision = fields.Integer()
    data = fields.Dict(metadata={"description": "phone fields show masks"})
    completeness = fields.Float(metadata={"description": "weighted share of fields filled, 0..1"})
    is_complete = fields.Boolean(metadata={"description": "every required field filled"})
    missing = fields.List(fields.String())
    missing_required = fields.List(fields.String())
    filled_by = fields.Integer(allow_none=True)
    filled_at = fields.DateTime(allow_none=True)
    source = fields.String(allow_none=True)
    fields_ = fields.List(fields.Dict(), data_key="fields", attribute="fields")


class ProfileRevealArgs(BaseSchema):
    fields_ = fields.List(fields.String(validate=validate.Length(min=1, max=40)), required=True, data_key="fields",
                          attribute="fields", validate=validate.Length(min=1, max=20))
    reason = fields.String(required=True, validate=validate.Length(min=2, max=200))


class ProfileGetArgs(BaseSchema):
    or_blank = fields.Boolean(load_default=False, metadata={
        "description": "not profiled yet: answer the empty form (revision 0) instead of 404"})


class ProfileRevisionSchema(BaseSchema):
    revision = fields.Integer()
    template_id = fields.Integer()
    template_version = fields.Integer()
    data = fields.Dict()
    completeness = fields.Float()
    missing = fields.List(fields.String())
    filled_by = fields.Integer(allow_none=True)
    filled_at = fields.DateTime()
    source = fields.String()


class ProfileRevisionPage(BaseSchema):
    items = fields.List(fields.Nested(ProfileRevisionSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class ProfileTaskCreateArgs(BaseSchema):
    customer_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)), load_default=None,
                               validate=validate.Length(min=1, max=5000))
    grid_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "grid subtree"})
    org_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "org subtree"})
    owner_user_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    profile_type = fields.String(validate=validate.OneOf(PROFILE_TYPES))
    completeness_below = fields.Float(validate=validate.Range(min=0, max=1, min_inclusive=False),
                                      metadata={"description": "only profiles less complete than this (0..1]"})
    note = fields.String(load_default=None, validate=validate.Length(max=200))


class ProfileTaskBatchSchema(BaseSchema):
    batch_key = fields.String()
    selected = fields.Integer(metadata={"description": "customers selected that miss profile fields"})
    created = fields.Integer()
    already_open = fields.Integer(metadata={"description": "selected customers that already had an open task"})


class ProfileTaskSchema(BaseSchema):
    id = fields.Integer()
    customer_id = fields.Integer()
    customer_name = fields.String()
    profile_type = fields.String()
    missing_fields = fields.List(fields.String())
    assignee_user_id = fields.Integer(allow_none=True)
    status = fields.String()
    batch_key = fields.String()
    note = fields.String(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    closed_by = fields.Integer(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)


class ProfileTaskPage(BaseSchema):
    items = fields.List(fields.Nested(ProfileTaskSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class ProfileTaskListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf([s.value for s in TaskStatus]))
    assignee_user_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    customer_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    batch_key = fields.String(validate=validate.Length(max=36))
    profile_type = fields.String(validate=validate.OneOf(PROFILE_TYPES))
    mine = fields.Boolean(load_default=False, metadata={"description": "only tasks assigned to me"})


class ProfileStatsArgs(BaseSchema):
    group_by = fields.String(load_default="type", validate=validate.OneOf(list(profile_stats.GROUPS)))
    org_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "org subtree"})
    grid_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "grid subtree"})
    profile_type = fields.String(validate=validate.OneOf(PROFILE_TYPES))


class ProfileStatsRow(BaseSchema):
    key = fields.Raw(allow_none=True)
    name = fields.String(allow_none=True)
    customers = fields.Integer()
    profiled = fields.Integer()
    complete = fields.Integer()
    profiled_share = fields.Float(allow_none=True)
    complete_share = fields.Float(allow_none=True)
    avg_completeness = fields.Float(allow_none=True)
    avg_completeness_all = fields.Float(allow_none=True)


class ProfileStatsSchema(BaseSchema):
    group_by = fields.String()
    items = fields.List(fields.Nested(ProfileStatsRow))
    totals = fields.Nested(ProfileStatsRow)


def dump_template(t: ProfileTemplate) -> dict[str, Any]:
    return {"id": t.id, "code": t.code, "version": t.version, "profile_type": t.profile_type.value, "name": t.name,
            "description": t.description, "fields": t.fields, "is_current": t.is_current, "is_active": t.is_active,
            "is_builtin": t.is_builtin, "created_by": t.created_by, "created_at": t.created_at}


def dump_task(row: tuple[ProfileCollectionTask, str]) -> dict[str, Any]:
    task, name = row
    return {"id": task.id, "customer_id": task.customer_id, "customer_name": name,
            "profile_type": task.profile_type.value, "missing_fields": task.missing_fields,
            "assignee_user_id": task.assignee_user_id, "status": task.status, "batch_key": task.batch_key,
            "note": task.note, "created_by": task.created_by, "created_at": task.created_at,
            "closed_by": task.closed_by, "closed_at": task.closed_at}


@blp.route("/profile-templates")
class Templates(MethodView):
    @requires("profile_template:read")
    @blp.arguments(ProfileTemplateListArgs, location="query")
    @blp.response(200, ProfileTemplateSchema(many=True))
    def get(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Profile templates (latest versions; all_versions=true for every version)"""
        return [dump_template(t) for t in profile_templates.list_templates(db(), **args)]

    @requires("profile_template:edit")
    @blp.arguments(ProfileTemplateSchema)
    @blp.response(201, ProfileTemplateSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a template (version 1); active by default (the previous active one of its type is retired)"""
        return dump_template(profile_templates.create_template(db(), principal(), data))


@blp.route("/profile-templates/<int:template_id>")
class TemplateById(MethodView):
    @requires("profile_template:read")
    @blp.response(200, ProfileTemplateSchema)
    def get(self, template_id: int) -> dict[str, Any]:
        """One template version"""
        return dump_template(profile_templates.get_template(db(), template_id))

    @requires("profile_template:edit")
    @blp.arguments(ProfileTemplateEditSchema)
    @blp.response(201, ProfileTemplateSchema)
    def put(self, data: dict[str, Any], template_id: int) -> dict[str, Any]:
        """Edit: creates the next version (profiles keep the version they were filled against)"""
        return dump_template(profile_templates.edit_template(db(), principal(), template_id, data))


@blp.route("/profile-templates/<int:template_id>/deactivate")
class TemplateDeactivate(MethodView):
    @requires("profile_template:edit")
    @blp.response(200, ProfileTemplateSchema)
    def post(self, template_id: int) -> dict[str, Any]:
        """Deactivate: profiles of its type cannot be saved until a template of the type is active"""
        return dump_template(profile_templates.set_active(db(), template_id, False))


@blp.route("/profile-templates/<int:template_id>/activate")
class TemplateActivate(MethodView):
    @requires("profile_template:edit")
    @blp.response(200, ProfileTemplateSchema)
    def post(self, template_id: int) -> dict[str, Any]:
        """Activate (the other active template of its type is deactivated)"""
        return dump_template(profile_templates.set_active(db(), template_id, True))


@blp.route("/customers/<int:customer_id>/profile")
class CustomerProfileView(MethodView):
    @requires("customer:read")
    @blp.arguments(ProfileGetArgs, location="query")
    @blp.response(200, ProfileSchema)
    def get(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """The customer's profile with completeness, missing fields and its template's fields (404 outside scope)"""
        session = db()
        customer = get_customer(session, customer_id)
        if args["or_blank"] and session.get(profiles.CustomerProfile, customer_id) is None:
            return profiles.blank_profile(session, customer)
        return profiles.describe(session, profiles.get_profile(session, customer_id))

    @requires("customer:edit")
    @blp.arguments(ProfileBody)
    @blp.response(200, ProfileSchema)
    def put(self, body: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Save the profile (replaces the data): validated against the active template, scored; open collection
        tasks whose fields are now filled close"""
        session = db()
        profile = profiles.save_profile(session, principal(), Keys.of(settings()), customer_id, body["data"],
                                        source=body["source"], profile_type=body["profile_type"])
        return profiles.describe(session, profile)


@blp.route("/customers/<int:customer_id>/profile/reveal")
class ProfileReveal(MethodView):
    @requires("customer:reveal")
    @blp.arguments(ProfileRevealArgs)
    @blp.response(200, description="{field key: phone number in clear}; the reveal is audited")
    def post(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Show the sealed phone numbers of the profile (audited with the reason)"""
        return profiles.reveal_phones(db(), principal(), Keys.of(settings()), customer_id, args["fields"],
                                      args["reason"])


@blp.route("/customers/<int:customer_id>/profile/revisions")
class ProfileRevisions(MethodView):
    @requires("customer:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ProfileRevisionPage)
    def get(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Every saved revision of the profile, newest first"""
        page = profiles.list_revisions(db(), customer_id, args["page"], args["page_size"])
        return page_body(page, lambda r: {**{k: getattr(r, k) for k in ("revision", "template_id", "template_version",
                                                                         "data", "missing", "filled_by", "filled_at",
                                                                         "source")},
                                          "completeness": float(r.completeness)})


@blp.route("/profile-tasks")
class Tasks(MethodView):
    @requires("customer:read")
    @blp.arguments(ProfileTaskListArgs, location="query")
    @blp.response(200, ProfileTaskPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Profile collection tasks in my scope (mine=true: assigned to me)"""
        if args.pop("mine"):
            args["assignee_user_id"] = principal().user_id
        return page_body(profile_tasks.list_tasks(db(), **args), dump_task)

    @requires("profile_task:edit")
    @blp.arguments(ProfileTaskCreateArgs)
    @blp.response(201, ProfileTaskBatchSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Create collection tasks for the missing profile fields of a selection (ids and/or filters), one
        transaction; customers with an open task get no second one"""
        return profile_tasks.create_tasks(db(), principal(), **args)


@blp.route("/profile-tasks/<int:task_id>/cancel")
class TaskCancel(MethodView):
    @requires("profile_task:edit")
    @blp.response(200, ProfileTaskSchema)
    def post(self, task_id: int) -> dict[str, Any]:
        """Cancel an open task"""
        session = db()
        task = profile_tasks.cancel_task(session, principal(), task_id)
        return dump_task((task, get_customer(session, task.customer_id).name))


@blp.route("/profiles/stats")
class Stats(MethodView):
    @requires("customer:read")
    @blp.arguments(ProfileStatsArgs, location="query")
    @blp.response(200, ProfileStatsSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Profile statistics by grid / org / manager / type inside my scope: customers, profiled, complete,
        average completeness"""
        group_by = args.pop("group_by")
        return profile_stats.profile_stats(db(), group_by, **args)
