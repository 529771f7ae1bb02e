"""Customer list import job (queue "imports"): one batch, one transaction, progress and ETA in job.meta.

The import runs in one elevated job session that acts as the importer for its writes and commits only at the
end; 'running' is committed apart so pollers see it. Any failure rolls the import back and marks the batch
failed; a killed worker leaves the batch 'running' with its advisory lock gone, which the status endpoint
turns into 'failed' (geo_core.customers.lists.refresh_liveness). Re-submitting a failed batch runs it again.
"""

from __future__ import annotations

import time
from typing import Any

from rq import get_current_job
from rq.job import Job
from sqlalchemy.exc import IntegrityError

from geo_core.customers import lists
from geo_core.customers.service import Keys
from geo_core.errors import DomainError
from jobs.queues import job_session, log, settings

META_KEYS = ("phase", "done", "total", "eta_s", "rows_per_s")


class ProgressMeter:
    """Writes phase, rows done / total, write rate and ETA into job.meta (at most a few times a second)."""

    def __init__(self, job: Job | None, min_interval_s: float = 0.25) -> None:
        self.job, self.min_interval_s = job, min_interval_s
        self.last = time.monotonic()
        self.write_started: float | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == "write" and self.write_started is None:
            self.write_started = now
        if self.job is None or (now - self.last < self.min_interval_s and phase == "write" and done < total):
            return
        self.last = now
        elapsed = now - self.write_started if self.write_started is not None else 0.0
        rate = done / elapsed if done and elapsed > 0 else None
        eta = round((total - done) / rate, 1) if rate else None
        self.job.meta.update({"phase": phase, "done": done, "total": total, "eta_s": eta,
                              "rows_per_s": round(rate) if rate else None})
        self.job.save_meta()


def import_customer_list(batch_id: int, skip_invalid: bool = False) -> dict[str, Any]:
    """Import a validated batch: matched rows become list entries, the rest new potential customers."""
    job = get_current_job()
    actor_id = job.meta.get("user_id") if job else None
    job_id = job.id if job else None
    keys = Keys.of(settings())
    meter = ProgressMeter(job)

    def mark_running() -> None:
        with job_session(f"customer_import:{batch_id}:start", actor_id=actor_id) as side:
            lists.mark_running(side, batch_id, job_id)

    try:
        with job_session(f"customer_import:{batch_id}", actor_id=actor_id, retires=("customers",)) as session:
            result = lists.import_batch(session, keys, batch_id, skip_invalid=skip_invalid,
                                        on_running=mark_running, on_progress=meter)
    except Exception as exc:
        log.exception("customer import %s failed", batch_id)
        with job_session(f"customer_import:{batch_id}:failed", actor_id=actor_id) as side:
            lists.mark_failed(side, batch_id, failure_message(exc))
        raise
    if result.get("status") == "done":
        meter("done", result["valid_rows"] or 0, result["valid_rows"] or 0)
    else:  # rejected (nothing written) or busy (another job holds the batch)
        meter(str(result.get("status")), 0, result.get("total_rows") or 0)
    log.info("customer import %s: %s", batch_id, result)
    return result


def failure_message(exc: BaseException) -> str:
    """A user-safe reason; nothing was written."""
    if isinstance(exc, DomainError):
        return f"导入失败，未写入任何数据：{exc.message}"
    if isinstance(exc, IntegrityError):
        return "导入失败，未写入任何数据：导入期间已有相同证件号或客户号的客户建档，请重新提交（将自动匹配）"
    return f"导入失败，未写入任何数据（{exc.__class__.__name__}），请联系管理员"
