"""Feature and tile server: OGC API - Features (/ogc) and Mapbox Vector Tiles with TileJSON (/tiles).

Every layer is one `LayerSpec` in `tiles.layers`; SQL lives in `tiles.sql`; the blueprints are `tiles.features` and
`tiles.vector_tiles`; `tiles.cache` holds the Redis tile cache. Data scope is PostgreSQL row-level security: every
query runs on the request's session (`api.extensions.db()`), whose transaction carries the caller's scope.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from tiles.layers import LayerSpec, get_layer

COUNT_MODES = ("auto", "exact", "none")


class TilesSettingsError(ValueError):
    """Raised at start-up when a GM_OGC_* / GM_TILES_* setting is impossible."""


def _int(env: dict[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise TilesSettingsError(f"{key} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise TilesSettingsError(f"{key} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class TilesSettings:
    """Feature/tile server settings (env GM_OGC_*, GM_TILES_*); see docs/TILES.md."""

    limit_default: int = 10
    limit_max: int = 10_000
    # numberMatched: "auto" = exact COUNT(*) when EXPLAIN estimates <= count_threshold rows, else omitted
    # (with numberMatchedEstimate); "exact" = always COUNT(*); "none" = only when the page itself proves it
    count_mode: str = "auto"
    count_threshold: int = 100_000
    byte_budget: int = 500_000
    cache_enabled: bool = True
    cache_ttl_s: int = 3600  # a cached tile lives at most this long, whatever the version says
    version_ttl_s: int = 10  # how long a layer's data fingerprint (per scope) is trusted; 0 = never fingerprint
    stats_ttl_s: int = 300  # extents shown in collections / TileJSON (per scope)
    max_age_s: int = 60  # Cache-Control max-age of tiles (private: they depend on the caller's scope)
    # every statement of a /ogc, /tiles, /heatmaps or /aggregates request is cancelled after this many ms
    # (SET LOCAL statement_timeout); a cancelled request answers 503 with Retry-After. 0 = no limit.
    statement_timeout_ms: int = 15_000
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.count_mode not in COUNT_MODES:
            raise TilesSettingsError(f"GM_OGC_COUNT must be one of {', '.join(COUNT_MODES)}")
        if not 1 <= self.limit_default <= self.limit_max:
            raise TilesSettingsError("GM_OGC_LIMIT_DEFAULT must be between 1 and GM_OGC_LIMIT_MAX")
        if self.byte_budget < 10_000:
            raise TilesSettingsError("GM_TILES_BYTE_BUDGET must be at least 10000 bytes")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TilesSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            limit_default=_int(env, "GM_OGC_LIMIT_DEFAULT", 10, 1),
            limit_max=_int(env, "GM_OGC_LIMIT_MAX", 10_000, 1),
            count_mode=env.get("GM_OGC_COUNT", "auto") or "auto",
            count_threshold=_int(env, "GM_OGC_COUNT_THRESHOLD", 100_000, 0),
            byte_budget=_int(env, "GM_TILES_BYTE_BUDGET", 500_000, 1),
            cache_enabled=env.get("GM_TILES_CACHE", "1") not in ("0", "false", "no", "off"),
            cache_ttl_s=_int(env, "GM_TILES_CACHE_TTL", 3600, 1),
            version_ttl_s=_int(env, "GM_TILES_VERSION_TTL", 10, 0),
            stats_ttl_s=_int(env, "GM_TILES_STATS_TTL", 300, 0),
            max_age_s=_int(env, "GM_TILES_MAX_AGE", 60, 0),
            statement_timeout_ms=_int(env, "GM_TILES_STATEMENT_TIMEOUT_MS", 15_000, 0),
            retry_after_s=_int(env, "GM_TILES_RETRY_AFTER", 5, 1),
        )


EXTENSION_KEY = "gridmarket_tiles"


def tiles_settings() -> TilesSettings:
    return current_app.extensions[EXTENSION_KEY]


# --- helpers shared by the /ogc and /tiles blueprints ----------------------------------------------------------------

def layer_for(name: str) -> LayerSpec:
    """The layer, once the caller is known (401) and holds its permission (403); 404 for unknown names."""
    from api.extensions import principal
    from geo_core.errors import NotFound, PermissionDenied

    user = principal()
    spec = get_layer(name)
    if spec is None:
        raise NotFound("图层不存在", code="COLLECTION_NOT_FOUND")
    if not user.has(spec.permission):
        raise PermissionDenied(f"缺少权限：{spec.permission}", code="PERMISSION_DENIED",
                               detail={"missing": [spec.permission]})
    return spec


def tile_cache() -> Any:
    """The TileCache over the app's Redis, namespaced by database name (cheap to build: no I/O)."""
    from api.extensions import state
    from tiles.cache import TileCache

    conf, st = tiles_settings(), state()
    return TileCache(st.redis, st.settings.database_name, enabled=conf.cache_enabled, ttl_s=conf.cache_ttl_s,
                     version_ttl_s=conf.version_ttl_s, stats_ttl_s=conf.stats_ttl_s)


