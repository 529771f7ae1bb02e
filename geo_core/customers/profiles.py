"""Customer profiles (建档): one current profile per customer, filled against the active template of his
profile type, validated, scored (completeness, missing fields) and kept with every revision.

Visibility follows the customer (row-level security through `customers`): a profile of a customer outside the
caller's scope does not exist for him. Values of phone-type fields are personal data: `data` keeps only their
masks, the numbers themselves are SM4-sealed in `sealed` (redacted in the audit log). A client that sends a
phone field back unchanged (its mask) keeps the sealed number.

History: every save bumps `revision` and a trigger copies the row into `customer_profile_revisions`, which is
scoped through the customer like the profile; the audit log also records each change with its actor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.auth.service import audit_event
from geo_core.customers import identifiers as ids
from geo_core.customers.models import Customer, ProfileType
from geo_core.customers.profile_models import CustomerProfile, CustomerProfileRevision, ProfileTemplate
from geo_core.customers.profile_tasks import close_satisfied_tasks
from geo_core.customers.profile_templates import active_template, check_data, get_template, score
from geo_core.customers.service import Keys, get_customer
from geo_core.errors import NotFound, PermissionDenied, ValidationFailed
from geo_core.paging import Page, paginate
from geo_core.scope import Principal

SEAL_AAD = b"customer_profile"
SOURCES = ("mobile", "pc", "import")


def get_profile(session: Session, customer_id: int) -> CustomerProfile:
    get_customer(session, customer_id)  # 404 outside the scope
    profile = session.get(CustomerProfile, customer_id)
    if profile is None:
        raise NotFound("该客户尚未建档", code="PROFILE_NOT_FOUND")
    return profile


def phone_keys(fields: list[dict[str, Any]]) -> list[str]:
    return [f["key"] for f in fields if f["type"] == "phone"]


def seal(keys: Keys, phones: dict[str, str]) -> bytes | None:
    if not phones:
        return None
    return crypto.sm4_encrypt(json.dumps(phones, sort_keys=True), keys.sm4, aad=SEAL_AAD)


def unseal(keys: Keys, blob: bytes | None) -> dict[str, str]:
    return json.loads(crypto.sm4_decrypt(bytes(blob), keys.sm4, aad=SEAL_AAD)) if blob else {}


def prepare(template: ProfileTemplate, keys: Keys, data: Any,
            previous: CustomerProfile | None = None) -> tuple[dict[str, Any], bytes | None]:
    """Validated data with phone numbers replaced by masks, and the sealed numbers."""
    if not isinstance(data, dict):
        raise ValidationFailed.on("data", "须为对象")
    raw = dict(data)
    phones = phone_keys(template.fields)
    if previous is not None:
        kept = unseal(keys, previous.sealed)
        for key in phones:
            if key in kept and key in raw and raw[key] == previous.data.get(key):
                raw[key] = kept[key]  # the mask sent back unchanged: keep the number
    clean = check_data(template, raw)
    sealed = {k: clean[k] for k in phones if k in clean}
    for key, number in sealed.items():
        clean[key] = ids.mask_phone(number)
    return clean, seal(keys, sealed)


def save_profile(session: Session, actor: Principal, keys: Keys, customer_id: int, data: Any, *,
                 source: str = "pc", profile_type: str | None = None) -> CustomerProfile:
    """Create or replace the customer's profile (PUT): validated against the active template of his type."""
    customer = get_customer(session, customer_id)
    if source not in SOURCES:
        raise ValidationFailed.on("source", f"须为 {'/'.join(SOURCES)} 之一")
    ptype = ProfileType(profile_type) if profile_type else customer.profile_type
    if ptype is None:
        raise ValidationFailed.on("profile_type", "客户未设置建档类型（农户/商户/小微企业），请指定 profile_type")
    template = active_template(session, ptype)
    if customer.profile_type != ptype:
        customer.profile_type = ptype
        customer.updated_by = actor.user_id
    profile = session.get(CustomerProfile, customer_id)
    clean, sealed = prepare(template, keys, data, profile)
    result = score(template.fields, clean)
    values = dict(profile_type=ptype, template_id=template.id, template_version=template.version, data=clean,
                  sealed=sealed, completeness=result.completeness, is_complete=result.is_complete,
                  missing=result.missing, missing_required=result.missing_required, filled_by=actor.user_id,
                  filled_at=datetime.now(UTC), source=source)
    if profile is None:
        profile = CustomerProfile(customer_id=customer_id, revision=1, **values)
        session.add(profile)
    else:
        for key, value in values.items():
            setattr(profile, key, value)
        profile.revision += 1
    session.flush()
    close_satisfied_tasks(session, actor.user_id, [customer_id])
    session.refresh(profile)
    return profile


def describe(session: Session, profile: CustomerProfile) -> dict[str, Any]:
    """The profile with its template version's field list (labels, groups) for display."""
    template = get_template(session, profile.template_id)
    return {"customer_id": profile.customer_id, "profile_type": profile.profile_type.value,
            "template_id": template.id, "template_code": template.code, "template_version": profile.template_version,
            "template_is_active": template.is_active, "revision": profile.revision, "data": profile.data,
            "completeness": float(profile.completeness), "is_complete": profile.is_complete,
            "missing": profile.missing, "missing_required": profile.missing_required,
            "filled_by": profile.filled_by, "filled_at": profile.filled_at, "source": profile.source,
            "fields": template.fields}


def blank_profile(session: Session, customer: Customer) -> dict[str, Any]:
    """What an unprofiled customer would be filled against (for the form), completeness 0."""
    if customer.profile_type is None:
        raise NotFound("该客户尚未建档", code="PROFILE_NOT_FOUND")
    template = active_template(session, customer.profile_type)
    result = score(template.fields, {})
    return {"customer_id": customer.id, "profile_type": customer.profile_type.value, "template_id": template.id,
            "template_code": template.code, "template_version": template.version, "template_is_active": True,
            "revision": 0, "data": {}, "completeness": 0.0, "is_complete": False, "missing": result.missing,
            "missing_required": result.missing_required, "filled_by": None, "filled_at": None, "source": None,
            "fields": template.fields}


def reveal_phones(session: Session, actor: Principal, keys: Keys, customer_id: int, fields: list[str],
                  reason: str) -> dict[str, str | None]:
    """The sealed phone numbers of a profile in clear, for holders of customer:reveal; audited with the reason."""
    if not actor.has("customer:reveal"):
        raise PermissionDenied("没有查看完整电话的权限", code="PERMISSION_DENIED")
    if not reason or len(reason.strip()) < 2:
        raise ValidationFailed.on("reason", "请填写查看原因")
    profile = get_profile(session, customer_id)
    phones = phone_keys(get_template(session, profile.template_id).fields)
    unknown = [f for f in fields if f not in phones]
    if unknown:
        raise ValidationFailed.on("fields", f"不是电话字段：{', '.join(unknown)[:100]}")
    numbers = unseal(keys, profile.sealed)
    audit_event(session, "reveal", "customer_profiles", customer_id, {"fields": fields, "reason": reason})
    return {f: numbers.get(f) for f in fields}


def list_revisions(session: Session, customer_id: int, page: int = 1, page_size: int = 20) -> Page[Any]:
    get_customer(session, customer_id)
    stmt = (select(CustomerProfileRevision).where(CustomerProfileRevision.customer_id == customer_id)
            .order_by(CustomerProfileRevision.revision.desc()))
    return paginate(session, stmt, page, page_size)
