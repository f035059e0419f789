"""Ray runner: the same jobs on an existing Ray cluster (``pip install fkdverify[ray]``).
Model files and the dataset must be readable at the same paths on every node."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..errors import InputError
from ..pool import Failure
from .jobs import Job, failed_rows


def _job(tasks, data_dir):
    import torch

    from .execute import run_job

    torch.set_num_threads(1)
    return run_job(tasks, data_dir)


def run_ray(jobs: list[Job], address: str, data_dir: str | None,
            on_rows: Callable[[Job, list], None], retries: int = 2) -> None:  # fmt: skip
    """Run ``jobs`` as Ray tasks (one CPU each); at most one job per cluster CPU is in flight so
    that a job's hard limit counts from about when it starts."""
    try:
        import ray
        from ray.exceptions import RayError
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'fkdverify[ray]'") from None
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise InputError(f"cannot connect to the Ray cluster at {address}: {e}") from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=retries)(_job)
        cap = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending, inflight = deque(jobs), {}
        while pending or inflight:
            while pending and len(inflight) < cap:
                job = pending.popleft()
                inflight[remote.remote(job.tasks, data_dir)] = (job, time.monotonic())
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                job, _ = inflight.pop(ref)
                try:
                    rows = ray.get(ref)
                except RayError as e:
                    rows = failed_rows(job, Failure("died", type(e).__name__, retries + 1))
                on_rows(job, rows)
            now = time.monotonic()
            for ref, (job, started) in list(inflight.items()):
                if now - started > job.limit:
                    ray.cancel(ref, force=True)
                    del inflight[ref]
                    on_rows(job, failed_rows(job, Failure("overdue", limit=job.limit)))
    finally:
        ray.shutdown()
