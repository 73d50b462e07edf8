"""DEFAULT's speed against scikit-learn's exact brute-force 5-NN query, at 10,000, 100,000 and 1,000,000 rows (issue 17).

Target 1 of issue 17: on Gaussian training rows (30 features) and 40,000 rows
to score, one thread, DEFAULT's ``decision_function`` takes <= 3x and its
``fit`` <= 6x the time of ``NearestNeighbors(5, algorithm="brute")``'s
``kneighbors(X_test)`` and ``kneighbors(X_train, 6)``; one row scored alone
takes <= 5 ms at the 99th percentile.

Everything runs in this one process, on one thread, with the repeats of the
four timed calls interleaved (reference self-query, DEFAULT fit, reference
query, DEFAULT scoring), and the medians are reported, so a busy machine
slows both sides of each ratio alike.

The reference's self-query is O(n^2): past ``--pair-budget`` distance pairs a
call is timed on the first ``q`` query rows only and scaled by (all rows / q)
-- its queries are independent, so its time is linear in their number; the
table says where it did so ("x scaled").  DEFAULT is always timed in full.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/default_speed.py                  # 10k, 100k, 1M (about 10 minutes)
    PYTHONPATH=src python benchmarks/default_speed.py --sizes 10000 --repeats 7
    PYTHONPATH=src python benchmarks/default_speed.py --sizes 10000 --detector-params '{"deep_weight": 0.25}'
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "DEEPAD_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _brute(X_ref: np.ndarray, X_query: np.ndarray, k: int, pair_budget: float) -> tuple[float, int]:
    """Seconds of ``NearestNeighbors(5, brute)`` fit + ``kneighbors(X_query, k)``, scaled from a prefix if needed."""
    from sklearn.neighbors import NearestNeighbors

    q = X_query.shape[0]
    if q * X_ref.shape[0] > pair_budget:
        q = max(256, int(pair_budget // X_ref.shape[0]) // 256 * 256)
    sub = X_query[:q]
    seconds = _timed(lambda: NearestNeighbors(n_neighbors=5, algorithm="brute").fit(X_ref).kneighbors(sub, k))
    return seconds * X_query.shape[0] / q, q


def _single_rows(model, X: np.ndarray, n_calls: int) -> tuple[float, float, float]:
    """p50 and p99 wall milliseconds of ``decision_function`` on one row, and p99 of the thread's CPU time."""
    for i in range(20):  # warm-up
        model.decision_function(X[i : i + 1])
    wall, cpu = np.empty(n_calls), np.empty(n_calls)
    for i in range(n_calls):
        row = X[i % len(X) : i % len(X) + 1]
        c0, t0 = time.thread_time(), time.perf_counter()
        model.decision_function(row)
        wall[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
    return 1e3 * np.median(wall), 1e3 * np.percentile(wall, 99), 1e3 * np.percentile(cpu, 99)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="training rows (default: %(default)s)")
    ap.add_argument("--repeats", default="5,3,1", help="interleaved repeats per size, one or one per size")
    ap.add_argument("--n-test", type=int, default=40_000, help="rows scored (default: %(default)s)")
    ap.add_argument("--features", type=int, default=30, help="features (default: %(default)s)")
    ap.add_argument("--pair-budget", type=float, default=2e9, help="most reference distance pairs timed in full")
    ap.add_argument("--single-calls", type=int, default=1000, help="one-row decision_function calls")
    ap.add_argument("--detector-params", default="{}", help='JSON parameters of DEFAULT, e.g. {"deep_weight": 0.25}')
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import deepad
    from deepad.detectors import DEFAULT

    sizes = [int(s) for s in args.sizes.split(",")]
    repeats = [int(r) for r in args.repeats.split(",")]
    repeats = (repeats + [repeats[-1]] * len(sizes))[: len(sizes)]
    params = json.loads(args.detector_params)
    print(
        f"deepad {deepad.__version__}, DEFAULT = {DEFAULT.__name__}({params or ''}), one thread, "
        f"{args.features} Gaussian features, {args.n_test:,} rows scored; medians of interleaved repeats"
    )
    header = (
        f"{'train rows':>10} {'rep':>3} | {'DEFAULT fit':>11} {'5-NN self':>11} {'ratio':>6} | "
        f"{'DEFAULT score':>13} {'5-NN query':>11} {'ratio':>6} | {'1 row p50':>9} {'p99':>6} {'p99 cpu':>7} ms"
    )
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    X_test = rng.normal(size=(args.n_test, args.features))
    notes = []
    with threadpool_limits(1):
        for n, reps in zip(sizes, repeats):
            X_train = rng.normal(size=(n, args.features))
            t = {"fit": [], "self": [], "score": [], "query": []}
            model = None
            for _ in range(reps):
                s, q_self = _brute(X_train, X_train, 6, args.pair_budget)
                t["self"].append(s)
                model = DEFAULT(**params)
                t["fit"].append(_timed(lambda: model.fit(X_train)))
                s, q_test = _brute(X_train, X_test, 5, args.pair_budget)
                t["query"].append(s)
                t["score"].append(_timed(lambda: model.decision_function(X_test)))
            med = {k: float(np.median(v)) for k, v in t.items()}
            p50, p99, p99_cpu = _single_rows(model, X_test, args.single_calls)
            self_s = f"{med['self']:9.2f}s" + ("*" if q_self < n else " ")
            query_s = f"{med['query']:9.2f}s" + ("*" if q_test < args.n_test else " ")
            print(
                f"{n:>10,} {reps:>3} | {med['fit']:10.2f}s {self_s:>11} {med['fit'] / med['self']:5.2f}x | "
                f"{med['score']:12.2f}s {query_s:>11} {med['score'] / med['query']:5.2f}x | "
                f"{p50:9.2f} {p99:6.2f} {p99_cpu:7.2f}",
                flush=True,
            )
            ref = getattr(model, "n_reference_", n)
            if ref < n:
                notes.append(f"{n:,} rows: DEFAULT's kNN reference set is a random {ref:,} of them (max_reference).")
            for what, q, total in (("self-query", q_self, n), ("query", q_test, args.n_test)):
                if q < total:
                    notes.append(
                        f"{n:,} rows: * the 5-NN {what} was timed on {q:,} of its {total:,} query rows and "
                        f"scaled by {total / q:,.1f} (queries are independent: time is linear in their number)."
                    )
    for note in notes:
        print("note:", note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
