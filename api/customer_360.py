"""Customer 360 view (客户360视图) and the sortable customer list of the 客户管理 page."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.customers import CustomerListArgs
from api.extensions import BaseSchema, Blueprint, db, page_body, principal, requires, settings
from api.grids import crs_arg
from geo_core.customers import directory, view360
from geo_core.customers.service import Keys

blp = Blueprint("customer_360", __name__, url_prefix="/api/v1/customers", description="客户360视图与客户列表")


class View360Args(BaseSchema):
    crs = fields.String(load_default="wgs84", metadata={"description": "wgs84 | gcj02 | bd09: of the location"})
    sections = fields.List(fields.String(validate=validate.OneOf(list(view360.SECTIONS))), load_default=None,
                           metadata={"description": "only these sections (default: all)"})


class SectionSchema(BaseSchema):
    title = fields.String()
    available = fields.Boolean(metadata={"description": "false: the feature behind it is not installed "
                                                        "(reason not_installed), not permitted or failed"})
    reason = fields.String()


class View360Schema(BaseSchema):
    customer_id = fields.Integer()
    name = fields.String()
    crs = fields.String()
    generated_at = fields.String()
    order = fields.List(fields.String(), metadata={"description": "section keys in display order"})
    sections = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "key -> {title, available, reason?, ...}: profile, holdings, location, profile_archive, "
                       "tags, groups, accounts, loans, reminders, events, credit, ownerships, lists, campaigns, "
                       "tasks, visits, footprints"})


class DirectoryArgs(CustomerListArgs):
    sort = fields.String(load_default=None, validate=validate.OneOf(directory.SORT_CHOICES),
                         metadata={"description": "column to sort by, `-` prefix = descending; default: the view's "
                                                  "order (管户: owner name, 网格: grid code)"})


class DirectoryRowSchema(BaseSchema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    category = fields.String()
    profile_type = fields.String(allow_none=True)
    customer_no = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    id_number_mask = fields.String(allow_none=True)
    uscc_mask = fields.String(allow_none=True)
    phone_mask = fields.String(allow_none=True)
    status = fields.String()
    owner_user_id = fields.Integer(allow_none=True)
    owner_name = fields.String(allow_none=True)
    org_id = fields.Integer()
    org_name = fields.String(allow_none=True)
    grid_id = fields.Integer(allow_none=True)
    grid_code = fields.String(allow_none=True)
    grid_name = fields.String(allow_none=True)
    grid_overridden = fields.Boolean()
    has_point = fields.Boolean()
    location_source = fields.String(allow_none=True)
    deposit_balance = fields.Decimal(as_string=True, allow_none=True)
    loan_balance = fields.Decimal(as_string=True, allow_none=True)
    credit_limit = fields.Decimal(as_string=True, allow_none=True)
    holdings_as_of = fields.Date(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class DirectoryPage(BaseSchema):
    items = fields.List(fields.Nested(DirectoryRowSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


@blp.route("/<int:customer_id>/360")
class Customer360(MethodView):
    @requires("customer:read")
    @blp.arguments(View360Args, location="query")
    @blp.response(200, View360Schema)
    def get(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """The customer's 360 view: profile, holdings, location, tags, groups, reminders, credit, lists …

        Sections whose feature is not installed answer `available: false`; 404 outside my scope."""
        return view360.build_view(db(), customer_id, crs=crs_arg(), permissions=principal().permissions,
                                  only=args["sections"])


@blp.route("/directory")
class Directory(MethodView):
    @requires("customer:read")
    @blp.arguments(DirectoryArgs, location="query")
    @blp.response(200, DirectoryPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The 客户管理 list: the filters of GET /customers, sortable columns, owner/grid/org names (masks only)"""
        args.pop("crs", None)
        result = directory.list_directory(db(), Keys.of(settings()), **args)
        return page_body(result, lambda row: row)
