"""Credit decision engine (授信决策): request a pre-approved offer for a customer, list past decisions."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires, settings
from geo_core.adapters.credit_engine import CreditEngineDisabled, CreditEngineSettings
from geo_core.customers.service import Keys
from geo_core.feed import credit
from geo_core.feed.models import CreditDecision

blp = Blueprint("credit", __name__, url_prefix="/api/v1/customers", description="授信决策")


class CreditDecisionRequestArgs(BaseSchema):
    purpose = fields.String(load_default=None, validate=validate.Length(max=40),
                            metadata={"description": "passed to the engine (default pre_approval)"})


class CreditDecisionSchema(BaseSchema):
    id = fields.Integer()
    customer_id = fields.Integer()
    requested_by = fields.Integer(allow_none=True)
    request_id = fields.String()
    decision = fields.String(metadata={"description": "approve | reject | manual"})
    credit_limit = fields.Decimal(as_string=True, allow_none=True,
                                  metadata={"description": "pre-approved offer, yuan (not the granted line)"})
    rate = fields.Decimal(as_string=True, allow_none=True, metadata={"description": "annual rate, percent"})
    pricing = fields.Dict()
    valid_until = fields.Date(allow_none=True)
    reasons = fields.List(fields.Raw())
    engine_ref = fields.String(allow_none=True)
    created_at = fields.DateTime()


class CreditDecisionPage(BaseSchema):
    items = fields.List(fields.Nested(CreditDecisionSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def dump(d: CreditDecision) -> dict[str, Any]:
    data = {c: getattr(d, c) for c in ("id", "customer_id", "requested_by", "request_id", "credit_limit", "rate",
                                       "pricing", "valid_until", "reasons", "engine_ref", "created_at")}
    return {**data, "decision": d.decision.value}


@blp.route("/<int:customer_id>/credit-decisions")
class CreditDecisions(MethodView):
    @requires("credit:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, CreditDecisionPage)
    def get(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """The customer's credit decisions, newest first (404 outside my scope)"""
        page = credit.list_credit_decisions(db(), customer_id, args["page"], args["page_size"])
        return page_body(page, dump)

    @requires("credit:request")
    @blp.arguments(CreditDecisionRequestArgs)
    @blp.response(201, CreditDecisionSchema)
    def post(self, args: dict[str, Any], customer_id: int) -> dict[str, Any]:
        """Send the customer's integrated profile to the credit engine and store its decision
        (503 if the engine is not configured, 502 if it fails or its answer is not properly signed)"""
        try:
            cfg = CreditEngineSettings.from_env()
        except ValueError as exc:
            raise CreditEngineDisabled(f"授信决策引擎配置无效：{exc}") from exc
        decision = credit.request_credit_decision(db(), principal(), Keys.of(settings()), cfg, customer_id,
                                                  args.get("purpose"))
        return dump(decision)
