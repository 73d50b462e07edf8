"""KDSM's fit and scoring time against scikit-learn's exact brute-force 5-NN query (issue 17, target 1's yardstick).

On ``--n-train`` x ``--n-features`` Gaussian training rows and ``--n-test`` rows
to score, one thread, in one process: the 5-NN self-query
(``NearestNeighbors(5, algorithm="brute").kneighbors(X_train, 6)``) and
query (``kneighbors(X_test)``), then ``KDSM(**params).fit(X_train)`` and its
``decision_function(X_test)``, each repeated ``--repeats`` times; prints the
medians and the ratios fit / self-query and score / query, and the p99 of a
single-row ``decision_function``.  The budget of issue 17 for a deep member
of DEFAULT: fit <= 30x, scoring <= 3x.

    PYTHONPATH=src DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/kdsm_cost.py \
        --params '{"width": 128, "n_steps": 1000}'
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=40_000)
    parser.add_argument("--n-features", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--params", default="{}", help="KDSM parameters as JSON")
    args = parser.parse_args()

    import torch

    from deepad.detectors import KDSM

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(args.n_train, args.n_features))
    X_test = rng.normal(size=(args.n_test, args.n_features))
    params = {"random_state": 0, "n_threads": 1, **json.loads(args.params)}
    with threadpool_limits(1):
        knn = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(X_train)
        self_query = _median_time(lambda: knn.kneighbors(X_train, 6), args.repeats)
        query = _median_time(lambda: knn.kneighbors(X_test), args.repeats)
        fitted = []
        fit = _median_time(lambda: fitted.append(KDSM(**params).fit(X_train)), args.repeats)
        det = fitted[-1]
        score = _median_time(lambda: det.decision_function(X_test), args.repeats)
        one = X_test[:1]
        det.decision_function(one)
        singles = []
        for i in range(200):
            row = X_test[i : i + 1]
            start = time.perf_counter()
            det.decision_function(row)
            singles.append(time.perf_counter() - start)
    print(f"KDSM {json.dumps(params, sort_keys=True)}; {args.n_train} x {args.n_features} train, {args.n_test} test")
    print(f"5-NN self-query {self_query:.3f} s, 5-NN query {query:.3f} s (medians of {args.repeats})")
    print(f"KDSM fit {fit:.3f} s = {fit / self_query:.1f}x the self-query ({det.n_epochs_} epochs)")
    print(f"KDSM decision_function {score:.3f} s = {score / query:.2f}x the query")
    print(f"KDSM single-row decision_function p99 {1000 * np.percentile(singles, 99):.2f} ms")


if __name__ == "__main__":
    main()
