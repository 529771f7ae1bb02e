"""Customer groups (客群管理): definitions, live preview, submit → approve/reject (审核) with log, members."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, PageArgs, db, principal, requires
from geo_core.customers.models import CustomerKind
from geo_core.groups import definition as defs
from geo_core.groups import service
from geo_core.groups.models import CustomerGroup, GroupCategory, GroupStatus

blp = Blueprint("customer_groups", __name__, url_prefix="/api/v1/customer-groups", description="客群管理")

KINDS = [k.value for k in CustomerKind]
CATEGORIES = [c.value for c in GroupCategory]
STATUSES = [s.value for s in GroupStatus]
VISIBILITIES = ["public", "private"]
DEFINITION_DOC = ("{tags: {any|all|none: [tag ids]}, rule: {rule tree as for rule tags}, grid_ids, manager_ids, "
                  "org_ids (subtrees), polygon: GeoJSON Polygon/MultiPolygon, crs: wgs84|gcj02|bd09, batch_ids "
                  "(list groups)}; every part narrows the group")


class GroupSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS), metadata={"description": "person | company"})
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES),
                             metadata={"description": "formal (正式) | potential (潜在) | list (名单)"})
    definition = fields.Dict(required=True, metadata={"description": DEFINITION_DOC})
    visibility = fields.String(load_default="private", validate=validate.OneOf(VISIBILITIES),
                               metadata={"description": "private: the creator (and reviewers); public: the "
                                                        "creator's org scope and, once approved, its subtree"})
    status = fields.String(dump_only=True, metadata={"description": "draft | submitted | approved | rejected"})
    version = fields.Integer(dump_only=True)
    org_id = fields.Integer(dump_only=True)
    created_by = fields.Integer(dump_only=True)
    submitted_by = fields.Integer(dump_only=True, allow_none=True)
    submitted_at = fields.DateTime(dump_only=True, allow_none=True)
    reviewed_by = fields.Integer(dump_only=True, allow_none=True)
    reviewed_at = fields.DateTime(dump_only=True, allow_none=True)
    review_comment = fields.String(dump_only=True, allow_none=True)
    member_count = fields.Integer(dump_only=True, allow_none=True,
                                  metadata={"description": "size of the approved snapshot"})
    snapshot_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class GroupUpdateSchema(BaseSchema):
    """PATCH: only the fields sent change; an approved group goes back to draft (next version)."""

    name = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    definition = fields.Dict()
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))


class GroupListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))
    kind = fields.String(validate=validate.OneOf(KINDS))
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    mine = fields.Boolean(load_default=False, metadata={"description": "only groups I created"})


class GroupPage(BaseSchema):
    items = fields.List(fields.Nested(GroupSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class GroupPreviewArgs(BaseSchema):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    definition = fields.Dict(required=True, metadata={"description": DEFINITION_DOC})
    top = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))


class GroupTopArgs(BaseSchema):
    top = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))


class GroupCountSchema(BaseSchema):
    count = fields.Integer()
    name = fields.String(allow_none=True)


class GroupManagerCount(GroupCountSchema):
    user_id = fields.Integer(allow_none=True, metadata={"description": "null: customers without a manager"})


class GroupGridCount(GroupCountSchema):
    grid_id = fields.Integer(allow_none=True, metadata={"description": "null: customers in no grid"})


class GroupPreviewSchema(BaseSchema):
    total = fields.Integer(metadata={"description": "members inside my data scope"})
    managers = fields.Integer(metadata={"description": "number of distinct managers (管户关系)"})
    grids = fields.Integer(metadata={"description": "number of distinct grids (管辖网格)"})
    by_manager = fields.List(fields.Nested(GroupManagerCount))
    by_grid = fields.List(fields.Nested(GroupGridCount))


class GroupCommentArgs(BaseSchema):
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class GroupRejectArgs(BaseSchema):
    comment = fields.String(required=True, validate=validate.Length(min=1, max=500))


class GroupReviewSchema(BaseSchema):
    id = fields.Integer()
    version = fields.Integer()
    action = fields.String(metadata={"description": "submit | approve | reject | withdraw | reset"})
    comment = fields.String(allow_none=True)
    member_count = fields.Integer(allow_none=True)
    actor_user_id = fields.Integer(allow_none=True)
    actor_name = fields.String(allow_none=True)
    created_at = fields.DateTime()


class GroupMemberSchema(BaseSchema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    category = fields.String()
    id_number_mask = fields.String(allow_none=True)
    uscc_mask = fields.String(allow_none=True)
    phone_mask = fields.String(allow_none=True)
    grid_id = fields.Integer(allow_none=True)
    owner_user_id = fields.Integer(allow_none=True)
    org_id = fields.Integer()


class GroupMemberPage(BaseSchema):
    items = fields.List(fields.Nested(GroupMemberSchema))
    total = fields.Integer(metadata={"description": "members inside my data scope"})
    page = fields.Integer()
    page_size = fields.Integer()


def dump(group: CustomerGroup) -> dict[str, Any]:
    data = {c: getattr(group, c) for c in GroupSchema._declared_fields if hasattr(CustomerGroup, c)}
    for c in ("kind", "category", "status"):
        data[c] = getattr(data[c], "value", data[c])
    return data


def _value(v: Any) -> Any:
    return getattr(v, "value", v)


@blp.route("")
class Groups(MethodView):
    @requires("group:read")
    @blp.arguments(GroupListArgs, location="query")
    @blp.response(200, GroupPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Groups I may see, by status, visibility, kind, category, name (q) or only mine"""
        page = service.list_groups(db(), principal(), **args)
        return {"items": [dump(g) for g in page.items], "total": page.total, "page": page.page,
                "page_size": page.page_size}

    @requires("group:edit")
    @blp.arguments(GroupSchema)
    @blp.response(201, GroupSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a group (draft) from a definition"""
        return dump(service.create_group(db(), principal(), data))


@blp.route("/preview")
class Preview(MethodView):
    @requires("group:read")
    @blp.arguments(GroupPreviewArgs)
    @blp.response(200, GroupPreviewSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Live preview of a definition inside my scope: total, counts by manager and by grid (top N)"""
        session = db()
        category = GroupCategory(args["category"])
        definition = defs.normalise(session, args["definition"], category)
        return service.preview(session, definition, args["kind"], category.value, top=args["top"])


@blp.route("/<int:group_id>")
class GroupById(MethodView):
    @requires("group:read")
    @blp.response(200, GroupSchema)
    def get(self, group_id: int) -> dict[str, Any]:
        """One group (404 if I may not see it)"""
        return dump(service.get_group(db(), principal(), group_id))

    @requires("group:edit")
    @blp.arguments(GroupUpdateSchema)
    @blp.response(200, GroupSchema)
    def patch(self, data: dict[str, Any], group_id: int) -> dict[str, Any]:
        """Edit my group; an approved one returns to draft as the next version (its snapshot is dropped)"""
        return dump(service.update_group(db(), principal(), group_id, data))

    @requires("group:edit")
    @blp.response(204)
    def delete(self, group_id: int) -> None:
        """Delete my draft or rejected group"""
        service.delete_group(db(), principal(), group_id)


@blp.route("/<int:group_id>/preview")
class GroupPreview(MethodView):
    @requires("group:read")
    @blp.arguments(GroupTopArgs, location="query")
    @blp.response(200, GroupPreviewSchema)
    def get(self, args: dict[str, Any], group_id: int) -> dict[str, Any]:
        """Live counts of a saved group's definition inside my scope"""
        session = db()
        group = service.get_group(session, principal(), group_id)
        return service.preview(session, group.definition, _value(group.kind), _value(group.category),
                               top=args["top"])


@blp.route("/<int:group_id>/submit")
class Submit(MethodView):
    @requires("group:edit")
    @blp.arguments(GroupCommentArgs)
    @blp.response(200, GroupSchema)
    def post(self, args: dict[str, Any], group_id: int) -> dict[str, Any]:
        """Submit my draft (or rejected) group for review"""
        return dump(service.submit_group(db(), principal(), group_id, args["comment"]))


@blp.route("/<int:group_id>/withdraw")
class Withdraw(MethodView):
    @requires("group:edit")
    @blp.arguments(GroupCommentArgs)
    @blp.response(200, GroupSchema)
    def post(self, args: dict[str, Any], group_id: int) -> dict[str, Any]:
        """Withdraw my submitted group back to draft"""
        return dump(service.withdraw_group(db(), principal(), group_id, args["comment"]))


@blp.route("/<int:group_id>/approve")
class Approve(MethodView):
    @requires("group:approve")
    @blp.arguments(GroupCommentArgs)
    @blp.response(200, GroupSchema)
    def post(self, args: dict[str, Any], group_id: int) -> dict[str, Any]:
        """Approve a submitted group in my scope (not my own): its members are snapshotted for campaigns"""
        return dump(service.approve_group(db(), principal(), group_id, args["comment"]))


@blp.route("/<int:group_id>/reject")
class Reject(MethodView):
    @requires("group:approve")
    @blp.arguments(GroupRejectArgs)
    @blp.response(200, GroupSchema)
    def post(self, args: dict[str, Any], group_id: int) -> dict[str, Any]:
        """Reject a submitted group in my scope with a comment"""
        return dump(service.reject_group(db(), principal(), group_id, args["comment"]))


@blp.route("/<int:group_id>/reviews")
class Reviews(MethodView):
    @requires("group:read")
    @blp.response(200, GroupReviewSchema(many=True))
    def get(self, group_id: int) -> list[dict[str, Any]]:
        """The review log (审核日志): who did what, with comments"""
        return service.reviews(db(), principal(), group_id)


@blp.route("/<int:group_id>/members")
class Members(MethodView):
    @requires("group:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, GroupMemberPage)
    def get(self, args: dict[str, Any], group_id: int) -> dict[str, Any]:
        """The approved member snapshot, paged, identifiers masked; members outside my scope are left out"""
        page = service.members(db(), principal(), group_id, page=args["page"], page_size=args["page_size"])
        items = [{**r, "kind": _value(r["kind"]), "category": _value(r["category"])} for r in page.items]
        return {"items": items, "total": page.total, "page": page.page, "page_size": page.page_size}
