"""The Changsha demo: real divisions and district boundaries, a fictional bank org tree and staff.

Deterministic (fixed random seed): the same command always yields the same ids, names and points,
which tests rely on. Every demo user gets the same known password (printed by `make run`).
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import MultiPolygon, Point, shape
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.catalog import sync_catalog
from geo_core.config import Settings
from geo_core.orgs.models import Org, OrgLevel
from geo_core.users.models import Role, User, user_roles

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "changsha"
DEMO_PASSWORD = "Gm@2026demo"
SOURCE_BOUNDARY = "geoBoundaries CHN ADM3 (simplified), © OpenStreetMap contributors, ODbL 1.0"
SOURCE_CODES = "国家统计局 统计用区划代码 2023 (china-division 2.7.0)"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建文辉力丹婷雪琳晨宇浩然欣怡子涵梓轩"

SCALES = {"small": {"managers_per_outlet": 3}, "city": {"managers_per_outlet": 12}}


@dataclass(frozen=True)
class SeedSummary:
    orgs: int
    users: int
    divisions: int
    grids: int
    customers: int
    logins: list[tuple[str, str, str]]  # (username, role name, org name)


def _read_csv(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def seed_divisions(session: Session) -> int:
    """Load city, districts (with geometry), townships and villages. Idempotent (upsert by code)."""
    upsert = text(
        "INSERT INTO admin_divisions (code, name, short_name, name_en, level, kind, parent_code, area_km2, geom,"
        " source, note) VALUES (:code, :name, :short_name, :name_en, CAST(:level AS division_level), :kind,"
        " :parent_code, :area_km2, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(:geom), 4326)), :source, :note)"
        " ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, short_name = EXCLUDED.short_name,"
        " name_en = EXCLUDED.name_en, level = EXCLUDED.level, kind = EXCLUDED.kind,"
        " parent_code = EXCLUDED.parent_code, area_km2 = EXCLUDED.area_km2, geom = EXCLUDED.geom,"
        " source = EXCLUDED.source, note = EXCLUDED.note"
    )
    rows: list[dict[str, object]] = []
    for fname in ("changsha_city.geojson", "changsha_districts.geojson"):
        for feat in json.loads((DATA_DIR / fname).read_text(encoding="utf-8"))["features"]:
            p = feat["properties"]
            rows.append(dict(code=p["adcode"], name=p["name"], short_name=None, name_en=p.get("name_en"),
                             level=p["level"], kind=None, parent_code=p.get("parent_adcode"),
                             area_km2=p.get("area_km2"), geom=json.dumps(feat["geometry"]),
                             source=SOURCE_BOUNDARY, note=p.get("boundary_note") or None))
    for r in _read_csv("changsha_townships.csv"):
        rows.append(dict(code=r["code"], name=r["name"], short_name=None, name_en=None, level="township",
                         kind=r["type"], parent_code=r["district_code"], area_km2=None, geom=None,
                         source=SOURCE_CODES, note=None))
    for r in _read_csv("changsha_villages.csv"):
        rows.append(dict(code=r["code"], name=r["name"], short_name=r["short_name"], name_en=None,
                         level="village", kind=r["type"], parent_code=r["township_code"], area_km2=None,
                         geom=None, source=SOURCE_CODES, note=None))
    session.execute(upsert, rows)
    return len(rows)


def _district_shapes() -> list[tuple[str, str, MultiPolygon]]:
    feats = json.loads((DATA_DIR / "changsha_districts.geojson").read_text(encoding="utf-8"))["features"]
    return [(f["properties"]["adcode"], f["properties"]["name"], shape(f["geometry"])) for f in feats]


def _point_in(geom, rng: random.Random) -> Point:  # noqa: ANN001
    # sample near the representative point so outlets cluster in the built-up part of a district
    centre = geom.representative_point()
    minx, miny, maxx, maxy = geom.bounds
    spread = min(maxx - minx, maxy - miny) / 4
    for _ in range(1000):
        p = Point(centre.x + rng.uniform(-spread, spread), centre.y + rng.uniform(-spread, spread))
        if geom.contains(p):
            return Point(round(p.x, 6), round(p.y, 6))
    return centre


def _strip_suffix(name: str) -> str:
    for suffix in ("街道", "镇", "乡"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def _person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def seed_demo(session: Session, scale: str = "small", *, iterations: int = 150_000,
              settings: Settings | None = None) -> SeedSummary:
    """Seed catalog, divisions, orgs and users. Run as the owner (bypasses RLS) on an empty database."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    rng = random.Random(20261125)
    sync_catalog(session)
    n_div = seed_divisions(session)
    roles = {r.code: r for r in session.scalars(select(Role))}
    pw_hash = crypto.hash_password(DEMO_PASSWORD, iterations)
    townships: dict[str, list[str]] = {}
    for r in _read_csv("changsha_townships.csv"):
        townships.setdefault(r["district_code"], []).append(r["name"])

    orgs: list[Org] = []
    users: list[tuple[User, str]] = []
    phone_seq = iter(range(13800000000, 13900000000, 7919))
    emp_seq = iter(range(1, 1_000_000))

    def add_user(username: str, org: Org, role: str) -> User:
        user = User(username=username, employee_no=f"E{next(emp_seq):05d}", name=_person_name(rng),
                    phone=str(next(phone_seq)), org_id=org.id, password_hash=pw_hash)
        users.append((user, role))
        return user

    def add_org(**kw: object) -> Org:
        org = Org(**kw)
        session.add(org)
        session.flush()
        orgs.append(org)
        return org

    shapes = _district_shapes()
    furong = next(g for code, _, g in shapes if code == "430102")
    head = add_org(code="HO0001", name="长沙农商银行总行", level=OrgLevel.head_office, adcode="430100",
                   address="长沙市芙蓉区", location=f"SRID=4326;{_point_in(furong, rng).wkt}")
    add_user("admin", head, "admin")
    per_outlet = SCALES[scale]["managers_per_outlet"]
    for adcode, dname, geom in shapes:
        short = dname[:-1] if dname.endswith(("区", "县", "市")) and len(dname) > 2 else dname
        branch = add_org(code=f"BR{adcode}", name=f"{short}支行", level=OrgLevel.branch, parent_id=head.id,
                         adcode=adcode, address=f"长沙市{dname}", location=f"SRID=4326;{_point_in(geom, rng).wkt}")
        add_user(f"bl_{adcode}", branch, "branch_leader")
        add_user(f"am_{adcode}_br", branch, "account_manager")
        towns = townships.get(adcode, [])
        subs = []
        for i in range(2):
            town = towns[i % len(towns)]
            sub = add_org(code=f"SB{adcode}{i + 1:02d}", name=f"{_strip_suffix(town)}支行", level=OrgLevel.sub_branch,
                          parent_id=branch.id, adcode=adcode, address=f"长沙市{dname}{town}",
                          location=f"SRID=4326;{_point_in(geom, rng).wkt}")
            add_user(f"sbl_{adcode}_{i + 1}", sub, "sub_branch_leader")
            subs.append(sub)
        for j in range(7):
            town = towns[(j + 2) % len(towns)]
            outlet = add_org(code=f"OU{adcode}{j + 1:02d}", name=f"{_strip_suffix(town)}网点", level=OrgLevel.outlet,
                             parent_id=subs[j % 2].id, adcode=adcode, address=f"长沙市{dname}{town}",
                             location=f"SRID=4326;{_point_in(geom, rng).wkt}")
            for k in range(per_outlet):
                add_user(f"am_{adcode}_{j + 1}_{k + 1}", outlet, "account_manager")
            add_user(f"ga_{adcode}_{j + 1}", outlet, "grid_assistant")

    session.add_all(u for u, _ in users)
    session.flush()
    session.execute(user_roles.insert(), [{"user_id": u.id, "role_id": roles[r].id} for u, r in users])
    session.flush()
    from geo_core.seed.grids import seed_grids
    from geo_core.seed.staffing import seed_staffing

    n_grids = seed_grids(session, scale)
    seed_staffing(session)
    n_customers = 0
    if settings is not None:
        from geo_core.seed.customers import seed_customers

        n_customers = seed_customers(session, settings, scale)
        from geo_core.seed.feed import seed_feed_state

        seed_feed_state(session, scale)  # accounts, loans, snapshots, events behind the holdings
        from geo_core.groups.demo import seed_tags_and_groups

        seed_tags_and_groups(session)
        from geo_core.seed.profiles import seed_profiles

        seed_profiles(session, settings)
    return SeedSummary(orgs=len(orgs), users=len(users), divisions=n_div, grids=n_grids,
                       customers=n_customers, logins=demo_logins(session))


SHOWN_LOGINS = ("admin", "bl_430102", "sbl_430102_1", "am_430102_1_1", "ga_430102_1", "bl_430104")


def demo_logins(session: Session) -> list[tuple[str, str, str]]:
    """(username, role name, org name) of the demo users worth trying, where they still exist."""
    rows = session.execute(
        select(User.username, Role.name, Org.name)
        .join(user_roles, user_roles.c.user_id == User.id).join(Role, Role.id == user_roles.c.role_id)
        .join(Org, Org.id == User.org_id).where(User.username.in_(SHOWN_LOGINS))
    ).all()
    order = {name: i for i, name in enumerate(SHOWN_LOGINS)}
    return sorted(((u, r, o) for u, r, o in rows), key=lambda row: order[row[0]])


def is_seeded(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Org)))
