"""The geocoding chain: the offline gazetteer first, then each enabled online provider while the best answer's
confidence is below `GM_GEOCODER_MIN_CONFIDENCE`; the most confident candidate wins (ties: the finer level).

Online answers outside the city's boundary are discarded (a same-named place elsewhere); an answer outside the
district the address names keeps half its confidence. Transient provider errors are retried with exponential
backoff (`retries`); an invalid key or an exhausted daily quota stops that provider for the rest of the
`Geocoder`'s life (one request, or one batch run) and is reported in `providers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.config import Settings
from geo_core.geocoding.gazetteer import LEVEL_RANK, GeocodeResult, geocode_parsed, parser_for
from geo_core.geocoding.parser import ParsedAddress
from geo_core.geocoding.providers import PROVIDERS, ProviderError, enabled_providers, geocode_online

log = logging.getLogger("gridmarket.geocoding")

_INSIDE_SQL = text("""
    SELECT coalesce(bool_or(level = 'city' AND (geom IS NULL OR ST_Intersects(geom, pt))), true),
           bool_or(code = :district AND (geom IS NULL OR ST_Intersects(geom, pt)))
    FROM admin_divisions, LATERAL (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
    WHERE level = 'city' OR code = :district""")


@dataclass
class Outcome:
    parsed: ParsedAddress
    best: GeocodeResult
    candidates: list[GeocodeResult]
    providers: dict[str, str] = field(default_factory=dict)  # name -> ok | no_result | skipped | error: ...


def better(a: GeocodeResult, b: GeocodeResult | None) -> bool:
    """True if `a` should replace `b` as the best answer."""
    if b is None:
        return True
    return (a.confidence, -LEVEL_RANK[a.level]) > (b.confidence, -LEVEL_RANK[b.level])


class Geocoder:
    """A provider chain bound to settings (and Redis for the daily quotas); keeps per-run provider state."""

    def __init__(self, settings: Settings, redis: Any = None, *, online: bool = True, retries: int = 0,
                 backoff_s: float = 0.5, max_wait_s: float = 1.0, providers: list[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings, self.redis, self.online = settings, redis, online
        self.retries, self.backoff_s, self.max_wait_s, self.sleep = retries, backoff_s, max_wait_s, sleep
        chain = [p for p in settings.geocoder_chain if providers is None or p in providers]
        self.chain = chain
        self.enabled = set(enabled_providers(settings))
        self.stopped: dict[str, str] = {}  # provider -> why (fatal key error, quota)
        self.calls: dict[str, int] = {}
        # per request / run: division representative points and grids of result points (grids change rarely)
        self.division_cache: dict[str, tuple[float, float] | None] = {}
        self.grid_cache: dict[tuple[float, float], int | None] = {}

    def geocode(self, session: Session, address: str) -> Outcome:
        parsed = parser_for(session).parse(address)
        return self.geocode_parsed(session, parsed)

    def geocode_parsed(self, session: Session, parsed: ParsedAddress) -> Outcome:
        best: GeocodeResult | None = None
        candidates: list[GeocodeResult] = []
        status: dict[str, str] = {}
        for name in self.chain:
            if name == "gazetteer":
                result = geocode_parsed(session, parsed, self.division_cache)
                status[name] = "ok" if result.level != "none" else "no_result"
            else:
                if best is not None and best.confidence >= self.settings.geocoder_min_confidence:
                    status[name] = "skipped"
                    continue
                result, status[name] = self._online(session, name, parsed)
                if result is None:
                    continue
            if result.level != "none":
                candidates.append(result)
                if better(result, best):
                    best = result
        if best is None:
            best = GeocodeResult("gazetteer", "none", 0.0, division=parsed.finest)
        candidates.sort(key=lambda r: (-r.confidence, LEVEL_RANK[r.level]))
        return Outcome(parsed, best, candidates, status)

    def _online(self, session: Session, name: str, parsed: ParsedAddress) -> tuple[GeocodeResult | None, str]:
        if not self.online:
            return None, "skipped"
        if name not in self.enabled:
            return None, "disabled"
        if name in self.stopped:
            return None, f"stopped: {self.stopped[name]}"
        city = parsed.city.name if parsed.city else self._city_name(session)
        address = parsed.normalised
        if city and not parsed.city:  # providers want the city: after the province, if one was written
            province = parsed.province if parsed.province and address.startswith(parsed.province) else ""
            address = province + city + address[len(province):]
        for attempt in range(self.retries + 1):
            try:
                self.calls[name] = self.calls.get(name, 0) + 1
                result = geocode_online(self.settings, name, address, city=city, redis=self.redis,
                                        max_wait_s=self.max_wait_s)
                break
            except ProviderError as exc:
                if exc.kind in ("fatal", "quota"):
                    self.stopped[name] = exc.message
                    log.warning("geocoder %s stopped: %s", name, exc.message)
                    return None, f"{exc.kind}: {exc.message}"
                if attempt >= self.retries:
                    return None, f"error: {exc.message}"
                self.sleep(self.backoff_s * (2 ** attempt))
        if result is None:
            return None, "no_result"
        if result.has_point:
            inside_city, inside_district = session.execute(_INSIDE_SQL, {
                "lon": result.lon, "lat": result.lat,
                "district": parsed.district.code if parsed.district else ""}).one()
            if not inside_city:
                return None, "outside_city"
            if parsed.district is not None and inside_district is False:
                result.confidence = round(result.confidence / 2, 3)
                result.detail["outside_district"] = parsed.district.name
        result.division = parsed.finest
        return result, "ok"

    def _city_name(self, session: Session) -> str:
        index = parser_for(session).index
        cities = [d.name for d in index.by_code.values() if d.level == "city"]
        return cities[0] if len(cities) == 1 else ""


def describe_providers(settings: Settings) -> list[dict[str, Any]]:
    """The configured chain, for the API (never the keys)."""
    enabled = set(enabled_providers(settings))
    return [{"name": p, "enabled": p == "gazetteer" or p in enabled,
             "label": "离线地名库" if p == "gazetteer" else PROVIDERS[p].label} for p in settings.geocoder_chain]
