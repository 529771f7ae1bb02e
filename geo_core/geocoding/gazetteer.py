"""Offline gazetteer geocoder: parsed address -> our own tables, no network.

Tried from the most to the least precise; the first that answers wins:

1. `exact_address` — the address key (geo_core.geocoding.parser.ParsedAddress.key) in known_addresses: a point a
   manager confirmed (纠偏 / GPS, confidence 0.95) or an earlier geocode (its own confidence, at most 0.9). The same
   key without the building gives the compound (level `poi`, 0.75).
2. `poi` — pg_trgm similarity of the place name with POI names (inside the district's boundary when the district is
   known), or a POI whose address holds the road and number; or a building-group grid of that name.
3. `community` — the community/village's representative point (on its grid's surface).
4. `street` — the township's (街道/镇/乡) representative point.
5. `district` — the district's point on surface.
6. `none` — no point.

Representative points come from gm_division_points() (SECURITY DEFINER: a point, never another org's grid). A
coarse match returns the coarse point with its coarse level and a low confidence, never a fake precise point.
Everything else runs under the caller's row-level security (known addresses and grid names of his orgs only).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.geocoding.parser import AddressParser, Division, DivisionIndex, ParsedAddress

LEVELS = ("exact_address", "poi", "community", "street", "district", "none")
LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}  # lower = more precise
CONFIDENCE = {"exact_confirmed": 0.95, "exact_geocoded_max": 0.9, "compound": 0.75, "poi_max": 0.85,
              "grid_building": 0.7, "community": 0.5, "street": 0.35, "district": 0.15}
POI_MIN_SIMILARITY = 0.4
INDEX_TTL_S = 600.0


@dataclass
class GeocodeResult:
    """One candidate point in WGS84 with what it matched and how much to trust it."""

    provider: str
    level: str
    confidence: float
    lon: float | None = None
    lat: float | None = None
    matched: str | None = None  # what matched, e.g. the POI name or the division name
    division: Division | None = None
    known_address_id: int | None = None
    grid_id: int | None = None
    grid_name: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def has_point(self) -> bool:
        return self.lon is not None and self.lat is not None

    def as_dict(self) -> dict[str, Any]:
        d = self.division
        return {"provider": self.provider, "level": self.level, "confidence": round(self.confidence, 3),
                "lon": self.lon, "lat": self.lat, "matched": self.matched,
                "division": {"code": d.code, "name": d.short_name or d.name, "level": d.level} if d else None,
                "grid": {"id": self.grid_id, "name": self.grid_name} if self.grid_id else None,
                "detail": self.detail}


def none_result(provider: str = "gazetteer", division: Division | None = None) -> GeocodeResult:
    return GeocodeResult(provider, "none", 0.0, division=division)


# -- the division index (admin_divisions is reference data: cached per process) -----------------------------------

_index_lock = threading.Lock()
_index_cache: dict[str, tuple[float, DivisionIndex]] = {}


def load_index(session: Session, *, refresh: bool = False) -> DivisionIndex:
    """The division index of this database, rebuilt every INDEX_TTL_S seconds."""
    bind = session.get_bind()
    key = str(getattr(bind, "engine", bind).url.database)
    with _index_lock:
        cached = _index_cache.get(key)
        if cached and not refresh and time.monotonic() - cached[0] < INDEX_TTL_S:
            return cached[1]
    rows = session.execute(text(
        "SELECT code, name, short_name, level::text, kind FROM admin_divisions "
        "WHERE level IN ('city', 'district', 'township', 'village')")).all()
    index = DivisionIndex(Division(code=r[0], name=r[1], short_name=r[2], level=r[3], kind=r[4]) for r in rows)
    with _index_lock:
        _index_cache[key] = (time.monotonic(), index)
    return index


def parser_for(session: Session) -> AddressParser:
    return AddressParser(load_index(session))


# -- lookups ------------------------------------------------------------------------------------------------------

_KNOWN_SQL = text("""
    SELECT id, ST_X(geom), ST_Y(geom), source, confidence, address FROM known_addresses
    WHERE address_key = :k
    ORDER BY (source IN ('corrected', 'gps')) DESC, confidence DESC, hits DESC, id LIMIT 1""")

_POI_SQL = text("""
    SELECT p.id, p.name, ST_X(p.geom), ST_Y(p.geom),
           CASE WHEN :q = '' THEN 0 ELSE similarity(p.name, :q) END AS sim,
           (:roadno <> '' AND position(:roadno IN coalesce(p.address, '')) > 0) AS by_address
    FROM pois p
    WHERE ((:q <> '' AND p.name % :q) OR (:roadno <> '' AND p.address LIKE '%' || :roadno || '%'))
      AND (CAST(:district AS text) IS NULL OR EXISTS (
            SELECT 1 FROM admin_divisions d WHERE d.code = :district
            AND (d.geom IS NULL OR ST_Intersects(d.geom, p.geom))))
    ORDER BY by_address DESC, sim DESC, p.id LIMIT 5""")

_GRID_SQL = text("""
    SELECT g.id, g.name, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)), similarity(g.name, :q)
    FROM grids g
    WHERE g.name % :q AND g.level = 'building_group' AND g.kind = 'physical' AND g.status = 'active'
      AND g.geom IS NOT NULL
    ORDER BY similarity(g.name, :q) DESC, g.id LIMIT 1""")


def _known(session: Session, key: str | None) -> tuple | None:
    return session.execute(_KNOWN_SQL, {"k": key}).first() if key else None


def division_points(session: Session, codes: list[str],
                    cache: dict[str, tuple[float, float] | None] | None = None) -> dict[str, tuple[float, float]]:
    """Representative points of divisions; `cache` (one per request or run) saves repeated look-ups."""
    cache = {} if cache is None else cache
    missing = [c for c in codes if c not in cache]
    if missing:
        rows = session.execute(text("SELECT code, lon, lat FROM gm_division_points(CAST(:c AS text[]))"),
                               {"c": missing}).all()
        found = {r[0]: (r[1], r[2]) for r in rows if r[1] is not None}
        for code in missing:
            cache[code] = found.get(code)
    return {c: cache[c] for c in codes if cache.get(c) is not None}  # type: ignore[misc]


def geocode_parsed(session: Session, parsed: ParsedAddress,
                   cache: dict[str, tuple[float, float] | None] | None = None) -> GeocodeResult:
    """The best offline match for a parsed address (see the module docstring for the order)."""
    area = parsed.district or parsed.city
    row = _known(session, parsed.key())
    if row is not None:
        confirmed = row[3] in ("corrected", "gps")
        confidence = CONFIDENCE["exact_confirmed"] if confirmed else min(row[4], CONFIDENCE["exact_geocoded_max"])
        return GeocodeResult("gazetteer", "exact_address", confidence, row[1], row[2], matched=row[5],
                             division=parsed.finest, known_address_id=row[0], detail={"source": row[3]})
    row = _known(session, parsed.building_free_key())
    if row is not None:
        return GeocodeResult("gazetteer", "poi", CONFIDENCE["compound"], row[1], row[2], matched=row[5],
                             division=parsed.finest, known_address_id=row[0], detail={"source": row[3]})
    poi = _poi(session, parsed, area)
    if poi is not None:
        return poi
    codes = [d.code for d in (parsed.village, parsed.township, parsed.district) if d is not None]
    points = division_points(session, codes, cache)
    for d, level in ((parsed.village, "community"), (parsed.township, "street"), (parsed.district, "district")):
        if d is not None and d.code in points:
            lon, lat = points[d.code]
            return GeocodeResult("gazetteer", level, CONFIDENCE[level], lon, lat, matched=d.name, division=d)
    return none_result(division=parsed.finest)


def _poi(session: Session, parsed: ParsedAddress, area: Division | None) -> GeocodeResult | None:
    q = parsed.place or parsed.locality or ""
    roadno = f"{parsed.road}{parsed.house_no}号" if parsed.road and parsed.house_no else ""
    if len(q) < 2 and not roadno:
        return None
    district = parsed.district.code if parsed.district else None
    for row in session.execute(_POI_SQL, {"q": q, "roadno": roadno, "district": district}).all():
        poi_id, name, lon, lat, sim, by_address = row
        if by_address:
            confidence = 0.8 if not q or sim >= POI_MIN_SIMILARITY else 0.7
        elif sim >= POI_MIN_SIMILARITY:
            confidence = CONFIDENCE["poi_max"] if name == q else min(CONFIDENCE["poi_max"], 0.4 + 0.5 * sim)
        else:
            continue
        return GeocodeResult("gazetteer", "poi", round(confidence, 3), lon, lat, matched=name,
                             division=parsed.finest or area, detail={"poi_id": poi_id, "similarity": round(sim, 3)})
    if len(q) >= 2:
        row = session.execute(_GRID_SQL, {"q": q}).first()
        if row is not None and row[4] >= 0.6:
            return GeocodeResult("gazetteer", "poi", CONFIDENCE["grid_building"], row[2], row[3], matched=row[1],
                                 division=parsed.finest or area, grid_id=row[0], grid_name=row[1],
                                 detail={"grid_id": row[0], "similarity": round(row[4], 3)})
    return None


def geocode_offline(session: Session, address: str) -> tuple[ParsedAddress, GeocodeResult]:
    parsed = parser_for(session).parse(address)
    return parsed, geocode_parsed(session, parsed)
