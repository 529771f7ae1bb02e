"""City-scale demo customers (~2,000,000) by COPY: `gridmarket seed-demo --scale city`.

The small seed builds ORM objects one by one (fine for 3,300 rows, hours for 2 million). This path generates the
same kind of data column-wise with numpy: points drawn uniformly inside each community grid (vectorised
`shapely.contains_xy`), their resolution-10 H3 cell, kind/category/profile mix, names, valid-checksum synthetic
identifiers (unique by construction: derived from a serial), SM4-GCM ciphertexts + SM3-HMAC blind indexes + masks,
and holdings like `customers._add_holdings` (formal customers: deposits, credit limit, loans, overdue, products;
60 % visited in the last 180 days). Rows stream into `COPY customers (...) FROM STDIN` in the caller's transaction
(the owner session of the seed command), with `gm.audit_mode = 'summary'` so the audit trigger writes one summary
row per statement instead of 2 million rows.

Cost, measured on 2 cores (see docs/PERFORMANCE.md, issue #5 section): SM4 encrypt ~8 us and blind index ~3 us
per field, two fields per row: ~45 s of the run for 2 million rows in one process.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import shapely
from shapely import wkb
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.config import Settings
from geo_core.customers import identifiers as ids
from geo_core.grids.spatial import point_cell
from geo_core.seed.demo import GIVEN, SURNAMES

log = logging.getLogger("gridmarket.seed")

SHOPS = ("副食店", "超市", "餐馆", "五金店", "药店", "理发店", "农资店", "水果店", "粉店", "茶馆")
FIRMS = ("商贸有限公司", "农业专业合作社", "建材有限公司", "食品有限公司", "物流有限公司")
INDUSTRIES = ("零售", "餐饮", "农业", "制造", "服务")
PRODUCTS_PERSON = ("DEP_CURRENT", "DEP_TIME", "CARD_DEBIT", "WEALTH", "LOAN_CONSUMER", "LOAN_FARMER", "MOBILE_BANK")
PRODUCTS_COMPANY = ("DEP_CURRENT", "DEP_TIME", "POS", "QR_PAY", "LOAN_BUSINESS", "PAYROLL", "MOBILE_BANK")
HOLDINGS_AS_OF = date(2026, 11, 24)
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BORN_FROM = date(1950, 1, 1)
BORN_DAYS = 365 * 55
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"

COLUMNS = ("kind", "category", "name", "customer_no", "profile_type", "gender", "birth_date", "industry",
           "id_number_enc", "id_number_bidx", "id_number_mask", "uscc_enc", "uscc_bidx", "uscc_mask",
           "phone_enc", "phone_bidx", "phone_mask", "geom", "h3_r10", "location_source", "grid_id",
           "owner_user_id", "org_id", "created_at", "updated_at", "deposit_balance", "loan_balance",
           "credit_limit", "overdue_amount", "products", "holdings_as_of", "last_visit_at")


def points_in(geom: object, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n uniform random points inside a (prepared) polygon, vectorised rejection sampling."""
    minx, miny, maxx, maxy = geom.bounds  # type: ignore[attr-defined]
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    have = 0
    fill = max(geom.area / max((maxx - minx) * (maxy - miny), 1e-12), 0.05)  # type: ignore[attr-defined]
    while have < n:
        m = int((n - have) / fill * 1.3) + 16
        x, y = rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)
        inside = shapely.contains_xy(geom, x, y)
        xs.append(x[inside])
        ys.append(y[inside])
        have += int(inside.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _products_table(catalogue: tuple[str, ...]) -> list[str]:
    """Array literal for every bitmask over the catalogue (DEP_CURRENT always in)."""
    return ["{" + ",".join(sorted({catalogue[i] for i in range(len(catalogue)) if mask >> i & 1}
                                  | {"DEP_CURRENT"})) + "}" for mask in range(1 << len(catalogue))]


def _uscc(district: str, serial: int) -> str:
    digits = []
    for _ in range(9):
        serial, r = divmod(serial, 31)
        digits.append(USCC_CHARS[r])
    body = "91" + district + "".join(reversed(digits))
    return body + ids.uscc_check_char(body)


def _person(district: str, serial: int) -> str:
    born = BORN_FROM + timedelta(days=serial % BORN_DAYS)
    first17 = f"{district}{born:%Y%m%d}{serial // BORN_DAYS % 1000:03d}"
    return first17 + ids.id_check_char(first17)


def seed_city_customers(session: Session, settings: Settings, per_community: int = 1200,
                        seed: int = 20261126) -> int:
    """COPY `per_community` customers into every community grid that has an account manager."""
    rng = np.random.default_rng(seed)
    grids = session.execute(text("""
        SELECT g.id, ST_AsBinary(g.geom), g.division_code, a.user_id, u.org_id
        FROM grids g
        JOIN LATERAL (SELECT user_id FROM grid_assignments WHERE grid_id = g.id AND post = 'account_manager'
                      AND valid_to IS NULL ORDER BY id LIMIT 1) a ON true
        JOIN users u ON u.id = a.user_id
        WHERE g.level = 'community' ORDER BY g.id
    """)).all()
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    key, bkey = settings.sm4_key, settings.blind_index_key
    surnames, given = list(SURNAMES), list(GIVEN)
    person_products, company_products = _products_table(PRODUCTS_PERSON), _products_table(PRODUCTS_COMPANY)
    raw = session.connection().connection.driver_connection
    # serials (customer numbers, synthetic identifiers) continue after existing rows: 0 on the empty city database
    serial = int(session.execute(text("SELECT coalesce(max(id), 0) FROM customers")).scalar_one())
    first = serial
    started = time.perf_counter()
    copy_sql = f"COPY customers ({', '.join(COLUMNS)}) FROM STDIN"
    with raw.cursor() as cur, cur.copy(copy_sql) as copy:  # type: ignore[union-attr]
        for k, (grid_id, geom_wkb, division, owner, org_id) in enumerate(grids):
            geom = wkb.loads(bytes(geom_wkb))
            shapely.prepare(geom)
            district = (division or "430102")[:6]
            n = per_community
            xs, ys = points_in(geom, n, rng)
            roll, formal = rng.random(n), rng.random(n) < 0.55
            farmer, two_given = rng.random(n) < 0.4, rng.random(n) < 0.5
            sur, g1, g2 = (rng.integers(0, len(surnames), n), rng.integers(0, len(given), n),
                           rng.integers(0, len(given), n))
            shop, firm_kind, industry = (rng.integers(0, len(SHOPS), n), rng.integers(0, len(FIRMS), n),
                                         rng.integers(0, len(INDUSTRIES), n))
            phones = rng.integers(0, 10**9, n)
            phone_pre = rng.integers(0, 4, n)
            created = rng.integers(0, 730 * 24 * 60, n)
            visited, visit_age = rng.random(n) < 0.6, rng.integers(0, 180 * 24 * 60 + 600, n)
            deposit_company, deposit_person = rng.lognormal(11.0, 1.2, n), rng.lognormal(10.0, 1.2, n)
            product_mask = rng.integers(0, 128, n)
            has_limit, limit_pick, has_loan = rng.random(n) < 0.35, rng.integers(0, 6, n), rng.random(n) < 0.7
            loan_share, overdue, overdue_share = rng.uniform(0.1, 1.0, n), rng.random(n) < 0.04, \
                rng.uniform(0.01, 0.2, n)
            for i in range(n):
                serial += 1
                x, y = float(xs[i]), float(ys[i])
                phone = f"1{'3578'[phone_pre[i]]}{phones[i]:09d}"
                name = surnames[sur[i]] + given[g1[i]] + (given[g2[i]] if two_given[i] else "")
                is_formal = bool(formal[i])
                company = roll[i] >= 0.75
                created_at = NOW - timedelta(minutes=int(created[i]))
                if company:
                    firm = roll[i] > 0.92
                    name = ("长沙" + name + FIRMS[firm_kind[i]]) if firm else (name[:1] + SHOPS[shop[i]])
                    uscc = _uscc(district, serial)
                    ident = (None, None, None, crypto.sm4_encrypt(uscc, key, aad=b"uscc"),
                             crypto.blind_index(uscc, bkey, "uscc"), ids.mask_uscc(uscc))
                    kind, profile = "company", "micro_enterprise" if firm else "merchant"
                    gender = birth = None
                    ind = INDUSTRIES[industry[i]]
                else:
                    id_number = _person(district, serial)
                    ident = (crypto.sm4_encrypt(id_number, key, aad=b"id_number"),
                             crypto.blind_index(id_number, bkey, "id_number"), ids.mask_id_number(id_number),
                             None, None, None)
                    kind, profile, ind = "person", "farmer" if farmer[i] else None, None
                    gender, birth = ids.gender_of(id_number), ids.birth_date_of(id_number)
                deposit = loan = limit = overdue_amount = products = as_of = None
                if is_formal:
                    deposit = f"{(deposit_company if company else deposit_person)[i]:.2f}"
                    mask = int(product_mask[i]) | 1
                    if has_limit[i]:
                        limit_value = (50_000, 100_000, 200_000, 300_000, 500_000,
                                       1_000_000 if company else 300_000)[limit_pick[i]]
                        limit = str(limit_value)
                        if has_loan[i]:
                            loan_value = round(limit_value * float(loan_share[i]), 2)
                            loan = f"{loan_value:.2f}"
                            mask |= 1 << 4  # LOAN_BUSINESS / LOAN_CONSUMER sit at index 4 of both catalogues
                            if overdue[i]:
                                overdue_amount = f"{loan_value * float(overdue_share[i]):.2f}"
                    products = (company_products if company else person_products)[mask]
                    as_of = HOLDINGS_AS_OF
                last_visit = NOW - timedelta(minutes=int(visit_age[i])) if visited[i] else None
                copy.write_row((
                    kind, "formal" if is_formal else "potential", name, f"C{serial:09d}" if is_formal else None,
                    profile, gender, birth, ind, *ident,
                    crypto.sm4_encrypt(phone, key, aad=b"phone"), crypto.blind_index(phone, bkey, "phone"),
                    ids.mask_phone(phone), f"SRID=4326;POINT({x:.7f} {y:.7f})", point_cell(x, y), "imported",
                    grid_id, owner, org_id, created_at, created_at, deposit, loan, limit, overdue_amount,
                    products, as_of, last_visit))
            if k % 100 == 0:
                log.info("city customers: %d grids, %d rows, %.0f s", k + 1, serial - first,
                         time.perf_counter() - started)
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))  # later seed steps audit normally
    session.execute(text("ANALYZE customers"))
    return serial - first
