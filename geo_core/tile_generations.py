"""Per-layer tile generations in Redis: bumping a layer's generation retires every cached tile, heatmap and
aggregate of that layer at once (tiles.cache puts the generation into each key).

Lives in geo_core so that every writer can call it after committing - API requests (tiles' teardown hook) and
background jobs (jobs.queues.job_session(..., retires=...)) - without depending on the tile server package.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis import Redis, RedisError

PREFIX = "gm:tiles"
log = logging.getLogger("gridmarket.tiles")


def generation_key(namespace: str, layer: str) -> str:
    return f"{PREFIX}:{namespace}:gen:{layer}"


def bump(redis: Redis, namespace: str, layer: str) -> int:
    """Retire every cached entry of `layer`; returns the new generation."""
    return int(redis.incr(generation_key(namespace, layer)))


def retire(redis: Redis, namespace: str, layers: Iterable[str]) -> None:
    """After a committed write: bump each layer; a Redis outage is logged, never raised (the per-scope change
    detector of tiles.cache still catches the write within GM_TILES_VERSION_TTL)."""
    for layer in layers:
        try:
            bump(redis, namespace, layer)
        except RedisError:
            log.warning("could not bump tile generation of %s", layer)
