"""Baidu, Gaode and Tianditu geocoding adapters against a local stub of their HTTP APIs (no network): request
format, conversion to WGS84, level mapping, error classes, daily quota in Redis, local rate limit, and the provider
chain (threshold, retries with backoff, a provider stopped after a key or quota error, answers outside the city)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import pytest

from geo_core.config import Settings, SettingsError
from geo_core.geocoding import providers
from geo_core.geocoding.providers import ProviderError, geocode_online, quota_key, quota_used
from geo_core.geocoding.service import Geocoder
from tests.adapters.geocode_stub import BAIDU, DEFAULT_POINT, GAODE, TIANDITU, geocode_stub, stub_settings

NAMES = ["baidu", "gaode", "tianditu"]
PATHS = {"baidu": BAIDU, "gaode": GAODE, "tianditu": TIANDITU}


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * math.cos(math.radians(b[1])) * 111_320
    dy = (a[1] - b[1]) * 110_574
    return math.hypot(dx, dy)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    providers.reset_rate_limiters()
    yield
    providers.reset_rate_limiters()


@pytest.fixture(scope="module")
def stub():
    with geocode_stub() as s:
        yield s


@pytest.fixture()
def conf(stub):
    stub.reset()
    return stub_settings(Settings.from_env(), stub)


@pytest.fixture()
def redis(redis_conn):
    for key in redis_conn.scan_iter("gm:geocode:quota:*"):
        redis_conn.delete(key)
    yield redis_conn
    for key in redis_conn.scan_iter("gm:geocode:quota:*"):
        redis_conn.delete(key)


def test_requests_follow_the_documented_apis(stub, conf):
    geocode_online(conf, "baidu", "芙蓉区五一大道389号", city="长沙市")
    assert stub.last(BAIDU) == {"address": "芙蓉区五一大道389号", "city": "长沙市", "output": "json",
                                "ak": "test-baidu-ak"}  # no ret_coordtype: Baidu answers in bd09ll
    geocode_online(conf, "gaode", "芙蓉区五一大道389号", city="长沙市")
    assert stub.last(GAODE) == {"address": "芙蓉区五一大道389号", "city": "长沙市", "output": "JSON",
                                "key": "test-gaode-key"}
    geocode_online(conf, "tianditu", "长沙市芙蓉区五一大道389号", city="长沙市")
    sent = stub.last(TIANDITU)
    assert sent["tk"] == "test-tianditu-tk" and json.loads(sent["ds"]) == {"keyWord": "长沙市芙蓉区五一大道389号"}


@pytest.mark.parametrize("name", NAMES)
def test_answers_come_back_in_wgs84_at_door_level(conf, name):
    result = geocode_online(conf, name, "芙蓉区五一大道389号")
    assert result.provider == name and result.level == "exact_address"
    assert metres((result.lon, result.lat), DEFAULT_POINT) < 0.5  # BD-09 / GCJ-02 / CGCS2000 -> WGS84
    assert 0.5 < result.confidence <= 0.9


@pytest.mark.parametrize("name,raw,level", [
    ("baidu", ("道路", 50), "street"), ("baidu", ("村庄", 40), "community"), ("baidu", ("区县", 20), "district"),
    ("baidu", ("地产小区", 70), "poi"), ("baidu", ("城市", 10), "none"),
    ("gaode", ("兴趣点", None), "poi"), ("gaode", ("乡镇", None), "street"), ("gaode", ("区县", None), "district"),
    ("gaode", ("市", None), "none"),
    ("tianditu", ("地名地址", 90), "poi"), ("tianditu", ("神秘类别", 90), "street"),
])
def test_provider_levels_map_to_ours_without_claiming_precision(stub, conf, name, raw, level):
    stub.levels[PATHS[name]] = raw
    result = geocode_online(conf, name, "芙蓉区某处")
    assert result.level == level
    if level == "none":
        assert result.lon is None and result.confidence == 0
    else:
        assert result.confidence <= providers.BASE_CONFIDENCE[level]


def test_baidu_confidence_scales_ours(stub, conf):
    stub.levels[BAIDU] = ("门址", 100)
    high = geocode_online(conf, "baidu", "芙蓉区某处").confidence
    stub.levels[BAIDU] = ("门址", 20)
    assert geocode_online(conf, "baidu", "芙蓉区某处").confidence < high


@pytest.mark.parametrize("name", NAMES)
def test_no_result_is_none_not_an_error(conf, name):
    assert geocode_online(conf, name, "不存在的地址") is None


@pytest.mark.parametrize("name", NAMES)
def test_invalid_key_is_fatal(conf, name):
    bad = replace(conf, **{f"geocoder_{name}_key": "wrong-key"})
    with pytest.raises(ProviderError) as err:
        geocode_online(bad, name, "芙蓉区五一大道1号")
    assert err.value.kind == "fatal" and "wrong-key" not in str(err.value)


@pytest.mark.parametrize("name,kind", [("baidu", "quota"), ("gaode", "quota"), ("tianditu", "transient")])
def test_provider_quota_errors(conf, name, kind):
    with pytest.raises(ProviderError) as err:
        geocode_online(conf, name, "配额用完")
    assert err.value.kind == kind  # Tianditu answers HTTP 429 for both: retried, not fatal


@pytest.mark.parametrize("name", NAMES)
def test_concurrency_limits_and_server_errors_are_transient(stub, conf, name):
    with pytest.raises(ProviderError) as err:
        geocode_online(conf, name, "并发太多")
    assert err.value.kind == "transient"
    with pytest.raises(ProviderError) as err:
        geocode_online(conf, name, "HTTP500")
    assert err.value.kind == "transient"
    stub.fail_next = 1
    with pytest.raises(ProviderError) as err:
        geocode_online(conf, name, "芙蓉区五一大道1号")
    assert err.value.kind == "transient"


def test_timeout_is_transient(stub, conf):
    stub.delay = 1.0
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        geocode_online(replace(conf, geocoder_timeout_s=0.2), "gaode", "慢地址")
    assert err.value.kind == "transient" and time.monotonic() - started < 0.9


def test_disabled_without_a_key(conf):
    off = replace(conf, geocoder_baidu_key="")
    with pytest.raises(ProviderError) as err:
        geocode_online(off, "baidu", "芙蓉区五一大道1号")
    assert err.value.kind == "disabled"
    assert "baidu" not in providers.enabled_providers(off) and "gaode" in providers.enabled_providers(off)


def test_daily_quota_is_counted_in_redis(stub, conf, redis):
    limited = replace(conf, geocoder_gaode_daily_quota=2)
    geocode_online(limited, "gaode", "芙蓉区五一大道1号", redis=redis)
    geocode_online(limited, "gaode", "芙蓉区五一大道2号", redis=redis)
    sent = stub.count(GAODE)
    with pytest.raises(ProviderError) as err:
        geocode_online(limited, "gaode", "芙蓉区五一大道3号", redis=redis)
    assert err.value.kind == "quota" and stub.count(GAODE) == sent  # refused before any request
    assert quota_used(redis, "gaode") == 3 and redis.ttl(quota_key("gaode")) > 24 * 3600
    geocode_online(limited, "baidu", "芙蓉区五一大道1号", redis=redis)  # each provider has its own quota


def test_local_rate_limit_token_bucket(stub, conf):
    slow = replace(conf, geocoder_tianditu_qps=1.0)
    geocode_online(slow, "tianditu", "芙蓉区五一大道1号", max_wait_s=0)
    sent = stub.count(TIANDITU)
    with pytest.raises(ProviderError) as err:
        geocode_online(slow, "tianditu", "芙蓉区五一大道2号", max_wait_s=0)
    assert err.value.kind == "transient" and "限流" in err.value.message and stub.count(TIANDITU) == sent
    waited = []
    geocode_online(slow, "tianditu", "芙蓉区五一大道3号", max_wait_s=2.0, sleep=waited.append)
    assert waited and 0 < waited[0] <= 2.0  # waits for the next token instead of failing


def test_settings_validation():
    base = Settings.from_env()
    with pytest.raises(SettingsError):
        replace(base, geocoder_baidu_url="ftp://x")
    with pytest.raises(SettingsError):
        replace(base, geocoder_chain=("gazetteer", "google"))
    with pytest.raises(SettingsError):
        replace(base, geocoder_min_confidence=1.5)
    env = {"GM_SECRET_KEY": "k" * 40, "GM_GEOCODER_CHAIN": "gazetteer,tianditu", "GM_GEOCODER_TIANDITU_KEY": " tk ",
           "GM_GEOCODER_TIANDITU_QPS": "2.5", "GM_GEOCODER_TIANDITU_DAILY_QUOTA": "7", "GM_BAIDU_AK": "ak1",
           "GM_GEOCODER_GAODE_URL": "http://127.0.0.1:1/geo"}
    s = Settings.from_env(env)
    assert s.geocoder_chain == ("gazetteer", "tianditu") and s.geocoder_tianditu_key == "tk"
    assert (s.geocoder_tianditu_qps, s.geocoder_tianditu_daily_quota) == (2.5, 7)
    assert s.geocoder_baidu_key == "ak1"  # falls back to the place-search key
    assert s.geocoder_gaode_url == "http://127.0.0.1:1/geo" and "tk" not in repr(s)
    with pytest.raises(SettingsError):
        Settings.from_env({**env, "GM_GEOCODER_BAIDU_DAILY_QUOTA": "many"})


# -- the chain (needs the database: gazetteer, city boundary) ------------------------------------------------------

def test_confident_gazetteer_answer_skips_online_providers(stub, conf, db_session):
    outcome = Geocoder(conf).geocode(db_session, "长沙市芙蓉区")  # district only: low confidence
    assert outcome.providers["gazetteer"] == "ok" and outcome.providers["baidu"] == "ok"
    assert outcome.best.provider == "baidu" and outcome.best.level == "exact_address"
    assert outcome.providers["gaode"] == "skipped" and stub.count(GAODE) == 0
    assert [c.provider for c in outcome.candidates] == ["baidu", "gazetteer"]
    offline = Geocoder(conf, online=False).geocode(db_session, "长沙市芙蓉区")
    assert offline.best.provider == "gazetteer" and offline.best.level == "district"
    assert offline.providers["baidu"] == "skipped"


def test_fatal_error_stops_the_provider_for_the_run(stub, conf, db_session):
    geocoder = Geocoder(replace(conf, geocoder_baidu_key="wrong"), retries=2, backoff_s=0)
    first = geocoder.geocode(db_session, "长沙市芙蓉区某处")
    assert first.providers["baidu"].startswith("fatal") and first.best.provider == "gaode"
    sent = stub.count(BAIDU)
    second = geocoder.geocode(db_session, "长沙市芙蓉区别处")
    assert second.providers["baidu"].startswith("stopped") and stub.count(BAIDU) == sent
    assert geocoder.stopped.keys() == {"baidu"}


def test_transient_errors_are_retried_with_backoff(stub, conf, db_session):
    sleeps: list[float] = []
    stub.fail_next = 2
    outcome = Geocoder(conf, retries=2, backoff_s=0.1, sleep=sleeps.append,
                       providers=["gazetteer", "baidu"]).geocode(db_session, "长沙市芙蓉区某处")
    assert outcome.best.provider == "baidu" and stub.count(BAIDU) == 3
    assert sleeps == [0.1, 0.2]
    stub.fail_next = 5
    gave_up = Geocoder(conf, retries=1, backoff_s=0, sleep=sleeps.append,
                       providers=["gazetteer", "baidu"]).geocode(db_session, "长沙市芙蓉区某处")
    assert gave_up.providers["baidu"].startswith("error") and gave_up.best.provider == "gazetteer"


def test_answers_outside_the_city_are_discarded(stub, conf, db_session):
    outcome = Geocoder(conf, providers=["gazetteer", "gaode"]).geocode(db_session, "北京天安门")
    assert outcome.providers["gaode"] == "outside_city"
    assert outcome.best.level == "none" and outcome.best.lon is None


def test_answer_outside_the_named_district_loses_confidence(stub, conf, db_session):
    inside = Geocoder(conf, providers=["gaode"]).geocode(db_session, "芙蓉区五一大道1号").best
    stub.point = (112.90, 28.20)  # 岳麓区, west of the river
    outside = Geocoder(conf, providers=["gaode"]).geocode(db_session, "芙蓉区五一大道1号").best
    assert outside.confidence == pytest.approx(inside.confidence / 2, abs=0.01)
    assert outside.detail["outside_district"] == "芙蓉区"
