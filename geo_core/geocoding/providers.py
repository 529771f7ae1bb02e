"""Online geocoders: Baidu Geocoding API v3, Gaode (AMap) Web Service v3 geocode, Tianditu geocoder.

Plain HTTP GET + JSON through geo_core.adapters.places.fetch_json (urllib, no SDK, the key never in a message):

- Baidu ``GET {url}?address=&city=&output=json&ak=`` -> ``{"status": 0, "result": {"location": {"lng", "lat"},
  "precise": 0|1, "confidence": 0-100, "comprehension": 0-100, "level": "门址"}}``; coordinates in BD-09
  (bd09ll: we send no ``ret_coordtype``). ``status`` 1 "…无相关结果" = no result; 1 otherwise = server error
  (transient); 2 = bad request (no result); 3, 5, 101, 102, 2xx = key/permission (fatal); 4, 301, 302 = quota
  (stop for the day); 401, 402 = concurrency (transient, backed off).
- Gaode ``GET {url}?address=&city=&output=JSON&key=`` -> ``{"status": "1", "count": "1", "geocodes": [{"location":
  "lng,lat", "level": "门牌号", "adcode", "formatted_address", ...}]}`` in GCJ-02; ``status`` "0" carries
  ``infocode``: 10001/10002/10005-10009/10012/10013 fatal, 10003/10010/10029/10044 quota, 10004/10014/10019-10021
  rate (transient), 10015-10017 transient, 20000-20003/20800 no result.
- Tianditu ``GET {url}?ds={"keyWord": ...}&tk=`` -> ``{"status": "0", "msg": "ok", "location": {"lon", "lat",
  "level", "score"}}``; CGCS2000, which we treat as WGS84 (centimetres apart). ``status`` "101" = no result,
  "404" = error (transient); HTTP 401/403 = key refused (fatal), 429 = rate/quota.

Each provider has a per-process token bucket (``GM_GEOCODER_<P>_QPS``) and a daily quota counted in Redis
(``GM_GEOCODER_<P>_DAILY_QUOTA``, key ``gm:geocode:quota:<p>:<YYYYMMDD>`` in China time). A provider without
a key is disabled. Provider levels map onto ours (exact_address | poi | community | street | district | none);
confidence = our level's base, scaled by the provider's own confidence/score where it gives one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from geo_core.adapters.places import PlaceSearchFailed, TokenBucket, fetch_json
from geo_core.config import Settings
from geo_core.crs import bd09_to_wgs84, gcj02_to_wgs84
from geo_core.geocoding.gazetteer import GeocodeResult

log = logging.getLogger("gridmarket.geocoding")

BASE_CONFIDENCE = {"exact_address": 0.9, "poi": 0.8, "community": 0.5, "street": 0.35, "district": 0.15,
                   "none": 0.0}
CHINA_TZ = timezone(timedelta(hours=8))
MAX_ADDRESS_CHARS = 84  # Baidu's documented limit is 84 bytes of address; we cut long noise before sending


class ProviderError(Exception):
    """A provider failed. kind: fatal (key/permission: stop using it), quota (daily quota: stop for today),
    transient (retry with backoff), disabled (no key)."""

    def __init__(self, provider: str, kind: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider, self.kind, self.message = provider, kind, message


def _num(value: Any) -> float | None:
    try:
        n = float(value)
    except (TypeError, ValueError):
        return None
    return n if -180 <= n <= 180 else None


# -- level maps ---------------------------------------------------------------------------------------------------

BAIDU_LEVELS = {"门址": "exact_address", "地产小区": "poi", "商务大厦": "poi", "旅游景点": "poi", "教育": "poi",
                "医疗": "poi", "金融": "poi", "购物": "poi", "酒店": "poi", "餐饮": "poi", "休闲娱乐": "poi",
                "汽车服务": "poi", "生活服务": "poi", "行政单位": "poi", "公司企业": "poi", "交通设施": "poi",
                "POI": "poi", "村庄": "community", "乡镇": "street", "道路": "street", "道路附属": "street",
                "商圈": "street", "区县": "district", "城市": "none", "省": "none", "国家": "none", "NoClass": "none",
                "UNKNOWN": "none"}
GAODE_LEVELS = {"门牌号": "exact_address", "单元号": "exact_address", "门址": "exact_address", "兴趣点": "poi",
                "公交站台、地铁站": "poi", "地铁站": "poi", "公交站台": "poi", "热点商圈": "street",
                "村庄": "community", "乡镇": "street", "道路": "street", "道路交叉路口": "street", "区县": "district",
                "开发区": "district",
                "市": "none", "省": "none", "国家": "none", "未知": "none"}
TIANDITU_LEVELS = {"门址": "exact_address", "门牌号": "exact_address", "地名地址": "poi", "兴趣点": "poi",
                   "POI": "poi", "村庄": "community", "乡镇": "street", "街道": "street", "道路": "street",
                   "区县": "district", "行政区划": "district", "城市": "none", "省": "none"}


def _result(provider: str, level: str, lon: float, lat: float, scale: float, matched: str | None,
            detail: dict[str, Any]) -> GeocodeResult:
    confidence = round(BASE_CONFIDENCE[level] * max(0.0, min(1.0, scale)), 3)
    if level == "none":
        return GeocodeResult(provider, "none", 0.0, matched=matched, detail=detail)
    return GeocodeResult(provider, level, confidence, round(lon, 7), round(lat, 7), matched=matched, detail=detail)


# -- the three providers ------------------------------------------------------------------------------------------

class Baidu:
    name, label, crs = "baidu", "百度地图", "bd09"
    FATAL = {3, 5, 101, 102}
    QUOTA = {4, 301, 302}
    RATE = {401, 402}

    @staticmethod
    def params(address: str, city: str, key: str) -> dict[str, str]:
        return {"address": address, "city": city, "output": "json", "ak": key}

    @classmethod
    def parse(cls, payload: Any) -> GeocodeResult | None:
        if not isinstance(payload, dict) or "status" not in payload:
            raise ProviderError(cls.name, "transient", "响应格式不符")
        try:
            status = int(payload["status"])
        except (TypeError, ValueError) as exc:
            raise ProviderError(cls.name, "transient", "响应格式不符") from exc
        message = str(payload.get("msg") or payload.get("message") or "")
        if status != 0:
            if status == 2 or (status == 1 and "无相关结果" in message):
                return None
            kind = ("fatal" if status in cls.FATAL or 200 <= status < 300 else "quota" if status in cls.QUOTA
                    else "transient")
            raise ProviderError(cls.name, kind, f"{message or '错误'}（status {status}）")
        result = payload.get("result") if isinstance(payload.get("result"), dict) else {}
        location = result.get("location") if isinstance(result.get("location"), dict) else {}
        lon, lat = _num(location.get("lng")), _num(location.get("lat"))
        if lon is None or lat is None:
            return None
        lon, lat = bd09_to_wgs84(lon, lat)
        raw_level = str(result.get("level") or "UNKNOWN")
        level = BAIDU_LEVELS.get(raw_level, "poi")
        if level == "exact_address" and str(result.get("precise")) != "1":
            level = "poi"  # a fuzzy 门址 point is not a door
        confidence = _num(result.get("confidence"))
        scale = 0.5 + (confidence if confidence is not None else 50) / 200
        return _result(cls.name, level, lon, lat, scale, raw_level,
                       {"provider_level": raw_level, "precise": result.get("precise"),
                        "provider_confidence": result.get("confidence"),
                        "comprehension": result.get("comprehension")})


class Gaode:
    name, label, crs = "gaode", "高德地图", "gcj02"
    FATAL = {"10001", "10002", "10005", "10006", "10007", "10008", "10009", "10012", "10013"}
    QUOTA = {"10003", "10010", "10029", "10044"}
    NO_RESULT = {"20000", "20001", "20002", "20003", "20800"}

    @staticmethod
    def params(address: str, city: str, key: str) -> dict[str, str]:
        return {"address": address, "city": city, "output": "JSON", "key": key}

    @classmethod
    def parse(cls, payload: Any) -> GeocodeResult | None:
        if not isinstance(payload, dict) or "status" not in payload:
            raise ProviderError(cls.name, "transient", "响应格式不符")
        if str(payload.get("status")) != "1":
            code, info = str(payload.get("infocode") or ""), str(payload.get("info") or "错误")
            if code in cls.NO_RESULT:
                return None
            kind = "fatal" if code in cls.FATAL else "quota" if code in cls.QUOTA else "transient"
            raise ProviderError(cls.name, kind, f"{info}（infocode {code}）")
        geocodes = payload.get("geocodes") if isinstance(payload.get("geocodes"), list) else []
        first = geocodes[0] if geocodes and isinstance(geocodes[0], dict) else None
        if first is None or not isinstance(first.get("location"), str):
            return None
        parts = first["location"].split(",")
        lon, lat = (_num(parts[0]), _num(parts[1])) if len(parts) == 2 else (None, None)
        if lon is None or lat is None:
            return None
        lon, lat = gcj02_to_wgs84(lon, lat)
        raw_level = str(first.get("level") or "未知")
        level = GAODE_LEVELS.get(raw_level, "poi")
        matched = first.get("formatted_address") if isinstance(first.get("formatted_address"), str) else raw_level
        return _result(cls.name, level, lon, lat, 1.0, matched,
                       {"provider_level": raw_level, "adcode": first.get("adcode")})


class Tianditu:
    name, label, crs = "tianditu", "天地图", "wgs84"

    @staticmethod
    def params(address: str, city: str, key: str) -> dict[str, str]:
        return {"ds": json.dumps({"keyWord": address}, ensure_ascii=False), "tk": key}

    @classmethod
    def parse(cls, payload: Any) -> GeocodeResult | None:
        if not isinstance(payload, dict) or "status" not in payload:
            raise ProviderError(cls.name, "transient", "响应格式不符")
        status = str(payload.get("status"))
        if status == "101":
            return None
        if status != "0":
            raise ProviderError(cls.name, "transient", f"{payload.get('msg') or '错误'}（status {status}）")
        location = payload.get("location") if isinstance(payload.get("location"), dict) else {}
        lon, lat = _num(location.get("lon")), _num(location.get("lat"))
        if lon is None or lat is None:
            return None
        raw_level = str(location.get("level") or "")
        level = TIANDITU_LEVELS.get(raw_level, "street")  # unknown category: do not claim more than a street
        score = _num(location.get("score"))
        scale = 0.5 + (score if score is not None else 50) / 200
        return _result(cls.name, level, lon, lat, scale, raw_level or None,
                       {"provider_level": raw_level or None, "score": location.get("score")})


PROVIDERS: dict[str, type[Baidu] | type[Gaode] | type[Tianditu]] = {"baidu": Baidu, "gaode": Gaode,
                                                                     "tianditu": Tianditu}


def provider_settings(settings: Settings, name: str) -> dict[str, Any]:
    return {k: getattr(settings, f"geocoder_{name}_{k}") for k in ("key", "url", "qps", "daily_quota")}


def enabled_providers(settings: Settings) -> list[str]:
    """Online providers in chain order that have a key."""
    return [p for p in settings.geocoder_chain if p in PROVIDERS and provider_settings(settings, p)["key"]]


# -- rate limit and daily quota -----------------------------------------------------------------------------------

_buckets: dict[str, TokenBucket] = {}
_buckets_lock = threading.Lock()


def bucket(name: str, rate: float) -> TokenBucket:
    with _buckets_lock:
        b = _buckets.get(name)
        if b is None or b.rate != rate:
            b = _buckets[name] = TokenBucket(rate)
        return b


def reset_rate_limiters() -> None:
    with _buckets_lock:
        _buckets.clear()


def quota_key(name: str, now: datetime | None = None) -> str:
    day = (now or datetime.now(CHINA_TZ)).astimezone(CHINA_TZ).strftime("%Y%m%d")
    return f"gm:geocode:quota:{name}:{day}"


def take_quota(redis: Any, name: str, daily_quota: int) -> None:
    """Count one request against today's quota; ProviderError(quota) once it is used up."""
    if redis is None or daily_quota <= 0:
        return
    key = quota_key(name)
    used = redis.incr(key)
    if used == 1:
        redis.expire(key, 2 * 24 * 3600)
    if used > daily_quota:
        raise ProviderError(name, "quota", f"今日配额（{daily_quota} 次）已用完")


