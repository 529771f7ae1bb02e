"""Keyword place search (地图关键字搜索) through Baidu Place API v2 and Gaode (AMap) Web Service v3.

Both are plain HTTPS GET APIs answering JSON; we call them with urllib (no SDK, no new dependency):

- Baidu `place/v2/search` (行政区划区域检索): query, region, city_limit=true, output=json, scope=2, page_size (<= 20),
  page_num (0-based), ak. Success is ``{"status": 0, "message": "ok", "total": n, "results": [...]}``; each result
  has name, address, telephone, uid and ``location: {lat, lng}`` in BD-09 (bd09ll, because we send no
  ``ret_coordtype``); with scope=2 ``detail_info.tag`` / ``detail_info.type`` classify it. Any other status is an
  error described by ``message`` (e.g. 200 "APP不存在，AK有误", 302 "天配额超限", 401 "并发量超限").
- Gaode `v3/place/text` (关键字搜索): keywords, city, citylimit=true, output=JSON, offset (<= 25), page (1-based),
  extensions=all, key. Success is ``{"status": "1", "info": "OK", "count": "n", "pois": [...]}``; each POI has id,
  name, type, address, tel and ``location: "lng,lat"`` in GCJ-02. Empty text fields come back as ``[]``.
  ``status: "0"`` is an error described by ``info`` / ``infocode`` (e.g. INVALID_USER_KEY / 10001).

Coordinates are converted to WGS84 here (geo_core.crs), so callers only ever see what we store. A provider
without a configured key is disabled (`PlaceSearchDisabled`, 503); HTTP errors, timeouts, malformed JSON and
provider error statuses become `PlaceSearchFailed` (502) carrying the provider's message, never the key.
Each provider has one token bucket per process (`Settings.place_rate_per_s`); a caller waits up to
`RATE_WAIT_MAX_S` for a token, else gets `PlaceSearchRateLimited` (429).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from geo_core.config import Settings
from geo_core.crs import bd09_to_wgs84, gcj02_to_wgs84
from geo_core.errors import DomainError, ValidationFailed

log = logging.getLogger("gridmarket.places")

MAX_RESPONSE_BYTES = 2 * 1024 * 1024
MAX_PAGE_SIZE = 20  # Baidu's documented maximum (Gaode allows 25)
MAX_PAGES = 50
RATE_WAIT_MAX_S = 1.0
USER_AGENT = "GridMarket/0.1 (+place-search)"


class PlaceSearchDisabled(DomainError):
    status = 503
    code = "PLACE_SEARCH_DISABLED"


class PlaceSearchFailed(DomainError):
    status = 502
    code = "PLACE_SEARCH_FAILED"


class PlaceSearchRateLimited(DomainError):
    status = 429
    code = "PLACE_SEARCH_RATE_LIMITED"


@dataclass(frozen=True)
class Place:
    """One search result, coordinates in WGS84."""

    name: str
    address: str | None
    phone: str | None
    provider_type: str | None  # the provider's own classification, e.g. "餐饮服务;中餐厅"
    lon: float
    lat: float
    provider: str
    provider_id: str


@dataclass(frozen=True)
class PlacePage:
    items: list[Place]
    total: int | None  # as reported by the provider
    returned: int  # entries on the provider's page, usable or not (tells whether more pages may follow)


@dataclass(frozen=True)
class RawPlace:
    """A parsed result still in the provider's coordinate system."""

    name: str
    address: str | None
    phone: str | None
    provider_type: str | None
    lon: float
    lat: float
    provider_id: str


# -- rate limiting -------------------------------------------------------------------------------------------------

class TokenBucket:
    """A thread-safe token bucket: `rate` tokens per second, bursts of up to `capacity`."""

    def __init__(self, rate: float, capacity: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self, max_wait: float) -> float | None:
        """Take a token: the seconds to wait before using it (0 = now), or None (nothing taken) if above max_wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            if wait > max_wait:
                return None
            self._tokens -= 1  # may go negative: later callers queue behind this reservation
            return wait

    def acquire(self, max_wait: float, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Wait (at most max_wait seconds) for a token; False if none would come in time."""
        wait = self.reserve(max_wait)
        if wait is None:
            return False
        if wait > 0:
            sleep(wait)
        return True


_buckets: dict[str, TokenBucket] = {}
_buckets_lock = threading.Lock()


def rate_limiter(provider: str, rate: float) -> TokenBucket:
    """The process-wide bucket of a provider (replaced when the configured rate changes)."""
    with _buckets_lock:
        bucket = _buckets.get(provider)
        if bucket is None or bucket.rate != rate:
            bucket = _buckets[provider] = TokenBucket(rate)
        return bucket


def reset_rate_limiters() -> None:
    """Forget all buckets (tests)."""
    with _buckets_lock:
        _buckets.clear()


