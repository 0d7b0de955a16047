"""map_jobs: order, determinism across executors, errors."""

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sbihep.errors import InvalidInputError
from sbihep.parallel import map_jobs

sys.path.insert(0, str(Path(__file__).parent))
from _parallel_jobs import fail_on_three, seeded_sum  # noqa: E402

JOBS = [(seed, 1000) for seed in range(6)]


def test_same_results_in_process_threads_and_processes():
    serial = map_jobs(seeded_sum, JOBS, n_workers=1, progress=False)
    threaded = map_jobs(seeded_sum, JOBS, executor=ThreadPoolExecutor(3), progress=False)
    processes = map_jobs(seeded_sum, JOBS, n_workers=2, progress=False)
    assert serial == threaded == processes
    assert len(set(serial)) == len(serial)


def test_errors_propagate_and_bad_arguments():
    with pytest.raises(ValueError, match="job 3 failed"):
        map_jobs(fail_on_three, range(5), n_workers=1, progress=False)
    with pytest.raises(InvalidInputError, match="n_workers"):
        map_jobs(seeded_sum, JOBS, n_workers=0, progress=False)
    with pytest.raises(InvalidInputError, match="either"):
        map_jobs(seeded_sum, JOBS, executor=ThreadPoolExecutor(1), client=object(), progress=False)


def test_dask_client_gives_the_same_results():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            on_dask = map_jobs(seeded_sum, JOBS, client=client, progress=False)
    assert on_dask == map_jobs(seeded_sum, JOBS, n_workers=1, progress=False)
