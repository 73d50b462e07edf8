"""The cost of the service's monitoring (issue 20): requests to an app with ``/metrics`` and the drift window
against the same app with monitoring left out, interleaved in one process, for a 1-row and a 1,000-row JSON body.

    PYTHONPATH=src DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/serve_monitoring_overhead.py

Prints the median time per request of each and the ratio (monitored / plain) over ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from deepad.detectors import PCA
from deepad.pipeline import TabularDetector
from deepad.serve import app as serve_app
from deepad.serve import create_app


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    return pd.DataFrame({"a": a, "b": 2.0 * a + rng.normal(0.0, 0.3, n), "c": rng.gamma(2.0, 3.0, n)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp())
    TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(3000, 0)).save(root / "m")
    monitored = TestClient(create_app(root, reload_interval=0))
    with mock.patch.object(serve_app, "install_monitoring", lambda *a, **k: None):
        plain = TestClient(create_app(root, reload_interval=0))
    for rows in (1, 1000):
        body = json.loads(_table(rows, 1).to_json(orient="records"))
        times: dict[str, list[float]] = {"plain": [], "monitored": []}
        for r in range(args.rounds):
            pair = (("plain", plain), ("monitored", monitored))
            for name, client in pair if r % 2 == 0 else pair[::-1]:  # alternate the order: no position bias
                start = time.perf_counter()
                for _ in range(args.requests if rows == 1 else args.requests // 10):
                    assert client.post("/v1/models/m/score", json=body).status_code == 200
                times[name].append(
                    (time.perf_counter() - start) / (args.requests if rows == 1 else args.requests // 10)
                )
        p, m = statistics.median(times["plain"]), statistics.median(times["monitored"])
        ratios = statistics.median(b / a for a, b in zip(times["plain"], times["monitored"]))
        print(f"{rows:>5} row(s): plain {p * 1e3:.3f} ms, monitored {m * 1e3:.3f} ms, median ratio {ratios:.3f}")
    assert "deepad_rows_scored_total" in monitored.get("/metrics").text
    assert plain.get("/metrics").status_code == 404  # the plain app really has no monitoring
    # the bookkeeping alone, without the HTTP stack around it: what the middleware does per request
    import timeit

    from deepad.serve.monitoring import Monitor

    mon = Monitor(["m"])
    for n in (1, 1000, 100_000):
        s = np.random.default_rng(0).random(n)
        f = s > 0.95

        def once(s=s, f=f):
            mon.observe("m", "v", s, f)
            mon.requests.labels("m", "score", "200").inc()
            mon.latency.labels("m", "score").observe(0.01)

        t = min(timeit.repeat(once, number=2000, repeat=5)) / 2000
        print(f"{n:>7} row(s): bookkeeping {t * 1e6:.1f} us per request")


if __name__ == "__main__":
    main()
