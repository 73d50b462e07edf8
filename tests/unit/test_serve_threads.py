"""`deepad serve`'s compute threads: one per worker by default, applied in every thread that scores."""

from __future__ import annotations

import os
import threading

import pytest

pytest.importorskip("fastapi")

from deepad.serve.server import ServeConfig, ThreadLimiter, _check_limits, compute_threads  # noqa: E402


def test_compute_threads_default_is_one_and_follows_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv("DEEPAD_NUM_THREADS", raising=False)
    assert compute_threads(None) == 1
    monkeypatch.setenv("DEEPAD_NUM_THREADS", "3")
    assert compute_threads(None) == 3
    assert compute_threads(2) == 2
    with pytest.raises(ValueError, match="--threads must be at least 1"):
        _check_limits(ServeConfig(models=".", threads=0))


def test_the_limit_reaches_a_pool_thread_where_a_main_thread_limit_does_not():
    """OpenMP's thread count is per thread: the limiter is applied in the thread that scores."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_limits

    seen = {}
    limiter = ThreadLimiter(1)

    def scoring_thread():
        seen["before"] = _openmp_effective_n_threads()
        limiter.ensure()
        seen["after"] = _openmp_effective_n_threads()
        limiter.ensure()  # once per thread: a second call changes nothing
        seen["again"] = _openmp_effective_n_threads()

    with threadpool_limits(1):  # in the main thread only
        t = threading.Thread(target=scoring_thread)
        t.start()
        t.join()
    assert seen["after"] == seen["again"] == 1
    if (os.cpu_count() or 1) > 1 and "OMP_NUM_THREADS" not in os.environ:
        assert seen["before"] > 1  # what every pool thread used before this release
