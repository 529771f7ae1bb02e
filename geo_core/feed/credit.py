"""Credit decisions: send a customer's integrated profile to the credit engine and keep its answer.

The engine's limit is a pre-approved offer (预授信), stored in credit_decisions and shown in the 360 view; the
granted credit line (customers.credit_limit) only ever comes from the bank's daily feed.
Identifiers are decrypted here, only to build the request body, and never stored or logged in clear.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.adapters.credit_engine import CreditEngineSettings, request_decision
from geo_core.customers.models import Customer
from geo_core.customers.service import Keys, get_customer
from geo_core.feed.models import CreditDecision, CreditDecisionKind, CustomerAccount, CustomerLoan
from geo_core.orgs.models import Org
from geo_core.paging import Page, paginate
from geo_core.scope import Principal


def _clear(customer: Customer, keys: Keys, field: str) -> str | None:
    blob = getattr(customer, f"{field}_enc")
    return crypto.sm4_decrypt(blob, keys.sm4, aad=field.encode()) if blob else None


def _profile_data(session: Session, customer_id: int) -> dict[str, Any] | None:
    """The profiling archive (建档) if that feature is installed: type, completeness and the (unsealed) data."""
    if not session.scalar(text("SELECT to_regclass('public.customer_profiles') IS NOT NULL")):
        return None
    row = session.execute(text(
        "SELECT profile_type::text AS profile_type, completeness, data FROM customer_profiles "
        "WHERE customer_id = :c"), {"c": customer_id}).mappings().first()
    return dict(row) if row else None


def integrated_profile(session: Session, keys: Keys, customer: Customer) -> dict[str, Any]:
    """The request body's customer part: basic information, holdings, accounts, loans and the profile."""
    org_code = session.scalar(select(Org.code).where(Org.id == customer.org_id))
    accounts = session.scalars(select(CustomerAccount).where(CustomerAccount.customer_id == customer.id)
                               .order_by(CustomerAccount.id)).all()
    loans = session.scalars(select(CustomerLoan).where(CustomerLoan.customer_id == customer.id)
                            .order_by(CustomerLoan.id)).all()
    return {
        "customer": {"customer_no": customer.customer_no, "kind": customer.kind.value, "name": customer.name,
                     "id_number": _clear(customer, keys, "id_number"), "uscc": _clear(customer, keys, "uscc"),
                     "phone": _clear(customer, keys, "phone"), "birth_date": customer.birth_date,
                     "gender": customer.gender, "address": customer.address, "industry": customer.industry,
                     "profile_type": customer.profile_type.value if customer.profile_type else None,
                     "org_code": org_code},
        "holdings": {"deposit_balance": customer.deposit_balance, "loan_balance": customer.loan_balance,
                     "credit_limit": customer.credit_limit, "overdue_amount": customer.overdue_amount,
                     "products": customer.products or [], "as_of": customer.holdings_as_of},
        "accounts": [{"account_no": a.account_no, "product_code": a.product_code, "account_type": a.account_type,
                      "balance": a.balance, "currency": a.currency, "status": a.status} for a in accounts],
        "loans": [{"loan_no": ln.loan_no, "product_code": ln.product_code, "principal": ln.principal,
                   "balance": ln.balance, "due_date": ln.due_date, "overdue_amount": ln.overdue_amount,
                   "overdue_days": ln.overdue_days, "status": ln.status} for ln in loans],
        "profile": _profile_data(session, customer.id),
    }


def request_credit_decision(session: Session, actor: Principal, keys: Keys, cfg: CreditEngineSettings,
                            customer_id: int, purpose: str | None = None) -> CreditDecision:
    customer = get_customer(session, customer_id)  # 404 outside the caller's scope
    request_id = uuid.uuid4().hex
    payload = {"request_id": request_id, "purpose": purpose or "pre_approval",
               **integrated_profile(session, keys, customer)}
    answer = request_decision(cfg, request_id, payload)
    decision = CreditDecision(customer_id=customer.id, requested_by=actor.user_id, request_id=request_id,
                              decision=CreditDecisionKind(answer.decision), credit_limit=answer.credit_limit,
                              rate=answer.rate, pricing=answer.pricing, valid_until=answer.valid_until,
                              reasons=answer.reasons, engine_ref=answer.engine_ref, raw_response=answer.raw)
    session.add(decision)
    session.flush()
    return decision


def list_credit_decisions(session: Session, customer_id: int, page: int = 1, page_size: int = 20) -> Page[Any]:
    get_customer(session, customer_id)
    stmt = (select(CreditDecision).where(CreditDecision.customer_id == customer_id)
            .order_by(CreditDecision.created_at.desc(), CreditDecision.id.desc()))
    return paginate(session, stmt, page, page_size)