# -- HTTP ----------------------------------------------------------------------------------------------------------

def fetch_json(url: str, params: Mapping[str, str | int], *, timeout: float, label: str) -> Any:
    """GET url?params and decode the JSON body; every failure becomes PlaceSearchFailed (the URL, which holds the
    key, is never part of a message or log line)."""
    request = Request(f"{url}{'&' if '?' in url else '?'}{urlencode(params)}",
                      headers={"Accept": "application/json", "User-Agent": USER_AGENT})
    try:
        with urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except HTTPError as exc:
        raise _failed(label, f"HTTP {exc.code}", reason="http_status", http_status=exc.code) from exc
    except TimeoutError as exc:
        raise _failed(label, f"{timeout:g} 秒内无响应", reason="timeout") from exc
    except URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _failed(label, f"{timeout:g} 秒内无响应", reason="timeout") from exc
        raise _failed(label, f"无法连接（{exc.reason}）", reason="connection") from exc
    except (OSError, HTTPException) as exc:
        raise _failed(label, f"连接中断（{type(exc).__name__}）", reason="connection") from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise _failed(label, "响应过大", reason="malformed")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _failed(label, "响应不是合法的 JSON", reason="malformed") from exc


def _failed(label: str, message: str, *, reason: str, **detail: Any) -> PlaceSearchFailed:
    log.warning("place search via %s failed: %s", label, message)
    return PlaceSearchFailed(f"{label}关键字搜索失败：{message}", detail={"reason": reason, **detail})


# -- providers -----------------------------------------------------------------------------------------------------

