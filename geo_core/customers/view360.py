"""Customer 360 view (客户360视图): one read that assembles a customer's sections from many tables.

The view is a registry of section providers (`SECTIONS`). Each provider gets the customer (already loaded under
the caller's row-level security, so a customer outside his scope is a 404 before any section runs) and returns a
JSON-able dict. Sections that read tables owned by other features declare them in `tables`: when one is missing
(feature not installed yet) the section answers `{"available": false, "reason": "not_installed"}` instead of
failing. Those sections read with plain SQL under the caller's RLS and select only the columns that exist
(`pg_attribute`), so a renamed or added column never breaks the whole view; identifier columns
(`*_enc`, `*_bidx`) are never selected. Every provider runs in its own SAVEPOINT: a provider that fails is
reported as `{"available": false, "reason": "error"}` and logged, the other sections still answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.orm import Session

from geo_core.crs import transform_coords
from geo_core.customers.models import Customer
from geo_core.customers.service import get_customer
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org
from geo_core.users.models import User

log = logging.getLogger("gridmarket.customers.view360")

ROW_LIMIT = 20
# never read from another feature's table, whatever it is called there
SECRET_SUFFIXES = ("_enc", "_bidx", "_hash", "sealed", "password", "secret", "token")


@dataclass
class Context:
    session: Session
    customer: Customer
    crs: str = "wgs84"
    permissions: frozenset[str] = frozenset()
    limit: int = ROW_LIMIT
    _columns: dict[str, list[str]] = field(default_factory=dict)

    def columns(self, table: str) -> list[str]:
        """The columns of `table` the caller's role can see (cached per view)."""
        if table not in self._columns:
            self._columns[table] = list(self.session.scalars(text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum"), {"t": f"public.{table}"}))
        return self._columns[table]


Provider = Callable[[Context], dict[str, Any]]


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str  # zh-CN card title, shown by the page as is
    provider: Provider
    tables: tuple[str, ...] = ()  # tables of other features that must exist
    permission: str | None = None  # extra permission needed beyond customer:read


SECTIONS: dict[str, SectionSpec] = {}


def section(key: str, title: str, *, tables: Iterable[str] = (), permission: str | None = None
            ) -> Callable[[Provider], Provider]:
    """Register a provider for the section `key` (registration order = display order)."""

    def register(fn: Provider) -> Provider:
        SECTIONS[key] = SectionSpec(key, title, fn, tuple(tables), permission)
        return fn

    return register


def table_exists(session: Session, table: str) -> bool:
    return session.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"public.{table}"}) or False


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return getattr(value, "value", value)


def _safe(columns: Iterable[str]) -> list[str]:
    return [c for c in columns if not any(c.endswith(s) or s in c for s in SECRET_SUFFIXES)
            and c not in ("geom", "geometry")]


def pick(ctx: Context, table: str, wanted: Iterable[str] | None = None) -> list[str]:
    """The wanted columns that exist in `table` (all safe columns when `wanted` is None)."""
    have = ctx.columns(table)
    return _safe(have if wanted is None else [c for c in wanted if c in have])


def first_of(ctx: Context, table: str, *candidates: str) -> str | None:
    have = ctx.columns(table)
    return next((c for c in candidates if c in have), None)


def quote(name: str) -> str:
    """A column or table name from pg_attribute / this module, double-quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def rows_of(ctx: Context, table: str, *, where: str = "customer_id = :cid", wanted: Iterable[str] | None = None,
            order: Iterable[str] = ("created_at", "id"), params: dict[str, Any] | None = None,
            limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` rows of `table` for the customer (newest first by the first `order` column that exists)
    and the total count, read under the caller's RLS."""
    cols = pick(ctx, table, wanted)
    if not cols:
        return [], 0
    order_col = first_of(ctx, table, *order)
    order_sql = f" ORDER BY {quote(order_col)} DESC NULLS LAST" if order_col else ""
    if order_col and order_col != "id" and "id" in ctx.columns(table):
        order_sql += ", id DESC"  # rows written in one transaction share their timestamps
    args = {"cid": ctx.customer.id, "lim": limit or ctx.limit, **(params or {})}
    sql = f"SELECT {', '.join(quote(c) for c in cols)} FROM {quote(table)} WHERE {where}{order_sql} LIMIT :lim"
    rows = [jsonable(dict(r)) for r in ctx.session.execute(text(sql), args).mappings()]
    total = ctx.session.scalar(text(f"SELECT count(*) FROM {quote(table)} WHERE {where}"), args) or 0
    return rows, int(total)


def user_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(wanted))).all())


def unavailable(reason: str, **extra: Any) -> dict[str, Any]:
    return {"available": False, "reason": reason, **extra}


# ---------------------------------------------------------------- sections on the customers table


