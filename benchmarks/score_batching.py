"""How much do DEFAULT's scores depend on how rows are batched?  (issue 15, item 9)

Fits DEFAULT on (up to) ``--train`` rows of each ADBench set and scores ``--rows``
test rows three ways: all in one call, in chunks of 64, and one row per call
(what single-record service requests do).  Prints the largest absolute and
relative score difference against the one-call scores and how many
``is_anomaly`` flags differ.

    DEEPAD_NUM_THREADS=1 python benchmarks/score_batching.py ../shared/datasets/adbench --sets 6
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from deepad.detectors import DEFAULT


def measure(path: Path, n_train: int, n_rows: int, seed: int = 0) -> dict:
    data = np.load(path)
    X = data["X"].astype(np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_rows = min(n_rows, len(X) // 2)
    n_train = min(n_train, len(X) - n_rows)
    train, test = X[order[:n_train]], X[order[n_train : n_train + n_rows]]
    model = DEFAULT(random_state=seed).fit(train)
    whole = model.decision_function(test)
    chunks = np.concatenate([model.decision_function(test[i : i + 64]) for i in range(0, len(test), 64)])
    single = np.concatenate([model.decision_function(test[i : i + 1]) for i in range(len(test))])
    out = {"set": path.stem, "features": X.shape[1], "rows": len(test)}
    for name, other in (("chunks64", chunks), ("single", single)):
        diff = np.abs(other - whole)
        out[f"{name}_max_abs"] = float(diff.max())
        out[f"{name}_max_rel"] = float((diff / np.maximum(np.abs(whole), 1e-12)).max())
        out[f"{name}_flags_differ"] = int(((other > model.threshold_) != (whole > model.threshold_)).sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--sets", type=int, default=6, help="how many sets (smallest files first)")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--rows", type=int, default=300)
    args = ap.parse_args()
    files = sorted(args.root.glob("*.npz"), key=lambda p: p.stat().st_size)[: args.sets]
    results = [measure(f, args.train, args.rows) for f in files]
    for r in results:
        print(json.dumps(r))
    worst = max(r["single_max_abs"] for r in results)
    worst_rel = max(max(r["single_max_rel"], r["chunks64_max_rel"]) for r in results)
    flips = sum(r["single_flags_differ"] + r["chunks64_flags_differ"] for r in results)
    print(f"worst |difference| {worst:.3g}, worst relative {worst_rel:.3g}, flags that differ: {flips}")


if __name__ == "__main__":
    main()
