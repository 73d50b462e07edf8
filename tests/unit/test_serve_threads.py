"""`deepad serve`'s compute threads: one per worker by default, applied in every thread that scores."""

from __future__ import annotations

import os
import threading
import time

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


# --------------------------------------------------------------------------- scoring concurrency
def test_score_concurrency_is_the_flag_else_the_process_share_of_the_cores(monkeypatch):
    from deepad.serve import server

    monkeypatch.setattr(server, "available_cores", lambda: 8)
    assert server.score_concurrency(None) == 8
    assert server.score_concurrency(None, workers=2) == 4
    assert server.score_concurrency(None, workers=2, threads=2) == 2
    assert server.score_concurrency(None, workers=16) == 1  # never 0
    assert server.score_concurrency(3, workers=16) == 3
    with pytest.raises(ValueError, match="--concurrency must be at least 1, got 0"):
        _check_limits(ServeConfig(models=".", concurrency=0))
    assert server._app_kwargs(ServeConfig(models=".", workers=2, threads=1))["concurrency"] == 4


def test_the_pool_scores_at_most_concurrency_requests_at_once_and_applies_the_thread_limit():
    import asyncio

    from deepad.serve.server import ScoringPool

    def busiest(concurrency: int, requests: int = 6) -> tuple[int, list]:
        active, peak, lock, results = [0], [0], threading.Lock(), []

        def work(i):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1
            return i * i

        pool = ScoringPool(concurrency, ThreadLimiter(1))

        async def main():
            return await asyncio.gather(*(pool.run(work, i) for i in range(requests)))

        results = asyncio.run(main())
        return peak[0], results

    peak, results = busiest(1)
    assert peak == 1 and results == [i * i for i in range(6)]  # every request answered, in its own slot
    peak, _ = busiest(3)
    assert peak == 3
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        ScoringPool(0)
