"""Demo customers: households, merchants and small firms inside the demo grids, owned by the grids'
account managers. Synthetic people with valid-checksum identifiers (never real ones)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import shapely
from shapely import wkb
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.config import Settings
from geo_core.customers import identifiers as ids
from geo_core.customers.models import Customer, CustomerCategory, CustomerKind, LocationSource, ProfileType
from geo_core.grids.spatial import point_cell
from geo_core.seed.demo import GIVEN, SURNAMES

PER_COMMUNITY = {"small": 12, "city": 1200}
SHOPS = ("副食店", "超市", "餐馆", "五金店", "药店", "理发店", "农资店", "水果店", "粉店", "茶馆")
FIRMS = ("商贸有限公司", "农业专业合作社", "建材有限公司", "食品有限公司", "物流有限公司")


def _person_id(rng: random.Random, district: str) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
    first17 = f"{district}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    return first17 + ids.id_check_char(first17)


def _uscc(rng: random.Random, district: str) -> str:
    body = "9" + "1" + district + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
    return body + ids.uscc_check_char(body)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def seed_customers(session: Session, settings: Settings, scale: str = "small") -> int:
    """Seed customers in community grids (those with an account manager). Needs the SM4/blind-index keys."""
    if not settings.sm4_key or not settings.blind_index_key:
        return 0
    if scale == "city":  # ~2,000,000 rows: COPY, generated column-wise (see customers_city.py)
        from geo_core.seed.customers_city import seed_city_customers

        return seed_city_customers(session, settings, PER_COMMUNITY["city"])
    rng = random.Random(20261126)
    rows = session.execute(text("""
        SELECT g.id, ST_AsBinary(g.geom), g.division_code, a.user_id, u.org_id
        FROM grids g
        JOIN LATERAL (SELECT user_id FROM grid_assignments WHERE grid_id = g.id AND post = 'account_manager'
                      AND valid_to IS NULL ORDER BY id LIMIT 1) a ON true
        JOIN users u ON u.id = a.user_id
        WHERE g.level = 'community' ORDER BY g.id
    """)).all()
    n_per = PER_COMMUNITY[scale]
    customers: list[Customer] = []
    serial = 0

    def enc(field: str, value: str, masker) -> dict[str, object]:  # noqa: ANN001
        return {f"{field}_enc": crypto.sm4_encrypt(value, settings.sm4_key, aad=field.encode()),
                f"{field}_bidx": crypto.blind_index(value, settings.blind_index_key, field),
                f"{field}_mask": masker(value)}

    for grid_id, geom_wkb, division, owner, org_id in rows:
        geom = wkb.loads(bytes(geom_wkb))
        shapely.prepare(geom)
        minx, miny, maxx, maxy = geom.bounds
        district = (division or "430102")[:6]
        for _ in range(n_per):
            while True:
                x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                if shapely.contains_xy(geom, x, y):
                    break
            serial += 1
            roll = rng.random()
            phone = f"1{rng.choice('3578')}{rng.randint(0, 999999999):09d}"
            common = dict(grid_id=grid_id, owner_user_id=owner, org_id=org_id, geom=f"SRID=4326;POINT({x} {y})",
                          h3_r10=point_cell(x, y), location_source=LocationSource.imported,
                          category=CustomerCategory.formal if rng.random() < 0.55 else CustomerCategory.potential,
                          **enc("phone", phone, ids.mask_phone))
            if roll < 0.75:
                id_number = _person_id(rng, district)
                customers.append(Customer(
                    kind=CustomerKind.person, name=_name(rng), gender=ids.gender_of(id_number),
                    birth_date=ids.birth_date_of(id_number),
                    profile_type=ProfileType.farmer if rng.random() < 0.4 else None,
                    customer_no=f"C{serial:09d}" if common["category"] is CustomerCategory.formal else None,
                    **enc("id_number", id_number, ids.mask_id_number), **common))
            else:
                firm = roll > 0.92
                name = (_name(rng)[:1] + rng.choice(SHOPS)) if not firm else ("长沙" + _name(rng) + rng.choice(FIRMS))
                customers.append(Customer(
                    kind=CustomerKind.company, name=name,
                    profile_type=ProfileType.micro_enterprise if firm else ProfileType.merchant,
                    industry=rng.choice(("零售", "餐饮", "农业", "制造", "服务")),
                    customer_no=f"C{serial:09d}" if common["category"] is CustomerCategory.formal else None,
                    **enc("uscc", _uscc(rng, district), ids.mask_uscc), **common))
    _add_holdings(customers)
    session.add_all(customers)
    session.flush()
    return len(customers)


PRODUCTS_PERSON = ("DEP_CURRENT", "DEP_TIME", "CARD_DEBIT", "WEALTH", "LOAN_CONSUMER", "LOAN_FARMER", "MOBILE_BANK")
PRODUCTS_COMPANY = ("DEP_CURRENT", "DEP_TIME", "POS", "QR_PAY", "LOAN_BUSINESS", "PAYROLL", "MOBILE_BANK")
HOLDINGS_AS_OF = date(2026, 11, 24)


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _add_holdings(customers: list[Customer]) -> None:
    """Holdings summary for formal customers and visit dates, from a separate random stream so the
    customers themselves stay the same whatever is added here."""
    rng = random.Random(20261127)
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    for c in customers:
        if rng.random() < 0.6:
            c.last_visit_at = now - timedelta(days=rng.randint(0, 180), minutes=rng.randint(0, 600))
        if c.category is not CustomerCategory.formal:
            continue
        company = c.kind is CustomerKind.company
        c.deposit_balance = _money(rng.lognormvariate(11.0 if company else 10.0, 1.2))
        catalogue = PRODUCTS_COMPANY if company else PRODUCTS_PERSON
        products = sorted(set(rng.sample(catalogue, rng.randint(1, 4))) | {"DEP_CURRENT"})
        if rng.random() < 0.35:
            limit = rng.choice((50_000, 100_000, 200_000, 300_000, 500_000, 1_000_000 if company else 300_000))
            c.credit_limit = Decimal(limit)
            if rng.random() < 0.7:
                c.loan_balance = _money(limit * rng.uniform(0.1, 1.0))
                products = sorted(set(products) | {"LOAN_BUSINESS" if company else "LOAN_CONSUMER"})
                if rng.random() < 0.04:
                    c.overdue_amount = _money(float(c.loan_balance) * rng.uniform(0.01, 0.2))
        c.products = products
        c.holdings_as_of = HOLDINGS_AS_OF
