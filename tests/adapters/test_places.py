"""Keyword place search adapters against a local stub of the Baidu and Gaode HTTP APIs (no network)."""

from __future__ import annotations

import math
import time

import pytest

from geo_core.adapters import places
from geo_core.adapters.places import (
    PlaceSearchDisabled,
    PlaceSearchFailed,
    PlaceSearchRateLimited,
    TokenBucket,
    collect_places,
    search_places,
)
from geo_core.config import Settings
from geo_core.errors import ValidationFailed
from tests.adapters import BAIDU_PATH, DEFAULT_PLACES, GAODE_PATH, place_stub, stub_settings

WGS84_POINT = DEFAULT_PLACES[0][1:3]


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * math.cos(math.radians(b[1])) * 111_320
    dy = (a[1] - b[1]) * 110_574
    return math.hypot(dx, dy)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """The stub is on 127.0.0.1: never send it through a proxy from the environment."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    places.reset_rate_limiters()
    yield
    places.reset_rate_limiters()


@pytest.fixture(scope="module")
def stub():
    with place_stub() as s:
        yield s


@pytest.fixture()
def settings(stub):
    stub.places = list(DEFAULT_PLACES)
    stub.requests.clear()
    return stub_settings(Settings.from_env(), stub)


def test_baidu_request_follows_the_documented_api(stub, settings):
    page = search_places(settings, "baidu", " 副食 ", "长沙", page=2, page_size=5)
    assert stub.last(BAIDU_PATH) == {"query": "副食", "region": "长沙", "city_limit": "true", "output": "json",
                                     "scope": "2", "page_size": "5", "page_num": "1", "ak": "test-baidu-ak"}
    assert "ret_coordtype" not in stub.last(BAIDU_PATH)  # so Baidu answers in BD-09 (bd09ll)
    assert page.items == [] and page.total == 1


def test_gaode_request_follows_the_documented_api(stub, settings):
    search_places(settings, "gaode", "副食", "长沙", page=3, page_size=20)
    assert stub.last(GAODE_PATH) == {"keywords": "副食", "city": "长沙", "citylimit": "true", "output": "JSON",
                                     "offset": "20", "page": "3", "extensions": "all", "key": "test-gaode-key"}


@pytest.mark.parametrize("provider", ["baidu", "gaode"])
def test_results_come_back_in_wgs84(settings, provider):
    page = search_places(settings, provider, "副食", "长沙")
    (place,) = page.items
    assert place.name == "湘江副食批发市场" and place.provider == provider and place.provider_id == "P001"
    # the stub sent BD-09 / GCJ-02 rounded to 6 decimals, as the providers do
    assert metres((place.lon, place.lat), WGS84_POINT) < 0.5
    assert page.total == 1


def test_baidu_and_gaode_agree_on_the_same_point(settings):
    baidu = search_places(settings, "baidu", "副食", "长沙").items[0]
    gaode = search_places(settings, "gaode", "副食", "长沙").items[0]
    assert metres((baidu.lon, baidu.lat), (gaode.lon, gaode.lat)) < 0.5


def test_fields_and_empty_gaode_values(settings):
    baidu = search_places(settings, "baidu", "副食", "长沙").items[0]
    assert baidu.address == "长沙市天心区湘江副食批发市场" and baidu.phone == "(0731)88888888"
    assert baidu.provider_type == "购物;市场;shopping"
    gaode = search_places(settings, "gaode", "副食", "长沙").items[0]
    assert gaode.address is None and gaode.phone is None  # Gaode sends [] for empty fields
    assert gaode.provider_type == "购物服务;综合市场;综合市场"


@pytest.mark.parametrize("provider,message", [("baidu", "APP不存在，AK有误请检查再重试"),
                                              ("gaode", "INVALID_USER_KEY")])
def test_provider_error_status_is_place_search_failed_with_its_message(settings, provider, message):
    with pytest.raises(PlaceSearchFailed) as err:
        search_places(settings, provider, "错误", "长沙")
    assert err.value.status == 502 and err.value.code == "PLACE_SEARCH_FAILED"
    assert message in err.value.message and err.value.detail["reason"] == "provider_status"
    assert "test-" not in err.value.message  # never the key


@pytest.mark.parametrize("provider", ["baidu", "gaode"])
@pytest.mark.parametrize("keyword,reason", [("坏JSON", "malformed"), ("HTTP500", "http_status")])
def test_malformed_json_and_http_errors(settings, provider, keyword, reason):
    with pytest.raises(PlaceSearchFailed) as err:
        search_places(settings, provider, keyword, "长沙")
    assert err.value.detail["reason"] == reason


@pytest.mark.parametrize("provider", ["baidu", "gaode"])
def test_slow_answer_times_out(stub, settings, provider):
    from dataclasses import replace

    stub.delay = 1.0
    started = time.monotonic()
    with pytest.raises(PlaceSearchFailed) as err:
        search_places(replace(settings, place_timeout_s=0.2), provider, "慢", "长沙")
    assert err.value.detail["reason"] == "timeout" and "0.2 秒内无响应" in err.value.message
    assert time.monotonic() - started < 0.9


def test_unreachable_provider(settings):
    from dataclasses import replace

    closed = replace(settings, gaode_place_url="http://127.0.0.1:9/v3/place/text")  # discard port: refused
    with pytest.raises(PlaceSearchFailed) as err:
        search_places(closed, "gaode", "副食", "长沙")
    assert err.value.detail["reason"] == "connection"


@pytest.mark.parametrize("payload", [[], {"info": "OK"}, {"status": "1", "pois": {"x": 1}}, "text"])
def test_unexpected_shapes_are_failures_or_empty(payload):
    try:
        raw, total, returned = places.Gaode.parse(payload)
    except PlaceSearchFailed:
        return
    assert raw == [] and returned == 0


def test_unusable_entries_are_skipped():
    payload = {"status": 0, "results": [
        {"name": "长沙市", "num": 12},  # city_type answer: no location
        {"name": "无坐标", "uid": "a", "location": {"lat": "x", "lng": 1}},
        {"name": "越界", "uid": "b", "location": {"lat": 95, "lng": 112}},
        {"name": "好", "uid": "c", "location": {"lat": 28.2, "lng": 112.9}},
    ]}
    raw, total, returned = places.Baidu.parse(payload)
    assert [r.provider_id for r in raw] == ["c"] and returned == 4 and total is None


def test_disabled_without_key_and_unknown_provider(stub, settings):
    from dataclasses import replace

    with pytest.raises(PlaceSearchDisabled) as err:
        search_places(replace(settings, baidu_ak=""), "baidu", "副食", "长沙")
    assert err.value.status == 503 and "GM_BAIDU_AK" in err.value.message
    with pytest.raises(ValidationFailed):
        search_places(settings, "tencent", "副食", "长沙")
    bare = replace(settings, baidu_ak="", gaode_key="")
    with pytest.raises(PlaceSearchDisabled):
        places.default_provider(bare)
    assert places.default_provider(replace(settings, baidu_ak="")) == "gaode"
    assert stub.requests == []


def test_collect_places_pages_through_and_dedupes(stub, settings):
    stub.places = [(f"商店{i}", 112.9 + i * 1e-4, 28.2, f"S{i:03d}", "购物", "购物服务") for i in range(45)]
    stub.places.append(("重复", 112.9, 28.2, "S000", "购物", "购物服务"))
    found = collect_places(settings, "gaode", "商店", "长沙", 100)
    assert len(found) == 45 and len({p.provider_id for p in found}) == 45
    assert stub.count(GAODE_PATH) == 3  # pages of 20: 20 + 20 + 6 (the last is short)
    stub.requests.clear()
    assert len(collect_places(settings, "baidu", "商店", "长沙", 25)) == 25
    assert [r["page_num"] for _, r in stub.requests] == ["0", "1"]


def test_token_bucket_with_a_fake_clock():
    now = [0.0]
    bucket = TokenBucket(2.0, clock=lambda: now[0])
    assert bucket.reserve(0) == 0 and bucket.reserve(0) == 0
    assert bucket.reserve(0) is None  # empty, and nothing was taken
    assert bucket.reserve(1.0) == pytest.approx(0.5)  # queued behind nobody: half a second
    assert bucket.reserve(1.0) == pytest.approx(1.0)  # queued behind the previous reservation
    assert bucket.reserve(1.0) is None
    now[0] = 10.0
    assert bucket.reserve(0) == 0  # refilled, capped at capacity
    assert bucket.reserve(0) == 0 and bucket.reserve(0) is None


def test_rate_limit_per_provider_rejects_beyond_the_wait(stub, settings):
    from dataclasses import replace

    slow = replace(settings, place_rate_per_s=0.5)  # one token, the next in 2 s (> 1 s max wait)
    search_places(slow, "baidu", "副食", "长沙")
    with pytest.raises(PlaceSearchRateLimited) as err:
        search_places(slow, "baidu", "副食", "长沙")
    assert err.value.status == 429
    assert stub.count(BAIDU_PATH) == 1  # the rejected call never reached the provider
    search_places(slow, "gaode", "副食", "长沙")  # each provider has its own bucket


def test_rate_limit_spaces_out_bursts(settings):
    from dataclasses import replace

    limited = replace(settings, place_rate_per_s=4.0)  # bursts of 4, then one every 0.25 s
    started = time.monotonic()
    for _ in range(6):
        search_places(limited, "gaode", "副食", "长沙")
    assert time.monotonic() - started >= 0.45


def test_settings_from_env():
    env = {"GM_SECRET_KEY": "k" * 40, "GM_BAIDU_AK": " AK-0123 ", "GM_PLACE_TIMEOUT": "2.5", "GM_PLACE_RATE": "3"}
    s = Settings.from_env(env)
    assert s.baidu_ak == "AK-0123" and s.gaode_key == "" and s.place_timeout_s == 2.5 and s.place_rate_per_s == 3
    assert s.baidu_place_url == "https://api.map.baidu.com/place/v2/search"
    assert s.gaode_place_url == "https://restapi.amap.com/v3/place/text"
    assert "AK-0123" not in repr(s)  # keys stay out of logs
    from geo_core.config import SettingsError

    for bad in ({"GM_PLACE_TIMEOUT": "0"}, {"GM_PLACE_RATE": "x"}, {"GM_GAODE_PLACE_URL": "ftp://x"}):
        with pytest.raises(SettingsError):
            Settings.from_env({"GM_SECRET_KEY": "k" * 40, **bad})
