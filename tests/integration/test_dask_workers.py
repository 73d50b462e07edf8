"""The local cluster `deepad score --engine dask` starts runs its workers without the Dask profiler (issue 18)."""

from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

from deepad.distributed import WORKER_CONFIG, _local_cluster  # noqa: E402


def _worker_settings(dask_worker):
    import dask

    return {
        "config": {key: dask.config.get(key) for key in WORKER_CONFIG},
        "profiling": "profile" in dask_worker.periodic_callbacks,
        "threads": dask_worker.state.nthreads,
    }


def test_local_cluster_workers_run_without_the_profiler():
    """The profiler sampled the scoring thread's stack every 10 ms: one worker took 2x the plain-process time."""
    import dask

    with _local_cluster(1) as cluster, distributed.Client(cluster) as client:
        settings = list(client.run(_worker_settings).values())
    assert settings == [{"config": WORKER_CONFIG, "profiling": False, "threads": 1}]
    # the client's own configuration is left as it was
    assert dask.config.get("distributed.worker.profile.enabled") is True
