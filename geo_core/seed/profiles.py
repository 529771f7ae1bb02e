"""Demo profiles (建档): about half of the farmer / merchant / micro-enterprise demo customers get a profile
filled against the built-in templates, with varied completeness. Deterministic (own random stream and a hash of
the customer id), validated and scored by the same code as the API, inserted by one INSERT … SELECT."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo_core.config import Settings
from geo_core.customers.profile_models import ProfileTemplate
from geo_core.customers.profile_templates import score
from geo_core.customers.profiles import prepare
from geo_core.customers.service import Keys
from geo_core.seed.demo import GIVEN, SURNAMES

SHARE = 0.5
NUMBERS: dict[str, tuple[float, float]] = {
    "household_size": (1, 7), "labor_count": (1, 4), "livestock_scale": (0, 500), "years_in_business": (1, 20),
    "land_area_mu": (0.5, 30), "transferred_land_mu": (0, 100), "annual_income": (20_000, 300_000),
    "loan_amount_wanted": (50_000, 500_000), "shop_area_m2": (15, 300), "monthly_rent": (800, 15_000),
    "monthly_turnover": (20_000, 500_000), "restock_amount": (2_000, 50_000), "annual_revenue": (50, 3_000),
    "total_assets": (30, 5_000), "premises_area_m2": (100, 5_000), "existing_financing": (0, 500),
    "financing_amount": (50, 1_000),
}
TEXTS = {"household_members": ("配偶、子女2人", "配偶、父母、子女1人", "独居", "配偶、子女3人"),
         "main_business": ("农产品收购与销售", "建材批发", "食品加工", "物流配送", "农机维修"),
         "business_hours": ("07:30-21:00", "08:00-22:00", "09:00-18:00", "06:00-20:30")}


def _person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _sample(rng: random.Random, field: dict[str, Any], customer_name: str) -> Any:
    key, type_ = field["key"], field["type"]
    options = [o["value"] for o in field.get("options") or ()]
    if type_ == "enum":
        return rng.choice(options)
    if type_ == "multi_enum":
        real = [o for o in options if o != "none"]
        if "none" in options and rng.random() < 0.15:
            return ["none"]
        return rng.sample(real, rng.randint(1, min(3, len(real))))
    if type_ == "boolean":
        return rng.random() < 0.45
    if type_ == "phone":
        return f"1{rng.choice('3578')}{rng.randint(0, 999_999_999):09d}"
    if type_ == "date":
        return (date(2005, 1, 1) + timedelta(days=rng.randint(0, 365 * 19))).isoformat()
    if type_ in ("integer", "decimal"):
        low, high = NUMBERS.get(key, (field.get("min") or 0, min(field.get("max") or 100, 100)))
        return rng.randint(int(low), int(high)) if type_ == "integer" else round(rng.uniform(low, high), 1)
    if key in TEXTS:
        return rng.choice(TEXTS[key])
    if key in ("household_head", "shop_name"):
        return customer_name[:50]
    if key == "village_group":
        return f"{rng.randint(1, 15)}组"
    return _person(rng)


POOL = 128  # pre-built profiles per type; customers draw one by a hash of their id
INSERT = """
INSERT INTO customer_profiles (customer_id, profile_type, template_id, template_version, revision, data, sealed,
                               completeness, is_complete, missing, missing_required, filled_by, filled_at, source)
SELECT c.id, c.profile_type, t.id, t.version, 1,
       CASE WHEN v.data ? 'household_head' THEN jsonb_set(v.data, '{household_head}', to_jsonb(left(c.name, 50)))
            WHEN v.data ? 'shop_name' THEN jsonb_set(v.data, '{shop_name}', to_jsonb(left(c.name, 100)))
            ELSE v.data END,
       decode(v.sealed, 'hex'), v.completeness, v.is_complete, v.missing, v.missing_required, c.owner_user_id,
       CAST(:now AS timestamptz) - make_interval(days => ((c.id::bigint * 7919) % 200)::int), v.source
FROM customers c
JOIN profile_templates t ON t.profile_type = c.profile_type AND t.is_active
JOIN jsonb_to_recordset(CAST(:variants AS jsonb)) AS v(profile_type text, idx integer, data jsonb, sealed text,
     completeness numeric, is_complete boolean, missing varchar[], missing_required varchar[], source text)
  ON v.profile_type = c.profile_type::text AND v.idx = ((c.id::bigint * 40503) % 65521) % :pool
WHERE ((c.id::bigint * 2654435761) % 4294967291) % 1000 < :per_mille
"""
REVISIONS = """
INSERT INTO customer_profile_revisions (customer_id, revision, profile_type, template_id, template_version, data,
                                        sealed, completeness, missing, filled_by, filled_at, source)
SELECT customer_id, revision, profile_type, template_id, template_version, data, sealed, completeness, missing,
       filled_by, filled_at, source FROM customer_profiles
"""


def _variants(rng: random.Random, keys: Keys, templates: dict[Any, ProfileTemplate]) -> list[dict[str, Any]]:
    """POOL profiles per type, 30 % complete, the rest filled ~25-95 %, validated and scored like the API."""
    out = []
    for ptype, template in templates.items():
        for idx in range(POOL):
            fill = 1.0 if rng.random() < 0.3 else rng.uniform(0.25, 0.95)
            data = {f["key"]: _sample(rng, f, _person(rng)) for f in template.fields
                    if rng.random() < (min(1.0, fill + 0.25) if f.get("required") else fill)}
            clean, sealed = prepare(template, keys, data)
            result = score(template.fields, clean)
            out.append({"profile_type": ptype.value, "idx": idx, "data": clean,
                        "sealed": sealed.hex() if sealed else None, "completeness": str(result.completeness),
                        "is_complete": result.is_complete, "missing": result.missing,
                        "missing_required": result.missing_required,
                        "source": "mobile" if rng.random() < 0.6 else "pc"})
    return out


def seed_profiles(session: Session, settings: Settings) -> int:
    """Profile about half of the profile-able customers (run as the owner, after the customers): one
    INSERT … SELECT over a pool of validated profiles, so the city scale costs one statement too."""
    if not settings.sm4_key:
        return 0
    rng = random.Random(20261201)
    templates = {t.profile_type: t for t in session.scalars(select(ProfileTemplate).where(ProfileTemplate.is_active))}
    if not templates:
        return 0
    variants = _variants(rng, Keys.of(settings), templates)
    if session.scalar(text("SELECT count(*) > 100000 FROM customers WHERE profile_type IS NOT NULL")):
        session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    # the per-row revision trigger is replaced by one INSERT … SELECT for the seed (owner session)
    session.execute(text("ALTER TABLE customer_profiles DISABLE TRIGGER customer_profiles_revision"))
    count = session.execute(text(INSERT), {"variants": json.dumps(variants, ensure_ascii=False), "pool": POOL,
                                           "per_mille": int(SHARE * 1000),
                                           "now": datetime(2026, 11, 25, 9, 0, tzinfo=UTC)}).rowcount
    session.execute(text("ALTER TABLE customer_profiles ENABLE TRIGGER customer_profiles_revision"))
    session.execute(text(REVISIONS))
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return count or 0
