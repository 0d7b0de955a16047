"""Run many independent jobs through a ``concurrent.futures.Executor``.

Event generation in chunks, toys, scan points and surrogate labels all go through :func:`map_jobs`:
local processes by default, a ``dask.distributed`` client's executor when one is given, or plainly
in this process with ``n_workers=1`` (no pool, easiest to debug).  Results come back in the order
of the jobs whatever the executor, so a job that carries its own seed gives identical results
however it is distributed.

>>> from sbihep.parallel import map_jobs
>>> map_jobs(pow, [(2, 3), (3, 2)], n_workers=1, progress=False)
[8, 9]
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, Callable, Iterable, Sequence

from sbihep.errors import InvalidInputError

__all__ = ["map_jobs", "default_workers"]


def default_workers() -> int:
    """Worker processes used by default: the CPUs this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _call(fn: Callable, args: tuple) -> Any:
    return fn(*args)


def map_jobs(
    fn: Callable[..., Any],
    jobs: Iterable[tuple | Any],
    *,
    n_workers: int | None = None,
    executor: Executor | None = None,
    client: Any = None,
    progress: bool = True,
    desc: str = "jobs",
) -> list[Any]:
    """Apply ``fn(*job)`` to every job and return the results in job order.

    Args:
        fn: a picklable (module-level) function.
        jobs: argument tuples (a non-tuple job is passed as the single argument).
        n_workers: local worker processes (default :func:`default_workers`); 1 runs in this process.
        executor: any ``concurrent.futures.Executor`` to use instead of a local pool.
        client: a ``dask.distributed.Client``; its ``get_executor()`` is used.
        progress: show a tqdm progress bar.
        desc: label of the progress bar.
    Raises:
        InvalidInputError: both ``executor`` and ``client`` given, or ``n_workers`` < 1.
        Whatever a job raises is re-raised here (the first failure in job order).
    """
    from sbihep._progress import tqdm

    job_args: Sequence[tuple] = [job if isinstance(job, tuple) else (job,) for job in jobs]
    if executor is not None and client is not None:
        raise InvalidInputError("map_jobs: give either executor or client, not both")
    if client is not None:
        executor = client.get_executor()
    if n_workers is not None and (int(n_workers) != n_workers or n_workers < 1):
        raise InvalidInputError(f"map_jobs: n_workers must be a positive integer, got {n_workers!r}")
    bar = tqdm(total=len(job_args), desc=desc, disable=not progress, leave=False)
    try:
        in_process = executor is None and (len(job_args) <= 1 or (n_workers or default_workers()) == 1)
        if in_process:
            results = []
            for args in job_args:
                results.append(fn(*args))
                bar.update(1)
            return results
        own_pool = executor is None
        if own_pool:
            # spawn, not fork: forking after torch/OpenMP started threads can deadlock.
            executor = ProcessPoolExecutor(
                max_workers=min(n_workers or default_workers(), len(job_args)),
                mp_context=multiprocessing.get_context("spawn"),
            )
        try:
            futures = [executor.submit(_call, fn, args) for args in job_args]
            for future in futures:
                future.add_done_callback(lambda _: bar.update(1))
            return [future.result() for future in futures]
        finally:
            if own_pool:
                executor.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
