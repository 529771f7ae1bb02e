"""Start an RQ worker on the GridMarket queues."""

from __future__ import annotations

from redis import Redis
from rq import Worker

from geo_core.config import Settings
from geo_core.logs import configure_logging


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    configure_logging(settings.log_level)
    connection = Redis.from_url(settings.redis_url)
    worker = Worker(list(settings.queue_names), connection=connection)
    return worker.work(burst=burst, with_scheduler=not burst)
