"""What OpenMP/BLAS threads cost a scoring call when cores are busy (issue 18: why `deepad serve --threads 1`).

Times DEFAULT's (``LocalGlobalEnsemble(deep_weight=0)``, in a TabularDetector on 5,000 rows of the synthetic
card-transaction table) ``decision_function`` on the already-encoded rows, 1 row and 1,000 rows, with BLAS and
OpenMP limited to 1 and to 2 threads (``threadpoolctl``), in one process, side by side, twice.

    python benchmarks/serve_threads.py
    python benchmarks/serve_threads.py --model DIR      # a saved TabularDetector instead
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    import deepad
    from deepad.data.synthetic import make_fraud_frame
    from deepad.detectors.ensemble import LocalGlobalEnsemble
    from deepad.pipeline import TabularDetector

    tmp = tempfile.TemporaryDirectory()
    path = Path(args.model or Path(tmp.name) / "default")
    if not args.model:
        df = make_fraud_frame(5000, seed=1).drop(columns=["is_fraud"])
        TabularDetector(LocalGlobalEnsemble(deep_weight=0), contamination=0.01).fit(df).save(path)
    model = deepad.load(path)
    Z = model.preprocessor.transform(make_fraud_frame(1000, seed=9, start_index=10**6).drop(columns=["is_fraud"]))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'round':>5} {'threads':>7} {'rows':>5} {'median ms':>10}")
    for rnd in (1, 2):
        for t in args.threads:
            with threadpool_limits(t):
                for n in (1, 1000):
                    times = []
                    for _ in range(50 if n == 1 else 5):
                        t0 = time.perf_counter()
                        model.detector_.decision_function(Z[:n])
                        times.append(time.perf_counter() - t0)
                    print(f"{rnd:>5} {t:>7} {n:>5} {1000 * np.median(times):>10.2f}")


if __name__ == "__main__":
    main()
