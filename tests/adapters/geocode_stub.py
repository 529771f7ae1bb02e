"""A local stub of the Baidu Geocoding v3, Gaode v3 geocode and Tianditu geocoder HTTP APIs, on 127.0.0.1.

Answers as documented: Baidu ``/baidu/geocoding/v3/`` (``status`` 0, ``result.location {lng, lat}`` in BD-09,
``precise``, ``confidence``, ``comprehension``, ``level``), Gaode ``/gaode/v3/geocode/geo`` (``status`` "1",
``geocodes[].location "lng,lat"`` in GCJ-02, ``level``), Tianditu ``/tianditu/geocoder`` (``ds`` JSON with
``keyWord``, ``tk``; ``status`` "0", ``location {lon, lat, level, score}``).
Keys: test-baidu-ak / test-gaode-key / test-tianditu-tk are valid, anything else is refused the provider's way.
Address keywords pick a behaviour: 配额 -> daily quota exceeded, 并发 -> concurrency limit, 不存在 -> no result,
慢 -> answer after `delay` s, HTTP500 -> HTTP error, 北京 -> a point in Beijing; `fail_next` > 0 makes that many
next requests fail with a transient server error. Otherwise the answer is `point` (WGS84) at `level`.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from geo_core.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.adapters.stub_server import JsonStubHandler, serve

BAIDU = "/baidu/geocoding/v3/"
GAODE = "/gaode/v3/geocode/geo"
TIANDITU = "/tianditu/geocoder"
KEYS = {BAIDU: "test-baidu-ak", GAODE: "test-gaode-key", TIANDITU: "test-tianditu-tk"}
DEFAULT_POINT = (112.9950, 28.1960)  # WGS84, in 芙蓉区
BEIJING = (116.3975, 39.9087)
LEVELS = {BAIDU: ("门址", 80), GAODE: ("门牌号", None), TIANDITU: ("门址", 100)}


@dataclass
class GeoStub:
    url: str
    point: tuple[float, float] = DEFAULT_POINT
    levels: dict[str, tuple[str, int | None]] = field(default_factory=lambda: dict(LEVELS))
    delay: float = 1.0
    fail_next: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def last(self, path: str) -> dict[str, str]:
        return next(params for p, params in reversed(self.requests) if p == path)

    def reset(self) -> None:
        self.point, self.levels, self.fail_next, self.delay = DEFAULT_POINT, dict(LEVELS), 0, 1.0
        self.requests.clear()


def _baidu(stub: GeoStub, params: dict[str, str], address: str, point: tuple[float, float]) -> tuple[int, Any]:
    if params.get("ak") != KEYS[BAIDU]:
        return 200, {"status": 200, "message": "APP不存在，AK有误请检查再重试"}
    if "配额" in address:
        return 200, {"status": 302, "message": "天配额超限，限制访问"}
    if "并发" in address:
        return 200, {"status": 401, "message": "当前并发量已经超过约定并发配额，限制访问"}
    if "不存在" in address:
        return 200, {"status": 1, "msg": "Internal Service Error:无相关结果", "results": []}
    level, confidence = stub.levels[BAIDU]
    lon, lat = wgs84_to_bd09(*point)
    return 200, {"status": 0, "result": {"location": {"lng": round(lon, 6), "lat": round(lat, 6)}, "precise": 1,
                                         "confidence": confidence, "comprehension": 100, "level": level}}


def _gaode(stub: GeoStub, params: dict[str, str], address: str, point: tuple[float, float]) -> tuple[int, Any]:
    if params.get("key") != KEYS[GAODE]:
        return 200, {"status": "0", "info": "INVALID_USER_KEY", "infocode": "10001"}
    if "配额" in address:
        return 200, {"status": "0", "info": "DAILY_QUERY_OVER_LIMIT", "infocode": "10003"}
    if "并发" in address:
        return 200, {"status": "0", "info": "CUQPS_HAS_EXCEEDED_THE_LIMIT", "infocode": "10021"}
    if "不存在" in address:
        return 200, {"status": "1", "info": "OK", "infocode": "10000", "count": "0", "geocodes": []}
    lon, lat = wgs84_to_gcj02(*point)
    return 200, {"status": "1", "info": "OK", "infocode": "10000", "count": "1", "geocodes": [{
        "formatted_address": "湖南省长沙市" + address, "country": "中国", "province": "湖南省", "citycode": "0731",
        "city": "长沙市", "district": "芙蓉区", "township": [], "neighborhood": {"name": [], "type": []},
        "building": {"name": [], "type": []}, "adcode": "430102", "street": [], "number": [],
        "location": f"{lon:.6f},{lat:.6f}", "level": stub.levels[GAODE][0]}]}


def _tianditu(stub: GeoStub, params: dict[str, str], address: str, point: tuple[float, float]) -> tuple[int, Any]:
    if params.get("tk") != KEYS[TIANDITU]:
        return 403, {"msg": "权限验证失败", "resolve": "请检查key", "code": 1}
    if "配额" in address or "并发" in address:
        return 429, {"msg": "访问次数超限", "code": 2}
    if "不存在" in address:
        return 200, {"status": "101", "msg": "结果为空", "searchVersion": "6.4.9V"}
    level, score = stub.levels[TIANDITU]
    return 200, {"status": "0", "msg": "ok", "searchVersion": "6.4.9V",
                 "location": {"lon": round(point[0], 6), "lat": round(point[1], 6), "level": level, "score": score,
                              "keyWord": address}}


class _Handler(JsonStubHandler):
    stub: GeoStub

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.stub.requests.append((parts.path, params))
        address = params.get("address", "")
        if parts.path == TIANDITU:
            try:
                address = json.loads(params.get("ds", "{}")).get("keyWord", "")
            except ValueError:
                return self._send(400, b'{"msg": "bad ds"}')
        if "慢" in address:
            time.sleep(self.stub.delay)
        if "HTTP500" in address:
            return self._send(500, b"internal error")
        if self.stub.fail_next > 0:
            self.stub.fail_next -= 1
            body = {BAIDU: {"status": 1, "msg": "服务器内部错误"},
                    GAODE: {"status": "0", "info": "SERVER_IS_BUSY", "infocode": "10016"},
                    TIANDITU: {"status": "404", "msg": "出错"}}.get(parts.path, {})
            return self._send(200, json.dumps(body, ensure_ascii=False).encode())
        point = BEIJING if "北京" in address else self.stub.point
        handler = {BAIDU: _baidu, GAODE: _gaode, TIANDITU: _tianditu}.get(parts.path)
        if handler is None:
            return self._send(404, b"not found")
        status, body = handler(self.stub, params, address, point)
        return self._send(status, json.dumps(body, ensure_ascii=False).encode())



def geocode_stub() -> AbstractContextManager[GeoStub]:
    """Run the stub on an ephemeral port of 127.0.0.1 for the duration of the block."""
    return serve(_Handler, lambda url: GeoStub(url=url), "geocode-stub")


def stub_settings(settings: Any, stub: GeoStub, **overrides: Any) -> Any:
    """Settings pointed at the stub with valid keys, generous rate limits and quotas."""
    values: dict[str, Any] = {"geocoder_timeout_s": 2.0, "geocoder_min_confidence": 0.6}
    for name, path in (("baidu", BAIDU), ("gaode", GAODE), ("tianditu", TIANDITU)):
        values |= {f"geocoder_{name}_key": KEYS[path], f"geocoder_{name}_url": stub.url + path,
                   f"geocoder_{name}_qps": 1000.0, f"geocoder_{name}_daily_quota": 100_000}
    return replace(settings, **(values | overrides))
