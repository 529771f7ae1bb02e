"""Customers (客户管理): lists by ownership or grid, archives with encrypted identifiers, reveal, 纠偏."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, settings
from api.grids import crs_arg, from_wgs84, to_wgs84
from geo_core.customers import service
from geo_core.customers.models import (
    Customer,
    CustomerCategory,
    CustomerKind,
    CustomerStatus,
    LocationSource,
    ProfileType,
)

blp = Blueprint("customers", __name__, url_prefix="/api/v1/customers", description="客户管理")

KINDS = [k.value for k in CustomerKind]
CATEGORIES = [c.value for c in CustomerCategory]
PROFILES = [p.value for p in ProfileType]
STATUSES = [s.value for s in CustomerStatus if s is not CustomerStatus.merged]  # merged: only by a merge
SOURCES = [s.value for s in LocationSource]


def keys() -> service.Keys:
    return service.Keys.of(settings())


class CustomerSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    category = fields.String(load_default="potential", validate=validate.OneOf(CATEGORIES))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    customer_no = fields.String(allow_none=True, validate=validate.Length(max=32))
    profile_type = fields.String(allow_none=True, validate=validate.OneOf(PROFILES))
    industry = fields.String(allow_none=True, validate=validate.Length(max=64))
    id_number = fields.String(load_only=True, allow_none=True, validate=validate.Length(max=30))
    uscc = fields.String(load_only=True, allow_none=True, validate=validate.Length(max=30))
    phone = fields.String(load_only=True, allow_none=True, validate=validate.Length(max=30))
    id_number_mask = fields.String(dump_only=True)
    uscc_mask = fields.String(dump_only=True)
    phone_mask = fields.String(dump_only=True)
    gender = fields.String(dump_only=True)
    birth_date = fields.Date(dump_only=True)
    address = fields.String(allow_none=True, validate=validate.Length(max=300))
    lon = fields.Float(allow_none=True, validate=validate.Range(-180, 180), metadata={"description": "in `crs`"})
    lat = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    location_source = fields.String(load_default="imported", validate=validate.OneOf(SOURCES))
    grid_id = fields.Integer(dump_only=True, allow_none=True)
    grid_override_reason = fields.String(dump_only=True, allow_none=True)
    owner_user_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    org_id = fields.Integer(validate=validate.Range(min=1))
    status = fields.String(load_default="active", validate=validate.OneOf(STATUSES))
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class CustomerUpdateSchema(CustomerSchema):
    """PATCH: only the fields sent change (position: POST /{id}/location)."""

    category = fields.String(validate=validate.OneOf(CATEGORIES))
    status = fields.String(validate=validate.OneOf(STATUSES))

    class Meta:
        exclude = ("kind", "lon", "lat", "location_source", "org_id")


class CustomerListArgs(PageArgs):
    view = fields.String(load_default="ownership", validate=validate.OneOf(["ownership", "grid"]),
                         metadata={"description": "ownership (管户关系) or grid (管辖网格) ordering"})
    kind = fields.String(validate=validate.OneOf(KINDS))
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    grid_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "in this grid's subtree"})
    owner_user_id = fields.Integer(validate=validate.Range(min=1))
    org_id = fields.Integer(validate=validate.Range(min=1))
    id_number = fields.String(validate=validate.Length(max=30), metadata={"description": "exact (blind index)"})
    uscc = fields.String(validate=validate.Length(max=30), metadata={"description": "exact (blind index)"})
    phone = fields.String(validate=validate.Length(max=30), metadata={"description": "exact (blind index)"})
    unplaced = fields.Boolean(load_default=False, metadata={"description": "only customers in no grid"})
    crs = fields.String(load_default="wgs84")


class CustomerPage(BaseSchema):
    items = fields.List(fields.Nested(CustomerSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class RevealArgs(BaseSchema):
    fields_ = fields.List(fields.String(validate=validate.OneOf(list(service.SENSITIVE))), required=True,
                          data_key="fields", validate=validate.Length(min=1, max=3))
    reason = fields.String(required=True, validate=validate.Length(min=2, max=200))


class LocationArgs(BaseSchema):
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    source = fields.String(load_default="corrected", validate=validate.OneOf(["corrected", "gps", "geocoded"]))


class GridOverrideArgs(BaseSchema):
    grid_id = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=1),
                             metadata={"description": "null: back to the spatial assignment"})
    reason = fields.String(load_default="", validate=validate.Length(max=200))


class BatchAssignArgs(BaseSchema):
    customer_ids = fields.List(fields.Integer(validate=validate.Range(min=1)), required=True,
                               validate=validate.Length(min=1, max=5000))
    grid_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    owner_user_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    reason = fields.String(required=True, validate=validate.Length(min=2, max=200))


def dump(customer: Customer, crs: str = "wgs84") -> dict[str, Any]:
    lon, lat = service.coords(customer)
    if lon is not None and crs != "wgs84":
        lon, lat = from_wgs84({"type": "Point", "coordinates": [lon, lat]}, crs)["coordinates"]
    data = {c: getattr(customer, c) for c in ("id", "name", "customer_no", "industry", "id_number_mask",
                                              "uscc_mask", "phone_mask", "gender", "birth_date", "address",
                                              "grid_id", "grid_override_reason", "owner_user_id", "org_id",
                                              "created_at", "updated_at")}
    for c in ("kind", "category", "profile_type", "location_source", "status"):
        value = getattr(customer, c)
        data[c] = getattr(value, "value", value)
    return {**data, "lon": lon, "lat": lat}


def _in_wgs84(data: dict[str, Any], crs: str) -> None:
    if data.get("lon") is not None and data.get("lat") is not None and crs != "wgs84":
        point = to_wgs84({"type": "Point", "coordinates": [data["lon"], data["lat"]]}, crs)
        data["lon"], data["lat"] = point["coordinates"]


@blp.route("")
class Customers(MethodView):
    @requires("customer:read")
    @blp.arguments(CustomerListArgs, location="query")
    @blp.response(200, CustomerPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Customers in my scope, by account ownership or by grid; exact search by ID/credit code/phone"""
        crs = crs_arg()
        args.pop("crs", None)
        return page_body(service.list_customers(db(), keys(), **args), lambda c: dump(c, crs))

    @requires("customer:edit")
    @blp.arguments(CustomerSchema)
    @blp.response(201, CustomerSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a customer archive (identifiers validated, stored SM4-encrypted; placed in its grid)"""
        crs = crs_arg()
        _in_wgs84(data, crs)
        return dump(service.create_customer(db(), principal(), keys(), data), crs)


@blp.route("/<int:customer_id>")
class CustomerById(MethodView):
    @requires("customer:read")
    @blp.response(200, CustomerSchema)
    def get(self, customer_id: int) -> dict[str, Any]:
        """One customer (identifiers masked; 404 outside my scope)"""
        return dump(service.get_customer(db(), customer_id), crs_arg())

    @requires("customer:edit")
    @blp.arguments(CustomerUpdateSchema(partial=True))
    @blp.response(200, CustomerSchema)
    def patch(self, data: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Edit a customer archive"""
        return dump(service.update_customer(db(), principal(), keys(), customer_id, data), crs_arg())

    @requires("customer:edit")
    @blp.response(204)
    def delete(self, customer_id: int) -> None:
        """Delete a potential customer (formal customers cannot be deleted)"""
        service.delete_customer(db(), customer_id)


@blp.route("/<int:customer_id>/reveal")
class Reveal(MethodView):
    @requires("customer:reveal")
    @blp.arguments(RevealArgs)
    @blp.response(200, description="the requested identifiers in clear; the reveal is audited")
    def post(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Show full ID number / credit code / phone (audited with the reason)"""
        return service.reveal(db(), principal(), keys(), customer_id, args["fields_"], args["reason"])


@blp.route("/<int:customer_id>/location")
class Location(MethodView):
    @requires("customer:edit")
    @blp.arguments(LocationArgs)
    @blp.response(200, CustomerSchema)
    def post(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """纠偏: set the customer's position (in `crs`); stored in WGS84 with provenance, grid re-assigned"""
        crs = crs_arg()
        _in_wgs84(args, crs)
        customer = service.relocate(db(), principal(), customer_id, args["lon"], args["lat"],
                                    LocationSource(args["source"]))
        return dump(customer, crs)


@blp.route("/<int:customer_id>/grid")
class GridOverride(MethodView):
    @requires("customer:assign")
    @blp.arguments(GridOverrideArgs)
    @blp.response(200, CustomerSchema)
    def post(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Assign a grid by hand (recording who and why), or null to return to the spatial assignment"""
        customer = service.override_grid(db(), principal(), customer_id, args["grid_id"], args["reason"])
        return dump(customer, crs_arg())


@blp.route("/batch-assign")
class BatchAssign(MethodView):
    @requires("customer:assign")
    @blp.arguments(BatchAssignArgs)
    @blp.response(200, description="{updated: n}")
    def post(self, args: dict[str, Any]) -> dict[str, int]:
        """Assign many customers to a grid and/or an account manager (all or nothing)"""
        count = service.batch_assign(db(), principal(), args["customer_ids"], grid_id=args["grid_id"],
                                     owner_user_id=args["owner_user_id"], reason=args["reason"])
        return {"updated": count}
