"""One typed, validated settings object, built once from the environment and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "postgresql://gridmarket:gridmarket@127.0.0.1:5432/gridmarket"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_BAIDU_PLACE_URL = "https://api.map.baidu.com/place/v2/search"
DEFAULT_GAODE_PLACE_URL = "https://restapi.amap.com/v3/place/text"


class SettingsError(ValueError):
    """Raised at start-up when the configuration is impossible."""


def _int(env: dict[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{key} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{key} must be >= {minimum}, got {value}")
    return value


def _float(env: dict[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{key} must be a number, got {raw!r}") from exc


def sqlalchemy_url(url: str) -> str:
    """Normalise a libpq-style URL to the SQLAlchemy psycopg 3 dialect."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@dataclass(frozen=True)
class Settings:
    # Connection used for migrations, seeding and other admin work (table owner).
    database_url: str = DEFAULT_DATABASE_URL
    # Connection used by the web app and workers: a role subject to row-level security.
    app_database_url: str = ""
    app_db_role: str = "gridmarket_app"
    app_db_password: str = "gridmarket_app"
    redis_url: str = DEFAULT_REDIS_URL
    secret_key: str = ""
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 7 * 24 * 3600
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    pbkdf2_iterations: int = 150_000
    # Ping pooled connections before each checkout (one more round trip per request). Off for the web app by
    # default: a connection lost to a database restart fails one request with 503 + Retry-After and SQLAlchemy
    # then recycles the whole pool (docs/OPERATIONS.md).
    db_pre_ping: bool = False
    sso_public_key: str = ""
    sso_issuer: str = "e-satchel"
    sso_audience: str = "gridmarket"
    sso_algorithms: tuple[str, ...] = ("RS256", "ES256")
    trusted_proxies: int = 0
    # 国密 field encryption: SM4 key (32 hex chars) and the blind-index key; kept apart from secret_key so
    # rotating the token signing key never touches stored data
    sm4_key: str = field(default="", repr=False)
    blind_index_key: str = field(default="", repr=False)
    log_level: str = "INFO"
    queue_names: tuple[str, ...] = field(default=("default", "imports"))
    # Keyword place search (地图关键字搜索): a provider without a key is disabled.
    baidu_ak: str = field(default="", repr=False)
    gaode_key: str = field(default="", repr=False)
    baidu_place_url: str = DEFAULT_BAIDU_PLACE_URL
    gaode_place_url: str = DEFAULT_GAODE_PLACE_URL
    place_timeout_s: float = 5.0
    place_rate_per_s: float = 5.0
    # Geocoding (docs/GEOCODING.md): the offline gazetteer first, online providers when its confidence is below
    # the threshold; an online provider without a key is disabled. Keys default to the place-search keys.
    geocoder_chain: tuple[str, ...] = ("gazetteer", "baidu", "gaode", "tianditu")
    geocoder_min_confidence: float = 0.6
    geocoder_timeout_s: float = 5.0
    geocoder_baidu_key: str = field(default="", repr=False)
    geocoder_baidu_url: str = "https://api.map.baidu.com/geocoding/v3/"
    geocoder_baidu_qps: float = 3.0
    geocoder_baidu_daily_quota: int = 5000
    geocoder_gaode_key: str = field(default="", repr=False)
    geocoder_gaode_url: str = "https://restapi.amap.com/v3/geocode/geo"
    geocoder_gaode_qps: float = 3.0
    geocoder_gaode_daily_quota: int = 5000
    geocoder_tianditu_key: str = field(default="", repr=False)
    geocoder_tianditu_url: str = "http://api.tianditu.gov.cn/geocoder"
    geocoder_tianditu_qps: float = 5.0
    geocoder_tianditu_daily_quota: int = 10000

    def __post_init__(self) -> None:
        if not self.app_database_url:
            object.__setattr__(self, "app_database_url", self._derive_app_url())
        if len(self.secret_key) < 32:
            raise SettingsError("GM_SECRET_KEY must be set to at least 32 characters")
        if not self.app_db_role.isidentifier():
            raise SettingsError("GM_APP_DB_ROLE must be a plain SQL identifier")
        if self.sm4_key and (len(self.sm4_key) != 32 or any(c not in "0123456789abcdefABCDEF" for c in self.sm4_key)):
            raise SettingsError("GM_SM4_KEY must be 32 hex characters (a 128-bit SM4 key)")
        if self.blind_index_key and len(self.blind_index_key) < 32:
            raise SettingsError("GM_BLIND_INDEX_KEY must be at least 32 characters")
        if self.lockout_threshold < 1:
            raise SettingsError("GM_LOCKOUT_THRESHOLD must be >= 1")
        for name, url in (("GM_BAIDU_PLACE_URL", self.baidu_place_url), ("GM_GAODE_PLACE_URL", self.gaode_place_url)):
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"{name} must be an http(s) URL")
        if not 0 < self.place_timeout_s <= 60:
            raise SettingsError("GM_PLACE_TIMEOUT must be > 0 and <= 60 seconds")
        if not 0 < self.place_rate_per_s <= 1000:
            raise SettingsError("GM_PLACE_RATE must be > 0 and <= 1000 requests per second")
        if not 0 <= self.geocoder_min_confidence <= 1:
            raise SettingsError("GM_GEOCODER_MIN_CONFIDENCE must be between 0 and 1")
        for provider in ("baidu", "gaode", "tianditu"):
            if not getattr(self, f"geocoder_{provider}_url").startswith(("http://", "https://")):
                raise SettingsError(f"GM_GEOCODER_{provider.upper()}_URL must be an http(s) URL")
            if not 0 < getattr(self, f"geocoder_{provider}_qps") <= 1000:
                raise SettingsError(f"GM_GEOCODER_{provider.upper()}_QPS must be > 0 and <= 1000")
        unknown = set(self.geocoder_chain) - {"gazetteer", "baidu", "gaode", "tianditu"}
        if unknown:
            raise SettingsError(f"GM_GEOCODER_CHAIN: unknown providers {sorted(unknown)}")

    def _derive_app_url(self) -> str:
        url = make_url(sqlalchemy_url(self.database_url))
        url = url.set(username=self.app_db_role, password=self.app_db_password)
        return url.render_as_string(hide_password=False)

    @property
    def sa_database_url(self) -> str:
        return sqlalchemy_url(self.database_url)

    @property
    def sa_app_database_url(self) -> str:
        return sqlalchemy_url(self.app_database_url)

    @property
    def database_name(self) -> str:
        return make_url(self.sa_database_url).database or ""

    def with_database(self, name: str) -> Settings:
        """The same settings pointed at another database on the same server."""
        owner = make_url(self.sa_database_url).set(database=name).render_as_string(hide_password=False)
        app = make_url(self.sa_app_database_url).set(database=name).render_as_string(hide_password=False)
        return replace(self, database_url=owner, app_database_url=app)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        sso_key = env.get("GM_SSO_PUBLIC_KEY", "")
        key_file = env.get("GM_SSO_PUBLIC_KEY_FILE")
        if not sso_key and key_file:
            try:
                sso_key = Path(key_file).read_text()
            except OSError as exc:
                raise SettingsError(f"GM_SSO_PUBLIC_KEY_FILE unreadable: {exc}") from exc
        values: dict[str, object] = dict(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            app_database_url=env.get("GM_APP_DATABASE_URL", ""),
            app_db_role=env.get("GM_APP_DB_ROLE", "gridmarket_app"),
            app_db_password=env.get("GM_APP_DB_PASSWORD", "gridmarket_app"),
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            secret_key=env.get("GM_SECRET_KEY", ""),
            access_token_ttl_s=_int(env, "GM_ACCESS_TOKEN_TTL", 900, 30),
            refresh_token_ttl_s=_int(env, "GM_REFRESH_TOKEN_TTL", 7 * 24 * 3600, 60),
            lockout_threshold=_int(env, "GM_LOCKOUT_THRESHOLD", 5, 1),
            lockout_minutes=_int(env, "GM_LOCKOUT_MINUTES", 15, 1),
            pbkdf2_iterations=_int(env, "GM_PBKDF2_ITERATIONS", 150_000, 1000),
            db_pre_ping=env.get("GM_DB_PRE_PING", "0").strip().lower() in ("1", "true", "yes", "on"),
            sso_public_key=sso_key,
            sso_issuer=env.get("GM_SSO_ISSUER", "e-satchel"),
            sso_audience=env.get("GM_SSO_AUDIENCE", "gridmarket"),
            sso_algorithms=tuple(
                a.strip() for a in env.get("GM_SSO_ALGORITHMS", "RS256,ES256").split(",") if a.strip()
            ),
            trusted_proxies=_int(env, "GM_TRUSTED_PROXIES", 0, 0),
            sm4_key=env.get("GM_SM4_KEY", ""),
            blind_index_key=env.get("GM_BLIND_INDEX_KEY", ""),
            log_level=env.get("GM_LOG_LEVEL", "INFO"),
            baidu_ak=env.get("GM_BAIDU_AK", "").strip(),
            gaode_key=env.get("GM_GAODE_KEY", "").strip(),
            baidu_place_url=env.get("GM_BAIDU_PLACE_URL") or DEFAULT_BAIDU_PLACE_URL,
            gaode_place_url=env.get("GM_GAODE_PLACE_URL") or DEFAULT_GAODE_PLACE_URL,
            place_timeout_s=_float(env, "GM_PLACE_TIMEOUT", 5.0),
            place_rate_per_s=_float(env, "GM_PLACE_RATE", 5.0),
            geocoder_chain=tuple(p.strip() for p in env.get(
                "GM_GEOCODER_CHAIN", "gazetteer,baidu,gaode,tianditu").split(",") if p.strip()),
            geocoder_min_confidence=_float(env, "GM_GEOCODER_MIN_CONFIDENCE", 0.6),
            geocoder_timeout_s=_float(env, "GM_GEOCODER_TIMEOUT", 5.0),
            **{f"geocoder_{p}_{k}": conv(env, f"GM_GEOCODER_{p.upper()}_{k.upper()}", d)
               for p, defaults in (("baidu", (3.0, 5000)), ("gaode", (3.0, 5000)), ("tianditu", (5.0, 10000)))
               for k, conv, d in (("qps", _float, defaults[0]), ("daily_quota", _int, defaults[1]))},
            geocoder_baidu_key=(env.get("GM_GEOCODER_BAIDU_KEY") or env.get("GM_BAIDU_AK", "")).strip(),
            geocoder_gaode_key=(env.get("GM_GEOCODER_GAODE_KEY") or env.get("GM_GAODE_KEY", "")).strip(),
            geocoder_tianditu_key=env.get("GM_GEOCODER_TIANDITU_KEY", "").strip(),
            **{f"geocoder_{p}_url": env[f"GM_GEOCODER_{p.upper()}_URL"] for p in ("baidu", "gaode", "tianditu")
               if env.get(f"GM_GEOCODER_{p.upper()}_URL")},
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
