"""Issue 22's table, run in one process per invocation: DeepSAD, DevNet and XGBoost on the weak protocol.

Why not ``deepad bench``: on the shared 2-core machine a fresh process per run cost 25-35 s of start-up
(torch import) against 5-15 s of fitting, so the 28 x 3 x 3 grid could not finish.  This script uses the
very same protocol functions (``deepad.bench.protocol``: subsample to 10,000 rows, stratified 70/30
split, min-max scaling, the labelled anomalies from the seed and the set's name) and fits every detector
in one warm process (imports and torch's first optimiser step paid before any clock starts), timing
``fit`` alone with ``time.perf_counter``.  One row per (data set, seed, budget, detector) is appended to
``--out`` as soon as it is measured, so a partial run is usable and a re-run resumes.

    PYTHONPATH=src DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/weak_v2.py \\
        --detectors DeepSAD,DevNet,XGBoost --seeds 0,1,2 --out benchmarks/results/weak-v2/deep.csv

``--detectors Boosted,CatBoost`` fits the new :class:`~deepad.detectors.BoostedDetector` and plain
CatBoost (the bench's ``catboost.CatBoostClassifier`` with ``verbose=0``) on the same cell one after the
other: the side-by-side fit-time ratio of the issue's target.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from deepad.bench.protocol import LabelledSpec, find_datasets, load_dataset, make_split, weak_labels

DATA = Path("/work/shared/datasets/adbench")
BUDGETS = ("frac=0.05", "frac=0.1", "count=5")
FIELDS = ["dataset", "seed", "labelled", "detector", "roc_auc", "auc_pr", "fit_s", "n_labelled", "n_train"]


def build(name: str, seed: int):
    """``(estimator, kind)``: kind "weak" is fitted on ``(X, y_weak)``, "peer" on ``(X, labelled == 1)``."""
    if name == "DeepSAD":
        from deepad.detectors import DeepSAD

        return DeepSAD(random_state=seed, n_threads=1), "weak"
    if name == "DevNet":
        from deepad.detectors import DevNet

        return DevNet(random_state=seed, n_threads=1), "weak"
    if name == "Boosted":
        from deepad.detectors import BoostedDetector

        return BoostedDetector(random_state=seed, n_threads=1), "weak"
    if name == "XGBoost":
        from xgboost import XGBClassifier

        return XGBClassifier(random_state=seed, n_jobs=1), "peer"
    if name == "CatBoost":
        from catboost import CatBoostClassifier

        return CatBoostClassifier(verbose=0, allow_writing_files=False, random_state=seed, thread_count=1), "peer"
    raise SystemExit(f"unknown detector {name!r}")


def scores(est, kind: str, X: np.ndarray) -> np.ndarray:
    if kind == "peer":
        return np.asarray(est.predict_proba(X))[:, 1]
    return np.asarray(est.decision_function(X), dtype=np.float64)


def warm_up() -> None:
    """Pay torch's one-time costs (first optimiser step, compiler imports) before any clock starts."""
    from deepad.detectors import DeepSAD, DevNet

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = np.full(64, -1)
    y[:3] = 1
    for cls in (DeepSAD, DevNet):
        cls(epochs=1, n_threads=1, random_state=0).fit(X, y)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detectors", default="DeepSAD,DevNet,XGBoost")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budgets", default=",".join(BUDGETS))
    p.add_argument("--sets", default="", help="comma-separated names (default: all 28, in natural order)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from sklearn.metrics import average_precision_score, roc_auc_score

    names = args.detectors.split(",")
    refs = find_datasets(DATA)
    if args.sets:
        order = args.sets.split(",")
        by_name = {r.name: r for r in refs}
        refs = [by_name[n] for n in order]
    done = set()
    if args.out.exists():
        with args.out.open() as f:
            done = {(r["dataset"], r["seed"], r["labelled"], r["detector"]) for r in csv.DictReader(f)}
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as f:
            csv.writer(f).writerow(FIELDS)
    warm_up()
    for seed in [int(s) for s in args.seeds.split(",")]:
        for ref in refs:
            X, y = load_dataset(ref)
            sp = make_split(X, y, ref.name, seed)
            for budget in args.budgets.split(","):
                yw = weak_labels(sp.y_train, LabelledSpec.parse(budget), sp.label_seed)
                for name in names:
                    if (ref.name, str(seed), budget, name) in done:
                        continue
                    est, kind = build(name, seed)
                    target = yw if kind == "weak" else (yw == 1).astype(np.int64)
                    t0 = time.perf_counter()
                    est.fit(sp.X_train, target)
                    fit_s = time.perf_counter() - t0
                    s = scores(est, kind, sp.X_test)
                    row = [
                        ref.name,
                        seed,
                        budget,
                        name,
                        f"{roc_auc_score(sp.y_test, s):.6f}",
                        f"{average_precision_score(sp.y_test, s):.6f}",
                        f"{fit_s:.4f}",
                        int((yw == 1).sum()),
                        len(yw),
                    ]
                    with args.out.open("a", newline="") as f:
                        csv.writer(f).writerow(row)
                    print(*row, flush=True)


if __name__ == "__main__":
    sys.exit(main())