def quota_used(redis: Any, name: str) -> int:
    raw = redis.get(quota_key(name)) if redis is not None else None
    return int(raw) if raw else 0


def geocode_online(settings: Settings, name: str, address: str, *, city: str = "长沙市", redis: Any = None,
                   max_wait_s: float = 1.0, sleep: Callable[[float], None] | None = None) -> GeocodeResult | None:
    """One request to one provider: rate-limited, counted against the daily quota, mapped to our levels."""
    spec = PROVIDERS[name]
    conf = provider_settings(settings, name)
    if not conf["key"]:
        raise ProviderError(name, "disabled", f"未配置 GM_GEOCODER_{name.upper()}_KEY")
    limiter = bucket(f"geocode:{name}", conf["qps"])
    if not (limiter.acquire(max_wait_s, sleep) if sleep else limiter.acquire(max_wait_s)):
        raise ProviderError(name, "transient", "请求过于频繁（本地限流）")
    take_quota(redis, name, conf["daily_quota"])
    try:
        payload = fetch_json(conf["url"], spec.params(address[:MAX_ADDRESS_CHARS], city, conf["key"]),
                             timeout=settings.geocoder_timeout_s, label=spec.label)
    except PlaceSearchFailed as exc:
        status = exc.detail.get("http_status") if exc.detail else None
        if status in (401, 403):
            raise ProviderError(name, "fatal", f"HTTP {status}（密钥无效或无权限）") from exc
        if status == 429:
            raise ProviderError(name, "transient", "HTTP 429（请求过于频繁）") from exc
        if status is not None and 400 <= status < 500:
            raise ProviderError(name, "fatal", f"HTTP {status}") from exc
        raise ProviderError(name, "transient", exc.message) from exc
    return spec.parse(payload)