def _text(value: Any, limit: int = 300) -> str | None:
    """A provider's text field as a stripped string; Gaode sends [] for empty fields."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text[:limit] or None
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _valid_lonlat(lon: float | None, lat: float | None) -> bool:
    return lon is not None and lat is not None and -180 <= lon <= 180 and -90 <= lat <= 90


class Baidu:
    name = "baidu"
    label = "百度地图"
    setting = "GM_BAIDU_AK"
    crs = "bd09"

    @staticmethod
    def key(settings: Settings) -> str:
        return settings.baidu_ak

    @staticmethod
    def url(settings: Settings) -> str:
        return settings.baidu_place_url

    @staticmethod
    def params(query: str, city: str, page: int, page_size: int, key: str) -> dict[str, str | int]:
        return {"query": query, "region": city, "city_limit": "true", "output": "json", "scope": 2,
                "page_size": page_size, "page_num": page - 1, "ak": key}

    @classmethod
    def parse(cls, payload: Any) -> tuple[list[RawPlace], int | None, int]:
        if not isinstance(payload, dict) or "status" not in payload:
            raise _failed(cls.label, "响应格式不符", reason="malformed")
        status = payload.get("status")
        if str(status) != "0":
            message = _text(payload.get("message")) or "未知错误"
            raise _failed(cls.label, f"{message}（status {status}）", reason="provider_status",
                          provider_status=str(status), provider_message=message)
        results = payload.get("results") if isinstance(payload.get("results"), list) else []
        places = [p for p in map(cls._place, results) if p is not None]
        total = _number(payload.get("total"))
        return places, None if total is None else int(total), len(results)

    @staticmethod
    def _place(item: Any) -> RawPlace | None:
        # city_type answers (a list of cities with counts) have no location and no uid: skipped
        if not isinstance(item, dict) or not isinstance(item.get("location"), dict):
            return None
        lon, lat = _number(item["location"].get("lng")), _number(item["location"].get("lat"))
        uid, name = _text(item.get("uid"), 100), _text(item.get("name"), 200)
        if not (_valid_lonlat(lon, lat) and uid and name):
            return None
        detail = item.get("detail_info") if isinstance(item.get("detail_info"), dict) else {}
        kind = ";".join(t for t in (_text(detail.get("tag")), _text(detail.get("type"))) if t) or None
        return RawPlace(name, _text(item.get("address")), _text(item.get("telephone"), 64), kind, lon, lat, uid)


class Gaode:
    name = "gaode"
    label = "高德地图"
    setting = "GM_GAODE_KEY"
    crs = "gcj02"

    @staticmethod
    def key(settings: Settings) -> str:
        return settings.gaode_key

    @staticmethod
    def url(settings: Settings) -> str:
        return settings.gaode_place_url

    @staticmethod
    def params(query: str, city: str, page: int, page_size: int, key: str) -> dict[str, str | int]:
        return {"keywords": query, "city": city, "citylimit": "true", "output": "JSON", "offset": page_size,
                "page": page, "extensions": "all", "key": key}

    @classmethod
    def parse(cls, payload: Any) -> tuple[list[RawPlace], int | None, int]:
        if not isinstance(payload, dict) or "status" not in payload:
            raise _failed(cls.label, "响应格式不符", reason="malformed")
        if str(payload.get("status")) != "1":
            info = _text(payload.get("info")) or "未知错误"
            infocode = _text(payload.get("infocode"))
            suffix = f"（infocode {infocode}）" if infocode else ""
            raise _failed(cls.label, f"{info}{suffix}", reason="provider_status", provider_status=infocode,
                          provider_message=info)
        pois = payload.get("pois") if isinstance(payload.get("pois"), list) else []
        places = [p for p in map(cls._place, pois) if p is not None]
        total = _number(payload.get("count"))
        return places, None if total is None else int(total), len(pois)

    @staticmethod
    def _place(item: Any) -> RawPlace | None:
        if not isinstance(item, dict) or not isinstance(item.get("location"), str):
            return None
        parts = item["location"].split(",")
        lon, lat = (_number(parts[0]), _number(parts[1])) if len(parts) == 2 else (None, None)
        poi_id, name = _text(item.get("id"), 100), _text(item.get("name"), 200)
        if not (_valid_lonlat(lon, lat) and poi_id and name):
            return None
        return RawPlace(name, _text(item.get("address")), _text(item.get("tel"), 64), _text(item.get("type")),
                        lon, lat, poi_id)


PROVIDERS: dict[str, type[Baidu] | type[Gaode]] = {"baidu": Baidu, "gaode": Gaode}


def provider_for(name: str) -> type[Baidu] | type[Gaode]:
    provider = PROVIDERS.get(name)
    if provider is None:
        raise ValidationFailed.on("provider", f"未知的搜索服务 {name!r}，可选：{', '.join(PROVIDERS)}")
    return provider


def enabled_providers(settings: Settings) -> list[str]:
    return [name for name, p in PROVIDERS.items() if p.key(settings)]


def default_provider(settings: Settings) -> str:
    """The first provider with a key (baidu, then gaode)."""
    enabled = enabled_providers(settings)
    if not enabled:
        raise PlaceSearchDisabled("地图关键字搜索未启用：请配置 GM_BAIDU_AK 或 GM_GAODE_KEY",
                                  detail={"settings": [p.setting for p in PROVIDERS.values()]})
    return enabled[0]


def _to_wgs84(raw: list[RawPlace], provider: type[Baidu] | type[Gaode]) -> list[Place]:
    if not raw:
        return []
    convert = bd09_to_wgs84 if provider.crs == "bd09" else gcj02_to_wgs84
    lons, lats = convert([r.lon for r in raw], [r.lat for r in raw])
    return [Place(r.name, r.address, r.phone, r.provider_type, round(float(x), 7), round(float(y), 7),
                  provider.name, r.provider_id) for r, x, y in zip(raw, lons, lats, strict=True)]


def search_places(settings: Settings, provider: str, query: str, city: str, *, page: int = 1,
                  page_size: int = 10) -> PlacePage:
    """One page of keyword results in a city, converted to WGS84."""
    spec = provider_for(provider)
    key = spec.key(settings)
    if not key:
        raise PlaceSearchDisabled(f"{spec.label}关键字搜索未启用：未配置 {spec.setting}",
                                  detail={"provider": spec.name, "setting": spec.setting})
    query, city = query.strip(), city.strip()
    if not query:
        raise ValidationFailed.on("q", "搜索关键字不能为空")
    if not city:
        raise ValidationFailed.on("city", "城市不能为空")
    if not 1 <= page <= 100 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationFailed("分页参数超出范围", errors={"page": ["1-100"], "page_size": [f"1-{MAX_PAGE_SIZE}"]})
    if not rate_limiter(spec.name, settings.place_rate_per_s).acquire(RATE_WAIT_MAX_S):
        raise PlaceSearchRateLimited(f"{spec.label}关键字搜索过于频繁，请稍后再试", detail={"provider": spec.name})
    payload = fetch_json(spec.url(settings), spec.params(query, city, page, page_size, key),
                         timeout=settings.place_timeout_s, label=spec.label)
    raw, total, returned = spec.parse(payload)
    return PlacePage(_to_wgs84(raw, spec), total, returned)


def collect_places(settings: Settings, provider: str, query: str, city: str, limit: int) -> list[Place]:
    """Up to `limit` distinct results, page by page (for imports)."""
    found: dict[str, Place] = {}
    size = min(MAX_PAGE_SIZE, limit)  # constant, so pages do not overlap
    for page in range(1, MAX_PAGES + 1):
        result = search_places(settings, provider, query, city, page=page, page_size=size)
        for place in result.items:
            found.setdefault(place.provider_id, place)
        exhausted = result.returned < size or (result.total is not None and page * size >= result.total)
        if len(found) >= limit or exhausted:
            break
    return list(found.values())[:limit]
