"""Administrative divisions (reference data): districts with boundaries, townships, villages."""

from __future__ import annotations

import json
from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import func, select

from api.extensions import BaseSchema, Blueprint, db, requires
from geo_core.divisions.models import AdminDivision, DivisionLevel

blp = Blueprint("divisions", __name__, url_prefix="/api/v1/divisions", description="行政区划")
ATTRIBUTION = ("© OpenStreetMap contributors (ODbL); boundaries via geoBoundaries (Runfola et al. 2020); "
               "codes: 国家统计局 统计用区划代码 2023")


class DivisionArgs(BaseSchema):
    level = fields.String(load_default="district", validate=validate.OneOf([lv.value for lv in DivisionLevel]))
    parent_code = fields.String(validate=validate.Regexp(r"^\d{6,12}$"))
    q = fields.String(validate=validate.Length(max=50))


@blp.route("")
class Divisions(MethodView):
    @requires()
    @blp.arguments(DivisionArgs, location="query")
    @blp.response(200, description="GeoJSON FeatureCollection (geometry null where none is published)")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Divisions of one level as GeoJSON (WGS84), e.g. the 9 districts of Changsha"""
        stmt = select(AdminDivision, func.ST_AsGeoJSON(AdminDivision.geom, 6)).where(
            AdminDivision.level == args["level"]
        )
        if args.get("parent_code"):
            stmt = stmt.where(AdminDivision.parent_code == args["parent_code"])
        if args.get("q"):
            stmt = stmt.where(AdminDivision.name.contains(args["q"], autoescape=True))
        features = [
            {
                "type": "Feature",
                "id": d.code,
                "geometry": json.loads(geom) if geom else None,
                "properties": {"adcode": d.code, "name": d.name, "short_name": d.short_name, "name_en": d.name_en,
                               "level": d.level.value, "kind": d.kind, "parent_code": d.parent_code,
                               "area_km2": d.area_km2, "note": d.note},
            }
            for d, geom in db().execute(stmt.order_by(AdminDivision.code).limit(5000))
        ]
        return {"type": "FeatureCollection", "features": features, "attribution": ATTRIBUTION}
