"""Grid staffing (定格-定岗-定人-定责): post assignments with history, hand-over (移交), grid assistants (网格三员).

Everything follows the visibility of the grid (row-level security): a grid, assignment, hand-over or
assistant outside my scope is 404; a user or assistant I cannot see cannot be assigned (422).
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires
from geo_core.grids import staffing as service
from geo_core.grids.staffing_models import (
    ASSISTANT_ROLE_LABELS,
    POST_LABELS,
    AssistantRole,
    AssistantStatus,
    GridAssistant,
    GridPost,
    Handover,
)
from geo_core.orgs.models import Org
from geo_core.paging import PG_INT_MAX
from geo_core.users.models import User

blp = Blueprint("grid_staffing", __name__, url_prefix="/api/v1", description="网格定岗定人、移交与网格三员")

POSTS = [p.value for p in GridPost]
ASSISTANT_ROLES = [k.value for k in AssistantRole]
ASSISTANT_STATUSES = [s.value for s in AssistantStatus]
ID = validate.Range(min=1, max=PG_INT_MAX)
PHONE = validate.Regexp(r"^[0-9+\- ]{3,32}$", error="电话号码格式错误")
KPI_DOC = {"description": "metric -> non-negative number, e.g. {\"households_profiled\": 500, \"deposits_wan\": 2000}"}


# -- schemas ---------------------------------------------------------------------------------------------

class AssignmentSchema(BaseSchema):
    id = fields.Integer()
    grid_id = fields.Integer()
    grid_code = fields.String()
    grid_name = fields.String()
    post = fields.String(metadata={"enum": POSTS})
    post_label = fields.String()
    user_id = fields.Integer(allow_none=True)
    assistant_id = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True, metadata={"description": "the holder's name"})
    responsibilities = fields.String(allow_none=True)
    kpi_targets = fields.Dict(metadata=KPI_DOC)
    valid_from = fields.Date()
    valid_to = fields.Date(allow_none=True)
    is_current = fields.Boolean()
    ended_reason = fields.String(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    ended_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class AssignmentCreateSchema(BaseSchema):
    post = fields.String(required=True, validate=validate.OneOf(POSTS))
    user_id = fields.Integer(allow_none=True, validate=ID, metadata={"description": "a user (or assistant_id)"})
    assistant_id = fields.Integer(allow_none=True, validate=ID,
                                  metadata={"description": "a grid assistant, for post grid_assistant only"})
    responsibilities = fields.String(allow_none=True, validate=validate.Length(max=2000))
    kpi_targets = fields.Dict(allow_none=True, metadata=KPI_DOC)
    valid_from = fields.Date(allow_none=True, metadata={"description": "default: today"})


class AssignmentUpdateSchema(BaseSchema):
    responsibilities = fields.String(allow_none=True, validate=validate.Length(max=2000))
    kpi_targets = fields.Dict(allow_none=True, metadata=KPI_DOC)
    valid_from = fields.Date(metadata={"description": "correct the start of the effective period"})


class ReasonArgs(BaseSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=400))


class IncludeEndedArgs(BaseSchema):
    include_ended = fields.Boolean(load_default=False, metadata={"description": "also ended assignments (history)"})


class HandoverArgs(BaseSchema):
    from_user_id = fields.Integer(required=True, validate=ID)
    to_user_id = fields.Integer(required=True, validate=ID)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=400))
    include_customers = fields.Boolean(load_default=False,
                                       metadata={"description": "also move account ownership (管户关系)"})


class HandoverSchema(BaseSchema):
    id = fields.Integer()
    grid_id = fields.Integer()
    grid_code = fields.String(allow_none=True)
    grid_name = fields.String(allow_none=True)
    from_user_id = fields.Integer()
    from_user_name = fields.String(allow_none=True)
    to_user_id = fields.Integer()
    to_user_name = fields.String(allow_none=True)
    reason = fields.String()
    include_customers = fields.Boolean()
    moved_assignments = fields.Integer()
    moved_customers = fields.Integer()
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    detail = fields.Dict()


class HandoverPage(BaseSchema):
    items = fields.List(fields.Nested(HandoverSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class HandoverListArgs(BaseSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=500))
    grid_id = fields.Integer(validate=ID)
    user_id = fields.Integer(validate=ID, metadata={"description": "hand-overs from or to this user"})


class AssistantSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    phone = fields.String(allow_none=True, validate=PHONE)
    kind = fields.String(load_default="other", validate=validate.OneOf(ASSISTANT_ROLES))
    kind_label = fields.String(dump_only=True)
    org_id = fields.Integer(validate=ID, metadata={"description": "owning org; default: my org"})
    org_name = fields.String(dump_only=True, allow_none=True)
    user_id = fields.Integer(allow_none=True, validate=ID, metadata={"description": "if also a system user"})
    user_name = fields.String(dump_only=True, allow_none=True)
    status = fields.String(load_default="active", validate=validate.OneOf(ASSISTANT_STATUSES))
    notes = fields.String(allow_none=True, validate=validate.Length(max=1000))
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class AssistantUpdateSchema(AssistantSchema):
    """PATCH: only the fields sent change."""

    kind = fields.String(validate=validate.OneOf(ASSISTANT_ROLES))
    status = fields.String(validate=validate.OneOf(ASSISTANT_STATUSES))


class AssistantPage(BaseSchema):
    items = fields.List(fields.Nested(AssistantSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class AssistantListArgs(PageArgs):
    org_id = fields.Integer(validate=ID, metadata={"description": "org and its subtree"})
    kind = fields.String(validate=validate.OneOf(ASSISTANT_ROLES))
    status = fields.String(validate=validate.OneOf(ASSISTANT_STATUSES))


# -- dumps -----------------------------------------------------------------------------------------------

def dump_assignment(row: service.StaffRow) -> dict[str, Any]:
    a = row.assignment
    data = {c: getattr(a, c) for c in ("id", "grid_id", "user_id", "assistant_id", "responsibilities", "kpi_targets",
                                       "valid_from", "valid_to", "is_current", "ended_reason", "created_by",
                                       "ended_by", "created_at")}
    return {**data, "grid_code": row.grid.code, "grid_name": row.grid.name, "post": a.post.value,
            "post_label": POST_LABELS[a.post.value], "name": row.name}


def dump_handover(h: Handover) -> dict[str, Any]:
    detail = h.detail or {}
    data = {c: getattr(h, c) for c in ("id", "grid_id", "from_user_id", "to_user_id", "reason", "include_customers",
                                       "moved_assignments", "moved_customers", "created_by", "created_at", "detail")}
    return {**data, "grid_code": detail.get("grid_code"), "grid_name": detail.get("grid_name"),
            "from_user_name": detail.get("from_user_name"), "to_user_name": detail.get("to_user_name")}


def dump_assistant(a: GridAssistant) -> dict[str, Any]:
    org = db().get(Org, a.org_id)
    user = db().get(User, a.user_id) if a.user_id else None
    data = {c: getattr(a, c) for c in ("id", "name", "phone", "org_id", "user_id", "notes", "created_at",
                                       "updated_at")}
    return {**data, "kind": a.kind.value, "kind_label": ASSISTANT_ROLE_LABELS[a.kind.value],
            "status": a.status.value, "org_name": org.name if org else None, "user_name": user.name if user else None}


# -- assignments -----------------------------------------------------------------------------------------

@blp.route("/grids/<int:grid_id>/assignments")
class GridAssignments(MethodView):
    @requires("grid:read")
    @blp.arguments(IncludeEndedArgs, location="query")
    @blp.response(200, AssignmentSchema(many=True))
    def get(self, args: dict[str, Any], grid_id: int) -> list[dict[str, Any]]:
        """Who holds which post on a grid (current, or the full history with include_ended=true)"""
        rows = service.list_grid_assignments(db(), grid_id, include_ended=args["include_ended"])
        return [dump_assignment(r) for r in rows]

    @requires("grid:assign")
    @blp.arguments(AssignmentCreateSchema)
    @blp.response(201, AssignmentSchema)
    @blp.alt_response(409, description="The grid already has a current grid leader (named in the message), or "
                                       "the person already holds this post")
    def post(self, data: dict[str, Any], grid_id: int) -> dict[str, Any]:
        """Put a user (or a grid assistant) on a post of a grid with responsibilities and KPI targets"""
        assignment = service.create_assignment(db(), principal(), grid_id, data)
        return dump_assignment(service.staff_row(db(), assignment))


@blp.route("/grid-assignments/<int:assignment_id>")
class GridAssignmentById(MethodView):
    @requires("grid:read")
    @blp.response(200, AssignmentSchema)
    def get(self, assignment_id: int) -> dict[str, Any]:
        """One assignment (404 if its grid is outside my scope)"""
        return dump_assignment(service.staff_row(db(), service.get_assignment(db(), assignment_id)))

    @requires("grid:assign")
    @blp.arguments(AssignmentUpdateSchema)
    @blp.response(200, AssignmentSchema)
    def patch(self, data: dict[str, Any], assignment_id: int) -> dict[str, Any]:
        """Change the responsibilities, KPI targets or start date (valid_from) of a current assignment"""
        assignment = service.update_assignment(db(), principal(), assignment_id, data)
        return dump_assignment(service.staff_row(db(), assignment))


@blp.route("/grid-assignments/<int:assignment_id>/end")
class GridAssignmentEnd(MethodView):
    @requires("grid:assign")
    @blp.arguments(ReasonArgs)
    @blp.response(200, AssignmentSchema)
    def post(self, args: dict[str, Any], assignment_id: int) -> dict[str, Any]:
        """End an assignment today (kept as history)"""
        assignment = service.end_assignment(db(), principal(), assignment_id, args["reason"])
        return dump_assignment(service.staff_row(db(), assignment))


@blp.route("/users/<int:user_id>/grid-assignments")
class UserGridAssignments(MethodView):
    @requires("grid:read")
    @blp.arguments(IncludeEndedArgs, location="query")
    @blp.response(200, AssignmentSchema(many=True))
    def get(self, args: dict[str, Any], user_id: int) -> list[dict[str, Any]]:
        """The grids a user is responsible for (我的网格), among the grids I can see"""
        rows = service.list_user_assignments(db(), user_id, include_ended=args["include_ended"])
        return [dump_assignment(r) for r in rows]


# -- hand-over -------------------------------------------------------------------------------------------

@blp.route("/grids/<int:grid_id>/handover")
class GridHandover(MethodView):
    @requires("grid:assign")
    @blp.arguments(HandoverArgs)
    @blp.response(201, HandoverSchema)
    @blp.alt_response(409, description="The receiver already holds one of the posts; nothing was changed")
    def post(self, data: dict[str, Any], grid_id: int) -> dict[str, Any]:
        """Hand over all current posts of one user on a grid to another user, in one transaction"""
        handover = service.hand_over_grid(db(), principal(), grid_id, **data)
        return dump_handover(handover)


@blp.route("/handovers")
class Handovers(MethodView):
    @requires("grid:read")
    @blp.arguments(HandoverListArgs, location="query")
    @blp.response(200, HandoverPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Hand-overs on grids I can see, newest first (filter by grid or by user: from or to)"""
        return page_body(service.list_handovers(db(), **args), dump_handover)


