"""Balancing (what-if): managers' loads and a proposed fairer assignment of grids; apply as hand-overs."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import EXCLUDE, fields, validate

from api.extensions import BaseSchema, Blueprint, db, principal, requires
from api.grids import crs_arg, from_wgs84
from geo_core.grids import balancing

blp = Blueprint("grid_balancing", __name__, url_prefix="/api/v1/grid-balancing", description="网格平衡（测算）")

ID = fields.Integer(validate=validate.Range(min=1))


class WeightsSchema(BaseSchema):
    households = fields.Float(validate=validate.Range(min=0, max=100))
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
