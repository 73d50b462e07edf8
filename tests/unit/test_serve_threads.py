"""`deepad serve`'s compute threads: one per worker by default, applied in every thread that scores."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

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
def test_score_concurrency_is_the_flag_else_the_cores_per_compute_thread(monkeypatch):
    from deepad.serve import server

    monkeypatch.setattr(server, "available_cores", lambda: 8)
    assert server.score_concurrency(None) == 8
    assert server.score_concurrency(None, threads=2) == 4
    assert server.score_concurrency(None, threads=16) == 1  # never 0
    assert server.score_concurrency(3, threads=16) == 3
    with pytest.raises(ValueError, match="--concurrency must be at least 1, got 0"):
        _check_limits(ServeConfig(models=".", concurrency=0))
    assert server._app_kwargs(ServeConfig(models=".", workers=2, threads=2))["concurrency"] == 4
    assert server._app_kwargs(ServeConfig(models=".", workers=2, concurrency=3))["concurrency"] == 3
    assert server._app_kwargs(ServeConfig(models="."))["inline_budget"] == pytest.approx(0.02)
    assert server._app_kwargs(ServeConfig(models=".", inline_ms=0))["inline_budget"] == 0.0
    for bad in (-1, 20_000, True):
        with pytest.raises(ValueError, match="--inline-ms must be between 0 and 10000"):
            _check_limits(ServeConfig(models=".", inline_ms=bad))


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


def test_a_request_runs_on_the_event_loop_once_its_measured_cost_fits_the_budget():
    import asyncio

    from deepad.serve.server import INLINE_MAX_BYTES, ScoringPool

    def work(seconds: float, fail: bool = False):
        end = time.thread_time() + seconds  # CPU, as the pool measures it
        while time.thread_time() < end:
            pass
        if fail:
            raise ValueError("a rejected body")
        return threading.get_ident()

    async def main(pool: ScoringPool) -> dict:
        loop_thread = threading.get_ident()
        out = {}
        out["unmeasured"] = await pool.run(work, 0.002, cost_key="a", size=1000) == loop_thread
        out["measured"] = await pool.run(work, 0.002, cost_key="a", size=1000) == loop_thread
        out["large"] = await pool.run(work, 0.002, cost_key="a", size=40_000) == loop_thread  # ~80 ms expected
        out["huge"] = await pool.run(work, 0.0, cost_key="a", size=INLINE_MAX_BYTES + 1) == loop_thread
        out["no key"] = await pool.run(work, 0.0) == loop_thread
        out["other key"] = await pool.run(work, 0.0, cost_key="b", size=1000) == loop_thread
        before = pool._per_byte["b"]
        with pytest.raises(ValueError, match="rejected"):
            await pool.run(work, 0.0, True, cost_key="b", size=10**6)
        out["failure not measured"] = pool._per_byte["b"] == before
        return out

    out = asyncio.run(main(ScoringPool(2, inline_budget=0.02)))
    assert out == {
        "unmeasured": False,  # no measurement yet: a pool thread
        "measured": True,  # about 2 us per byte x 1,000 bytes, within 20 ms: the event loop
        "large": False,  # the same cost per byte x 40,000 bytes is over the budget: a pool thread
        "huge": False,  # over INLINE_MAX_BYTES: a pool thread, whatever the estimate
        "no key": False,  # not measured (e.g. explanations): always a pool thread
        "other key": False,
        "failure not measured": True,
    }

    async def cold_start(pool: ScoringPool) -> list[bool]:
        loop_thread = threading.get_ident()
        seen = [await pool.run(work, 0.1, cost_key="c", size=1000) == loop_thread]  # a cold call: 100 us per byte
        for _ in range(4):
            seen.append(await pool.run(work, 0.002, cost_key="c", size=1000) == loop_thread)
        return seen

    # the median of the last measurements: the slow first call is outvoted once two fast ones follow it
    assert asyncio.run(cold_start(ScoringPool(2, inline_budget=0.02))) == [False, False, False, True, True]
    off = asyncio.run(main(ScoringPool(2, inline_budget=0.0)))
    assert not off["measured"]  # a zero budget: every request in a pool thread
    with pytest.raises(ValueError, match="inline_budget"):
        ScoringPool(1, inline_budget=-1)


# --------------------------------------------------------------------------- the heap freeze
_FREEZE_SCRIPT = r"""
import gc, json, os, sys
from pathlib import Path
from deepad.detectors import HBOS
from deepad.pipeline import TabularDetector
from deepad.serve.app import _app_from_env
from deepad.serve.server import _ENV_CONFIG
import pandas as pd, numpy as np

root = Path(sys.argv[1])
frame = pd.DataFrame(np.random.default_rng(0).standard_normal((200, 3)), columns=["a", "b", "c"])
TabularDetector(HBOS()).fit(frame).save(root / "m")
os.environ[_ENV_CONFIG] = json.dumps({"models": str(root / "m"), "workers": 2, "insecure": True})
tracked_before = len(gc.get_objects())
app = _app_from_env()  # a worker process's app: the models loaded, then the heap frozen
out = {"before": tracked_before, "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}
registry = app.state.registry
TabularDetector(HBOS(n_bins=7)).fit(frame).save(root / "m")  # a new version on disk
reloaded, current = registry.reload("m")
out.update(reloaded=reloaded, frozen_after=gc.get_freeze_count(), tracked_after=len(gc.get_objects()))
print(json.dumps(out))
"""


def test_a_worker_freezes_its_heap_once_the_models_are_loaded_and_again_after_a_reload(tmp_path):
    """The collector's full passes no longer walk the libraries and models (270-370 ms each with torch loaded)."""
    import json
    import subprocess
    import sys

    import deepad

    src = str(Path(deepad.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(
        [sys.executable, "-c", _FREEZE_SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["frozen"] > got["before"] > 10_000  # the libraries and the model are frozen ...
    assert got["tracked"] < 1_000  # ... and the collector tracks next to nothing
    assert got["reloaded"] is True and got["frozen_after"] > 10_000 and got["tracked_after"] < 1_000
