"""A local stub of the Baidu Place API v2 and Gaode Web Service v3 keyword search, on 127.0.0.1.

The stub answers like the documented APIs: Baidu ``/baidu/place/v2/search`` (``status`` 0 + ``results`` with
``location: {lat, lng}`` in BD-09) and Gaode ``/gaode/v3/place/text`` (``status`` "1" + ``pois`` with
``location: "lng,lat"`` in GCJ-02, empty fields as ``[]``), paged by page_size/page_num and offset/page.
Keywords pick a behaviour: 错误 -> the provider's error status, 坏JSON -> a malformed body, 慢 -> an answer after
`delay` seconds, HTTP500 -> an HTTP error; anything else returns `places` (WGS84 in, converted on the way out).
Every request's path and parameters are recorded in `requests`.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from geo_core.crs import wgs84_to_bd09, wgs84_to_gcj02
from tests.adapters.stub_server import JsonStubHandler, serve

BAIDU_PATH = "/baidu/place/v2/search"
GAODE_PATH = "/gaode/v3/place/text"
# (name, WGS84 lon, WGS84 lat, provider id, Baidu tag, Gaode type)
DEFAULT_PLACES = [("湘江副食批发市场", 112.9712, 28.1989, "P001", "购物;市场", "购物服务;综合市场;综合市场")]


@dataclass
class Stub:
    url: str
    places: list[tuple[str, float, float, str, str, str]] = field(default_factory=lambda: list(DEFAULT_PLACES))
    delay: float = 1.0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def last(self, path: str) -> dict[str, str]:
        return next(params for p, params in reversed(self.requests) if p == path)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


def _baidu(stub: Stub, params: dict[str, str]) -> tuple[int, Any]:
    query = params.get("query", "")
    if "错误" in query:
        return 200, {"status": 200, "message": "APP不存在，AK有误请检查再重试"}
    size, page = int(params.get("page_size", 10)), int(params.get("page_num", 0))
    chosen = stub.places[page * size:(page + 1) * size]
    results = []
    for name, lon, lat, pid, tag, _ in chosen:
        blon, blat = wgs84_to_bd09(lon, lat)
        results.append({"name": name, "location": {"lat": round(blat, 6), "lng": round(blon, 6)},
                        "address": "长沙市天心区" + name, "province": "湖南省", "city": "长沙市", "area": "天心区",
                        "telephone": "(0731)88888888", "detail": 1, "uid": pid,
                        "detail_info": {"tag": tag, "type": "shopping"}})
    return 200, {"status": 0, "message": "ok", "result_type": "poi_type", "total": len(stub.places),
                 "results": results}


def _gaode(stub: Stub, params: dict[str, str]) -> tuple[int, Any]:
    keywords = params.get("keywords", "")
    if "错误" in keywords:
        return 200, {"status": "0", "info": "INVALID_USER_KEY", "infocode": "10001"}
    size, page = int(params.get("offset", 20)), int(params.get("page", 1))
    chosen = stub.places[(page - 1) * size:page * size]
    pois = []
    for name, lon, lat, pid, _, kind in chosen:
        glon, glat = wgs84_to_gcj02(lon, lat)
        pois.append({"id": pid, "parent": [], "name": name, "type": kind, "typecode": "060700",
                     "address": [], "location": f"{glon:.6f},{glat:.6f}", "tel": [], "pname": "湖南省",
                     "cityname": "长沙市", "adname": "天心区"})
    return 200, {"status": "1", "count": str(len(stub.places)), "info": "OK", "infocode": "10000",
                 "suggestion": {"keywords": [], "cities": []}, "pois": pois}


class _Handler(JsonStubHandler):
    stub: Stub

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.stub.requests.append((parts.path, params))
        keyword = params.get("query", "") + params.get("keywords", "")
        if "慢" in keyword:
            time.sleep(self.stub.delay)
        if "HTTP500" in keyword:
            return self._send(500, b"internal error")
        if "坏JSON" in keyword:
            return self._send(200, b'{"status": 0, "results": [')
        if parts.path == BAIDU_PATH:
            status, body = _baidu(self.stub, params)
        elif parts.path == GAODE_PATH:
            status, body = _gaode(self.stub, params)
        else:
            return self._send(404, b"not found")
        return self._send(status, json.dumps(body, ensure_ascii=False).encode())



def place_stub() -> AbstractContextManager[Stub]:
    """Run the stub on an ephemeral port of 127.0.0.1 for the duration of the block."""
    return serve(_Handler, lambda url: Stub(url=url), "place-stub")


def stub_settings(settings: Any, stub: Stub, **overrides: Any) -> Any:
    """The settings pointed at the stub, with keys for both providers and a generous rate limit."""
    from dataclasses import replace

    values = {"baidu_ak": "test-baidu-ak", "gaode_key": "test-gaode-key", "baidu_place_url": stub.url + BAIDU_PATH,
              "gaode_place_url": stub.url + GAODE_PATH, "place_timeout_s": 2.0, "place_rate_per_s": 1000.0}
    return replace(settings, **(values | overrides))