def bytes_response(data: bytes, mimetype: str, cache_status: str, extra_headers: dict[str, str] | None = None) -> Any:
    """A tile-like answer (MVT or cached JSON bytes): private caching per token, `X-Tile-Cache` hit/miss/off, an ETag
    of the bytes with 304 for `If-None-Match`, and 204 for no bytes."""
    from flask import Response, request

    headers = {"Cache-Control": f"private, max-age={tiles_settings().max_age_s}", "Vary": "Authorization",
               "X-Tile-Cache": cache_status, **(extra_headers or {})}
    if not data:
        return Response(status=204, headers=headers)
    response = Response(data, mimetype=mimetype, headers=headers)
    response.set_etag(hashlib.sha1(data).hexdigest()[:24])
    return response.make_conditional(request)


def request_crs(allowed: tuple[str, ...], hint: str = "") -> str:
    """The request's `crs` (wgs84 | gcj02 | bd09 and their aliases) if it is one of `allowed`; else a 422 on `crs`."""
    from flask import request

    from geo_core.crs import parse_crs
    from geo_core.errors import ValidationFailed

    try:
        crs = parse_crs(request.args.get("crs"))
    except ValueError as exc:
        raise ValidationFailed.on("crs", str(exc)) from exc
    if crs not in allowed:
        raise ValidationFailed.on("crs", f"只支持：{', '.join(allowed)}{hint}")
    return crs


def scope_of(spec: LayerSpec) -> str:
    from api.extensions import current_context
    from tiles.cache import scope_key

    return scope_key(current_context(), spec.scoped)


def layer_stats(spec: LayerSpec) -> dict[str, Any]:
    """Extent, time span and row count of what the caller can see of a layer (cached per scope)."""
    from api.extensions import db
    from tiles import sql

    def compute() -> dict[str, Any]:
        x0, y0, x1, y1, tmin, tmax, n = sql.run(db(), *sql.stats_query(spec))[0]
        return {"bbox": None if x0 is None else [x0, y0, x1, y1],
                "interval": None if tmin is None else [tmin.isoformat(), tmax.isoformat()], "count": n}

    return tile_cache().stats(spec.name, scope_of(spec), compute)


def register(app: Flask, api: Any, settings: TilesSettings | None = None) -> None:
    """Mount /ogc and /tiles on the app (documented in the app's OpenAPI through `api`)."""
    from tiles import aggregates, features, heatmaps, ogc_tiles, timeouts, vector_tiles

    app.extensions[EXTENSION_KEY] = settings or TilesSettings.from_env()
    blueprints = (features.blp, vector_tiles.blp, heatmaps.blp, ogc_tiles.blp, aggregates.blp)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    timeouts.install(app, {b.name for b in blueprints})
    app.teardown_request(_retire_tiles_after_write)


def _retire_tiles_after_write(exc: BaseException | None) -> None:
    """After a committed write to grids/customers/POIs/orgs, bump those layers' tile generation."""
    from flask import g, request

    from tiles.cache import bump, layers_written

    if exc is not None or not g.get("committed"):
        return
    for layer in layers_written(request.method, request.path):
        try:
            bump(layer)
        except Exception:  # noqa: BLE001 - a cache outage must not fail a committed write
            import logging

            logging.getLogger("gridmarket.tiles").warning("could not bump tile generation of %s", layer)
