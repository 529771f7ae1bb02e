"""Customer tags (客户标签): definitions, rule preview and recompute (RQ job), manual tagging single and batch."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import fields, validate
from rq import Queue

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, state
from geo_core.customers.service import get_customer
from geo_core.errors import PermissionDenied, ValidationFailed
from geo_core.scope import DataScope
from geo_core.tags import rules, service
from geo_core.tags.models import Tag, TagKind
from jobs.queues import DEFAULT
from jobs.tags import recompute_rule_tags

blp = Blueprint("tags", __name__, url_prefix="/api/v1", description="客户标签")

CODE_RE = r"^[a-z][a-z0-9_]{1,39}$"
VISIBILITIES = ["public", "private"]
IDS = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)),
                  validate=validate.Length(min=1, max=service.MAX_BATCH))


class TagSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True,
                         validate=validate.Regexp(CODE_RE, error="小写字母开头，2-40 位小写字母/数字/下划线"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    category = fields.String(load_default="other", validate=validate.Length(min=1, max=32),
                             metadata={"description": "e.g. asset (资产), demographic (人口), industry, location"})
    color = fields.String(load_default="#1677ff", validate=validate.Regexp(r"^#[0-9a-fA-F]{6}$"))
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in TagKind]))
    rule = fields.Dict(load_default=None, allow_none=True,
                       metadata={"description": "rule tags: {all|any: [...]} / {not: ...} / {field, op, value}; "
                                                "fields: GET /api/v1/tags/fields"})
    visibility = fields.String(load_default="private", validate=validate.OneOf(VISIBILITIES),
                               metadata={"description": "public: the whole bank; private: the owning org's scope"})
    org_id = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "null: bank-wide tag"})
    customer_count = fields.Integer(dump_only=True, metadata={"description": "customers in my scope carrying it"})
    computed_at = fields.DateTime(dump_only=True, allow_none=True)
    computed_added = fields.Integer(dump_only=True, allow_none=True)
    computed_removed = fields.Integer(dump_only=True, allow_none=True)
    created_by = fields.Integer(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class TagUpdateSchema(TagSchema):
    class Meta:
        exclude = ("code", "kind")

    category = fields.String(validate=validate.Length(min=1, max=32))
    color = fields.String(validate=validate.Regexp(r"^#[0-9a-fA-F]{6}$"))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    rule = fields.Dict(allow_none=True)
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))


class TagListArgs(PageArgs):
    kind = fields.String(validate=validate.OneOf([k.value for k in TagKind]))
    category = fields.String(validate=validate.Length(max=32))


class TagPage(BaseSchema):
    items = fields.List(fields.Nested(TagSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class TagRuleArgs(BaseSchema):
    rule = fields.Dict(required=True)


class TagAssignArgs(BaseSchema):
    tag_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)), required=True,
                          validate=validate.Length(min=1, max=50))
    customer_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)), load_default=None,
                               validate=validate.Length(min=1, max=service.MAX_BATCH))
    batch_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**31 - 1),
                              metadata={"description": "tag every customer of this imported list (source import)"})


class TagUnassignArgs(BaseSchema):
    tag_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)), required=True,
                          validate=validate.Length(min=1, max=50))
    customer_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=2**31 - 1)), required=True,
                               validate=validate.Length(min=1, max=service.MAX_BATCH))


class CustomerTagSchema(BaseSchema):
    tag_id = fields.Integer()
    code = fields.String()
    name = fields.String()
    category = fields.String()
    color = fields.String()
    kind = fields.String()
    source = fields.String(metadata={"description": "manual | rule | import"})
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class TaggedCustomerPage(BaseSchema):
    items = fields.List(fields.Dict(), metadata={"description": "id, name, kind, category, masks, grid_id, "
                                                                "owner_user_id, org_id, source, tagged_at"})
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class TagJobSchema(BaseSchema):
    id = fields.String()
    status = fields.String()


def dump_tag(tag: Tag, count: int | None = None) -> dict[str, Any]:
    data = {c: getattr(tag, c) for c in TagSchema._declared_fields if hasattr(Tag, c)}
    data["kind"] = tag.kind.value
    data["customer_count"] = count
    return data


def _writable(tag: Tag) -> None:
    """Only tags of orgs in my scope (bank-wide ones: scope-all admins) may be edited or recomputed."""
    p = principal()
    if p.scope is DataScope.all:
        return
    if tag.org_id is None or not service.org_in_scope(db(), tag.org_id):
        raise PermissionDenied("只能维护本机构及下辖机构的标签", code="TAG_NOT_WRITABLE")


def _enqueue(tag_id: int | None) -> dict[str, Any]:
    job = Queue(DEFAULT, connection=state().redis).enqueue(
        recompute_rule_tags, tag_id, meta={"user_id": principal().user_id, "request_id": g.request_id},
        job_timeout=1800, result_ttl=86400, failure_ttl=7 * 86400)
    return {"id": job.id, "status": "queued"}


def _both(customer_id: int, tag_id: int) -> None:
    """404 unless both the customer and the tag are visible to me."""
    get_customer(db(), customer_id)
    service.get_tag(db(), tag_id)


def dump_page(page: Any) -> dict[str, Any]:
    return page_body(page, lambda row: dump_tag(*row))


@blp.route("/tags")
class Tags(MethodView):
    @requires("tag:read")
    @blp.arguments(TagListArgs, location="query")
    @blp.response(200, TagPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Tags I may see (bank-wide, public, and my orgs'), with the number of customers in my scope"""
        return dump_page(service.list_tags(db(), **args))

    @requires("tag:edit")
    @blp.arguments(TagSchema)
    @blp.response(201, TagSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Define a manual or rule tag (rules are validated with the path of every bad node)"""
        tag = service.create_tag(db(), principal(), data)
        return dump_tag(tag, 0)


@blp.route("/tags/fields")
class TagFields(MethodView):
    @requires("tag:read")
    @blp.response(200, description="[{field, label, type, ops, choices, range}]")
    def get(self) -> list[dict[str, Any]]:
        """The whitelist of rule fields and their operators"""
        return rules.describe_fields()


@blp.route("/tags/rule-preview")
class RulePreview(MethodView):
    @requires("tag:read")
    @blp.arguments(TagRuleArgs)
    @blp.response(200, description="{count}: active customers in my scope matching the rule")
    def post(self, args: dict[str, Any]) -> dict[str, int]:
        """Count the customers a rule matches in my scope (nothing saved)"""
        return {"count": service.preview_rule(db(), args["rule"])}


@blp.route("/tags/<int:tag_id>")
class TagById(MethodView):
    @requires("tag:read")
    @blp.response(200, TagSchema)
    def get(self, tag_id: int) -> dict[str, Any]:
        """One tag (404 outside my scope)"""
        session = db()
        tag = service.get_tag(session, tag_id)
        return dump_tag(tag, service.count_carriers(session, tag.id))

    @requires("tag:edit")
    @blp.arguments(TagUpdateSchema(partial=True))
    @blp.response(200, TagSchema)
    def patch(self, data: dict[str, Any], tag_id: int) -> dict[str, Any]:
        """Edit a tag (a changed rule takes effect at the next recompute)"""
        session = db()
        _writable(service.get_tag(session, tag_id))
        tag = service.update_tag(session, principal(), tag_id, data)
        return dump_tag(tag, service.count_carriers(session, tag.id))

    @requires("tag:edit")
    @blp.response(204)
    @blp.alt_response(409, description="TAG_IN_USE: a rule tag or a customer group refers to it")
    def delete(self, tag_id: int) -> None:
        """Delete a tag and its customer tags"""
        session = db()
        _writable(service.get_tag(session, tag_id))
        service.delete_tag(session, tag_id)


@blp.route("/tags/<int:tag_id>/customers")
class TagCustomers(MethodView):
    @requires("tag:read", "customer:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, TaggedCustomerPage)
    def get(self, args: dict[str, Any], tag_id: int) -> dict[str, Any]:
        """Customers in my scope carrying the tag (identifiers masked)"""
        page = service.customers_with_tag(db(), tag_id, page=args["page"], page_size=args["page_size"])
        return {"items": page.items, "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/tags/<int:tag_id>/recompute")
class TagRecompute(MethodView):
    @requires("tag:edit")
    @blp.response(202, TagJobSchema)
    def post(self, tag_id: int) -> dict[str, Any]:
        """Recompute one rule tag in the background; poll GET /api/v1/jobs/{id} for {added, removed}"""
        tag = service.get_tag(db(), tag_id)
        _writable(tag)
        if tag.kind is not TagKind.rule:
            raise ValidationFailed.on("tag_id", "只有规则标签可以重新计算")
        return _enqueue(tag.id)


@blp.route("/tags/recompute")
class TagsRecompute(MethodView):
    @requires("tag:edit")
    @blp.response(202, TagJobSchema)
    def post(self) -> dict[str, Any]:
        """Recompute every rule tag in the background (scope-all administrators)"""
        if principal().scope is not DataScope.all:
            raise PermissionDenied("只有全行管理员可以重新计算全部规则标签", code="PERMISSION_DENIED")
        return _enqueue(None)


@blp.route("/tags/assign")
class Assign(MethodView):
    @requires("tag:assign")
    @blp.arguments(TagAssignArgs)
    @blp.response(200, description="{added}: tags newly put on customers")
    def post(self, args: dict[str, Any]) -> dict[str, int]:
        """Put manual tags on customers, or on every customer of an imported list (all or nothing)"""
        if (args["customer_ids"] is None) == (args["batch_id"] is None):
            raise ValidationFailed.on("customer_ids", "customer_ids 与 batch_id 必须二选一")
        added = service.tag_customers(db(), principal(), args["tag_ids"], customer_ids=args["customer_ids"],
                                      batch_id=args["batch_id"])
        return {"added": added}


@blp.route("/tags/unassign")
class Unassign(MethodView):
    @requires("tag:assign")
    @blp.arguments(TagUnassignArgs)
    @blp.response(200, description="{removed}")
    def post(self, args: dict[str, Any]) -> dict[str, int]:
        """Take manual tags off customers (all or nothing)"""
        return {"removed": service.untag_customers(db(), principal(), args["tag_ids"], args["customer_ids"])}


@blp.route("/customers/<int:customer_id>/tags")
class CustomerTags(MethodView):
    @requires("tag:read", "customer:read")
    @blp.response(200, CustomerTagSchema(many=True))
    def get(self, customer_id: int) -> list[dict[str, Any]]:
        """The tags of one customer (404 outside my scope)"""
        return [{"tag_id": t.id, "code": t.code, "name": t.name, "category": t.category, "color": t.color,
                 "kind": t.kind.value, "source": ct.source.value, "created_by": ct.created_by,
                 "created_at": ct.created_at} for t, ct in service.tags_of_customer(db(), customer_id)]


@blp.route("/customers/<int:customer_id>/tags/<int:tag_id>")
class CustomerTagById(MethodView):
    @requires("tag:assign")
    @blp.response(200, description="{added: 0|1}")
    def put(self, customer_id: int, tag_id: int) -> dict[str, int]:
        """Put one manual tag on one customer"""
        _both(customer_id, tag_id)
        return {"added": service.tag_customers(db(), principal(), [tag_id], customer_ids=[customer_id])}

    @requires("tag:assign")
    @blp.response(204)
    def delete(self, customer_id: int, tag_id: int) -> None:
        """Take one manual tag off one customer"""
        _both(customer_id, tag_id)
        service.untag_customers(db(), principal(), [tag_id], [customer_id])
