"""Balancing (what-if): managers' loads and a proposed fairer assignment of grids; apply as hand-overs."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import EXCLUDE, fields, validate

from api.extensions import BaseSchema, Blueprint, db, principal, requires
from api.grids import crs_arg, from_wgs84
from geo_core.grids import balancing, customer_balancing

blp = Blueprint("grid_balancing", __name__, url_prefix="/api/v1/grid-balancing", description="网格平衡（测算）")

ID = fields.Integer(validate=validate.Range(min=1))


class WeightsSchema(BaseSchema):
    households = fields.Float(validate=validate.Range(min=0, max=100))
    customers = fields.Float(validate=validate.Range(min=0, max=100),
                             metadata={"description": "customers in the grid's subtree (a company counts twice)"})
    value = fields.Float(validate=validate.Range(min=0, max=100),
                         metadata={"description": "their deposit + loan balance"})
    area = fields.Float(validate=validate.Range(min=0, max=100))
    travel = fields.Float(validate=validate.Range(min=0, max=100))


class PreviewArgs(BaseSchema):
    manager_ids = fields.List(ID, required=True, validate=validate.Length(min=2, max=balancing.MAX_MANAGERS))
    parent_grid_id = fields.Integer(load_default=None, validate=validate.Range(min=1),
                                    metadata={"description": "only grids under this grid"})
    locked_grid_ids = fields.List(ID, load_default=list, metadata={"description": "grids that must stay put"})
    weights = fields.Nested(WeightsSchema, load_default=None)
    max_moves = fields.Integer(load_default=500, validate=validate.Range(min=0, max=5000))


class MoveSchema(BaseSchema):
    """A move as returned by /preview (extra display fields such as code and name are ignored)."""

    class Meta:
        unknown = EXCLUDE

    grid_id = fields.Integer(required=True, validate=validate.Range(min=1))
    from_user_id = fields.Integer(required=True, validate=validate.Range(min=1))
    to_user_id = fields.Integer(required=True, validate=validate.Range(min=1))


class ApplyArgs(BaseSchema):
    moves = fields.List(fields.Nested(MoveSchema), required=True, validate=validate.Length(min=1, max=2000))
    reason = fields.String(required=True, validate=validate.Length(min=2, max=200))


@blp.route("/preview")
class Preview(MethodView):
    @requires("grid:assign")
    @blp.arguments(PreviewArgs)
    @blp.response(200, description="loads before/after, CV, compactness, moves, flags, GeoJSON (in `crs`)")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Propose a fairer split of the chosen account managers' grids (nothing is changed)"""
        crs = crs_arg()
        result = balancing.propose(db(), **args)
        result["features"] = from_wgs84(result["features"], crs)
        return result


@blp.route("/apply")
class Apply(MethodView):
    @requires("grid:assign")
    @blp.arguments(ApplyArgs)
    @blp.response(200, description="ids of the hand-overs written")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Apply a proposal's moves as audited hand-overs of the account-manager post (all or nothing)"""
        return {"handover_ids": balancing.apply_moves(db(), principal(), args["moves"], args["reason"])}


# -- customers inside one grid ------------------------------------------------------------------------------

class CustomerWeightsSchema(BaseSchema):
    count = fields.Float(validate=validate.Range(min=0, max=100), metadata={"description": "per customer"})
    value = fields.Float(validate=validate.Range(min=0, max=100),
                         metadata={"description": "deposit + loan balance, normalised by the mean"})


class CustomerPreviewArgs(BaseSchema):
    grid_id = fields.Integer(required=True, validate=validate.Range(min=1))
    manager_ids = fields.List(ID, required=True, validate=validate.Length(min=2, max=balancing.MAX_MANAGERS))
    locked_customer_ids = fields.List(ID, load_default=list, validate=validate.Length(max=5000),
                                      metadata={"description": "customers that stay with their manager"})
    weights = fields.Nested(CustomerWeightsSchema, load_default=None)
    company_factor = fields.Float(load_default=2.0, validate=validate.Range(min=0, max=100),
                                  metadata={"description": "a company counts as this many customers"})
    stay_bonus = fields.Float(load_default=0.2, validate=validate.Range(min=0, max=0.9),
                              metadata={"description": "distance discount for the current manager (fewer moves)"})


class CustomerMoveSchema(BaseSchema):
    class Meta:
        unknown = EXCLUDE

    customer_id = fields.Integer(required=True, validate=validate.Range(min=1))
    from_user_id = fields.Integer(required=True, validate=validate.Range(min=1))
    to_user_id = fields.Integer(required=True, validate=validate.Range(min=1))


class CustomerApplyArgs(BaseSchema):
    grid_id = fields.Integer(required=True, validate=validate.Range(min=1))
    moves = fields.List(fields.Nested(CustomerMoveSchema), required=True, validate=validate.Length(min=1, max=5000))
    reason = fields.String(required=True, validate=validate.Length(min=2, max=200))


@blp.route("/customers/preview")
class CustomerPreview(MethodView):
    @requires("grid:assign")
    @blp.arguments(CustomerPreviewArgs)
    @blp.response(200, description="per-manager customers/value/load/compactness before and after, CV, moves, "
                                   "points as GeoJSON (in `crs`) with before/after manager")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Propose a fairer, compact split of a grid's customers among the chosen managers (nothing is changed)"""
        crs = crs_arg()
        result = customer_balancing.propose_customers(db(), **args)
        result["features"] = from_wgs84(result["features"], crs)
        return result


@blp.route("/customers/apply")
class CustomerApply(MethodView):
    @requires("grid:assign")
    @blp.arguments(CustomerApplyArgs)
    @blp.response(200, description="customers moved and the hand-over records written")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Apply customer moves as one audited batch of owner changes (all or nothing)"""
        return customer_balancing.apply_customer_moves(db(), principal(), args["grid_id"], args["moves"],
                                                       args["reason"])
