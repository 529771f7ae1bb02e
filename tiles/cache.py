"""Redis cache of vector tiles and per-scope layer metadata.

A cached tile's key is

    gm:tiles:<database>:<layer>:<generation>.<fingerprint>.<spec digest>:<scope>:<crs>:<z>/<x>/<y>

- **scope**: a hash of what row-level security reads for the caller (`all`, or his org patterns, user id and org
  id); two users share cached tiles only when they are guaranteed to see the same rows. POIs (no RLS) share one.
- **generation**: a per-layer counter; `bump(layer)` increments it and so retires every cached
  tile of the layer at once (geo_core.tile_generations). Committed API writes call it (tiles' teardown hook,
  `WRITE_PATHS`), and so do background jobs that write layer rows (`job_session(..., retires=...)`).
- **fingerprint**: a cheap change detector computed over the caller's visible rows (`LayerSpec.fingerprint`: row
  count and max(updated_at), plus sum(version) for grids, whose trigger bumps `version` on every update), cached
  per layer and scope for `version_ttl_s` seconds. So any committed insert, update or delete shows in tiles within
  that many seconds even when the writer does not call `bump`.
- **spec digest**: a hash of the layer's `LayerSpec`, so a deploy that changes fields, zooms or clustering never
  serves tiles built by the old spec;
- every tile entry also expires after `cache_ttl_s`, bounding memory and any missed invalidation.

An empty tile is cached as an empty value (served as 204). Redis being down costs speed, never correctness: every
operation here degrades to "not cached".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from redis import Redis, RedisError

from geo_core import tile_generations
from geo_core.db import DbContext
from tiles.layers import LayerSpec

log = logging.getLogger("gridmarket.tiles")
PREFIX = tile_generations.PREFIX


def scope_key(ctx: DbContext, scoped: bool = True) -> str:
    """Who-sees-what, as a short hash: equal keys see equal rows under every RLS policy of our layers."""
    if not scoped:
        return "public"
    if ctx.scope_all:
        return "all"
    raw = f"{','.join(sorted(ctx.lqueries))}|u{ctx.user_id}|o{ctx.org_id}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _key(namespace: str, *parts: object) -> str:
    return ":".join((PREFIX, namespace, *(str(p) for p in parts)))


# Writes through these API paths change these layers: their cached tiles are retired after the commit.
# (Background jobs retire theirs with jobs.queues.job_session(..., retires=(layer, ...)) after committing.)
WRITE_PATHS = {
    "/api/v1/grids": ("grids",),
    "/api/v1/customers": ("customers",),
    "/api/v1/customer-imports": ("customers",),
    "/api/v1/pois": ("pois",),
    "/api/v1/orgs": ("outlets",),
}


def layers_written(method: str, path: str) -> set[str]:
    if method in ("GET", "HEAD", "OPTIONS"):
        return set()
    return {layer for prefix, layers in WRITE_PATHS.items() if path.startswith(prefix) for layer in layers}


def bump(layer: str, *, redis: Redis | None = None, namespace: str | None = None) -> int:
    """Retire every cached tile of `layer` (call after committing a write that changes it); returns the generation.

    Inside a request or app context `redis` and `namespace` default to the app's Redis and database name.
    """
    if redis is None or namespace is None:
        from api.extensions import state

        app_state = state()
        redis = redis if redis is not None else app_state.redis
        namespace = namespace if namespace is not None else app_state.settings.database_name
    return tile_generations.bump(redis, namespace, layer)


class TileCache:
    def __init__(self, redis: Redis, namespace: str, *, enabled: bool = True, ttl_s: int = 3600,
                 version_ttl_s: int = 10, stats_ttl_s: int = 300) -> None:
        self.redis = redis
        self.namespace = namespace
        self.enabled = enabled
        self.ttl_s = ttl_s
        self.version_ttl_s = version_ttl_s
        self.stats_ttl_s = stats_ttl_s

    def _safe(self, action: Callable[[], Any], default: Any = None) -> Any:
        try:
            return action()
        except RedisError as exc:
            log.warning("tile cache unavailable: %s", exc)
            return default

    def version(self, layer: str, scope: str, fingerprint: Callable[[], str]) -> str:
        """`<generation>.<fingerprint>` of a layer as seen by one scope."""
        gen = self._safe(lambda: self.redis.get(tile_generations.generation_key(self.namespace, layer)))
        generation = gen.decode() if gen else "0"
        if self.version_ttl_s <= 0:
            return generation
        fp_key = _key(self.namespace, "fp", layer, scope)
        cached = self._safe(lambda: self.redis.get(fp_key))
        if cached:
            return f"{generation}.{cached.decode()}"
        value = hashlib.sha1(fingerprint().encode()).hexdigest()[:12]
        self._safe(lambda: self.redis.set(fp_key, value, ex=self.version_ttl_s))
        return f"{generation}.{value}"

    def tile_key(self, spec: LayerSpec, version: str, scope: str, crs: str, z: int, x: int, y: int) -> str:
        """The key of one tile; it includes a digest of the layer's spec, so a changed spec never serves old tiles."""
        digest = hashlib.sha1(repr(spec).encode()).hexdigest()[:8]
        return _key(self.namespace, spec.name, f"{version}.{digest}", scope, crs, f"{z}/{x}/{y}")

    def derived_key(self, spec: LayerSpec, version: str, scope: str, kind: str, *parts: object) -> str:
        """Key of a product derived from a layer (heatmap, aggregate), retired with the layer's tiles."""
        digest = hashlib.sha1(repr(spec).encode()).hexdigest()[:8]
        return _key(self.namespace, spec.name, f"{version}.{digest}", scope, kind, *parts)

    def get(self, key: str) -> bytes | None:
        if not self.enabled:
            return None
        return self._safe(lambda: self.redis.get(key))

    def put(self, key: str, data: bytes) -> None:
        if self.enabled:
            self._safe(lambda: self.redis.set(key, data, ex=self.ttl_s))

    def stats(self, layer: str, scope: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Extent / time span / count of a layer for one scope, cached for stats_ttl_s."""
        import json

        key = _key(self.namespace, "stats", layer, scope)
        cached = self._safe(lambda: self.redis.get(key)) if self.stats_ttl_s > 0 else None
        if cached:
            return json.loads(cached)
        value = compute()
        if self.stats_ttl_s > 0:
            self._safe(lambda: self.redis.set(key, json.dumps(value), ex=self.stats_ttl_s))
        return value