@blp.route("/handovers/<int:handover_id>")
class HandoverById(MethodView):
    @requires("grid:read")
    @blp.response(200, HandoverSchema)
    def get(self, handover_id: int) -> dict[str, Any]:
        """One hand-over (404 if its grid is outside my scope)"""
        return dump_handover(service.get_handover(db(), handover_id))


# -- grid assistants (网格三员) ----------------------------------------------------------------------------

@blp.route("/grid-assistants")
class GridAssistants(MethodView):
    @requires("assistant:read")
    @blp.arguments(AssistantListArgs, location="query")
    @blp.response(200, AssistantPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Grid assistants of orgs in my scope (search name, phone, notes)"""
        return page_body(service.list_assistants(db(), **args), dump_assistant)

    @requires("assistant:edit")
    @blp.arguments(AssistantSchema)
    @blp.response(201, AssistantSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Register a grid assistant (usually not a bank employee) under an org of my scope"""
        return dump_assistant(service.create_assistant(db(), principal(), data))


@blp.route("/grid-assistants/<int:assistant_id>")
class GridAssistantById(MethodView):
    @requires("assistant:read")
    @blp.response(200, AssistantSchema)
    def get(self, assistant_id: int) -> dict[str, Any]:
        """One grid assistant (404 if outside my scope)"""
        return dump_assistant(service.get_assistant(db(), assistant_id))

    @requires("assistant:edit")
    @blp.arguments(AssistantUpdateSchema(partial=True))
    @blp.response(200, AssistantSchema)
    def patch(self, data: dict[str, Any], assistant_id: int) -> dict[str, Any]:
        """Update a grid assistant"""
        return dump_assistant(service.update_assistant(db(), principal(), assistant_id, data))

    @requires("assistant:edit")
    @blp.response(204)
    def delete(self, assistant_id: int) -> None:
        """Delete a grid assistant who never held a post (otherwise set status inactive)"""
        service.delete_assistant(db(), assistant_id)