@section("profile", "基本信息")
def profile_section(ctx: Context) -> dict[str, Any]:
    c, s = ctx.customer, ctx.session
    names = user_names(s, [c.owner_user_id, c.created_by, c.updated_by])
    org = s.execute(select(Org.name, Org.code).where(Org.id == c.org_id)).first()
    data = {k: getattr(c, k) for k in ("id", "name", "customer_no", "industry", "id_number_mask", "uscc_mask",
                                       "phone_mask", "gender", "birth_date", "address", "owner_user_id", "org_id",
                                       "created_at", "updated_at", "created_by", "updated_by")}
    for k in ("kind", "category", "profile_type", "status"):
        data[k] = getattr(getattr(c, k), "value", getattr(c, k))
    data["merged_into"] = getattr(c, "merged_into", None)  # 0016: a merged archive points at its survivor
    return jsonable({**data, "available": True, "owner_name": names.get(c.owner_user_id),
                     "org_name": org.name if org else None, "org_code": org.code if org else None,
                     "created_by_name": names.get(c.created_by), "updated_by_name": names.get(c.updated_by)})


@section("holdings", "产品与余额")
def holdings_section(ctx: Context) -> dict[str, Any]:
    """From the big-data platform's daily feed (customers columns of migration 0011); NULL = not in the feed."""
    c = ctx.customer
    values = {k: getattr(c, k) for k in ("deposit_balance", "loan_balance", "credit_limit", "overdue_amount",
                                         "holdings_as_of", "last_visit_at")}
    return jsonable({**values, "products": list(c.products or []), "available": True,
                     "has_data": c.holdings_as_of is not None or any(v is not None for v in values.values())})


@section("location", "位置与网格")
def location_section(ctx: Context) -> dict[str, Any]:
    c, s = ctx.customer, ctx.session
    lon = lat = None
    if c.geom is not None and not isinstance(c.geom, str):
        point = to_shape(c.geom)
        lon, lat = point.x, point.y
        if ctx.crs != "wgs84":
            lon, lat = (float(v) for v in transform_coords(lon, lat, "wgs84", ctx.crs))
    grid = None
    if c.grid_id is not None:
        row = s.execute(select(Grid.id, Grid.code, Grid.name, Grid.level).where(Grid.id == c.grid_id)).first()
        # a grid the caller cannot see (e.g. another org's) still shows its id
        grid = {"id": c.grid_id, "code": row.code if row else None, "name": row.name if row else None,
                "level": jsonable(row.level) if row else None}
    names = user_names(s, [c.grid_override_by, c.updated_by])
    geocoded = None  # the latest address-geocoding answer for this customer (0014), when that feature exists
    if table_exists(s, "geocode_results"):
        rows, _ = rows_of(ctx, "geocode_results", wanted=("level", "confidence", "provider", "applied", "matched",
                                                          "created_at"), order=("created_at",), limit=1)
        geocoded = rows[0] if rows else None
    return jsonable({
        "available": True, "crs": ctx.crs, "lon": lon, "lat": lat, "has_point": lon is not None,
        "source": c.location_source, "h3_r10": hex(c.h3_r10)[2:] if c.h3_r10 else None, "address": c.address,
        "grid": grid, "grid_override": None if c.grid_override_by is None else {
            "by": c.grid_override_by, "by_name": names.get(c.grid_override_by), "reason": c.grid_override_reason},
        "updated_at": c.updated_at, "updated_by_name": names.get(c.updated_by), "geocoded": geocoded,
    })


# ---------------------------------------------------------------- the view


def _run(ctx: Context, spec: SectionSpec) -> dict[str, Any]:
    if spec.permission and spec.permission not in ctx.permissions:
        return unavailable("forbidden")
    missing = [t for t in spec.tables if not table_exists(ctx.session, t)]
    if missing:
        return unavailable("not_installed", missing=missing)
    try:
        with ctx.session.begin_nested():
            return spec.provider(ctx)
    except (ProgrammingError, DBAPIError):
        log.exception("customer 360 section %s failed for customer %s", spec.key, ctx.customer.id)
        return unavailable("error")


def build_view(session: Session, customer_id: int, *, crs: str = "wgs84", permissions: frozenset[str] = frozenset(),
               only: Iterable[str] | None = None) -> dict[str, Any]:
    """The 360 view of one customer in the caller's scope (NotFound outside it): every registered section,
    or those named in `only`, in registry order."""
    customer = get_customer(session, customer_id)
    ctx = Context(session, customer, crs, permissions)
    keys = [k for k in SECTIONS if only is None or k in set(only)]
    sections = {}
    for key in keys:
        spec = SECTIONS[key]
        sections[key] = {"title": spec.title, **_run(ctx, spec)}
    return {"customer_id": customer.id, "name": customer.name, "crs": crs,
            "generated_at": datetime.now(UTC).isoformat(), "order": keys, "sections": sections}


# the sections reading other features' tables register themselves after the ones above
from geo_core.customers import view360_sections  # noqa: E402,F401
