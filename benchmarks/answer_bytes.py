"""The score answer's cost for a 1,000-row request with one id column (issue 18, target 2): ``_answer`` as it is
(the results written from per-column JSON fragments, ``_answer_bytes``) against the dict route it replaces for
unexplained answers (one dict per row, then ``dumps``), in process, one thread, p-values and all.  Prints the
median of ``--repeats`` timed calls of each (taken in turn), in ms (time.perf_counter), and checks the two give
the same bytes.

    PYTHONPATH=src python benchmarks/answer_bytes.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np

from deepad.serve import scoring


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, 1.0, 1500)
    model = SimpleNamespace(threshold_=np.quantile(train, 0.98), p_value_reference=train)
    loaded = SimpleNamespace(name="fraud", version="20240305T031200", model=model, reference=np.sort(train))
    scores = rng.gamma(2.0, 1.0, args.rows)
    ids = {"transaction_id": [f"T{100_000 + i:07d}" for i in range(args.rows)]}

    def answer() -> bytes:
        return scoring._answer(loaded, scores, [], ids, "none", 3, None)

    fragments = scoring._answer_bytes

    def dicts() -> bytes:
        scoring._answer_bytes = lambda *a: None  # the dict route alone
        try:
            return answer()
        finally:
            scoring._answer_bytes = fragments

    assert answer() == dicts(), "the two routes give different bytes"
    routes = {"dict route (before)": dicts, "fragments (_answer)": answer}
    times: dict[str, list[float]] = {name: [] for name in routes}
    for i in range(20 + args.repeats):  # the two in turn, so that a busy machine slows both alike
        for name, fn in routes.items():
            t = time.perf_counter()
            fn()
            if i >= 20:
                times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"{name}: {1e3 * statistics.median(ts):.3f} ms median of {args.repeats} ({args.rows} rows, 1 id column)")


if __name__ == "__main__":
    main()
