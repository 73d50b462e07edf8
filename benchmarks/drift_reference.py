"""Score-drift false alarms by the kind of reference scores: in-sample, held out (calibrated), leave-one-out.

Why ``detect_drift`` counts the score section in its verdict only when the
model's reference scores are held out of training (``score_in_verdict=None``).
Per ADBench set (``/work/shared/datasets/adbench/*.npz``, normal rows only,
shuffled with ``--seed``): a model is fitted on 70 % of the first half (at
most 2,100 rows); each no-shift trial draws ``m = min(500, pool / 2)`` test
rows from the rest (never trained on) and runs :func:`deepad.drift.score_drift`
three ways:

* ``in-sample``: against the training scores, as an uncalibrated
  IsolationForest or PCA keeps them (the model has seen those rows);
* ``calibrated``: after ``model.calibrate`` on ``n_cal`` other held-out rows
  (as many as the other 30 % of the first half), drawn afresh per trial --
  the conformal guarantee is over that draw;
* for KNN and DEFAULT (LocalGlobalEnsemble), whose training scores are
  leave-one-out, the uncalibrated row is that ``leave-one-out`` reference.

A false alarm is the section's ``p_value <= alpha`` (0.05) on rows from the
very source the model learned.  The rows are the same for every reference
of a trial.  Run::

    PYTHONPATH=src DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/drift_reference.py \\
        [--trials 10] [--seed 0] [--out benchmarks/results/drift-v4/reference.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from deepad.detectors import DEFAULT, KNN, PCA, IsolationForest
from deepad.drift import score_drift
from deepad.pipeline import TabularDetector

DATA = Path("/work/shared/datasets/adbench")
ALPHA = 0.05
POOL_CAP = 6000
DETECTORS = {
    "IsolationForest": lambda seed: IsolationForest(n_estimators=100, random_state=seed),
    "PCA": lambda seed: PCA(),
    "KNN": lambda seed: KNN(),
    "DEFAULT": lambda seed: DEFAULT(),
}


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])


def run_set(name: str, trials: int, seed: int) -> dict:
    d = np.load(DATA / f"{name}.npz")
    X = np.asarray(d["X"], dtype=np.float64)[np.asarray(d["y"]) == 0]
    rng = np.random.default_rng(seed)
    X = X[rng.permutation(len(X))]
    n_ref = min(len(X) // 2, 3000)
    n_fit = int(0.7 * n_ref)
    n_cal = n_ref - n_fit
    pool = X[n_fit : n_ref + POOL_CAP]
    m = int(min(500, (len(pool) - n_cal) // 2))
    draws = [rng.permutation(len(pool)) for _ in range(trials)]
    out = {"fit_rows": n_fit, "calibration_rows": n_cal, "test_rows": m, "detectors": {}}
    for det_name, make in DETECTORS.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = TabularDetector(make(seed), contamination=0.05, random_state=seed).fit(_frame(X[:n_fit]))
            kind = model.training_scores_kind()
            rows = {"uncalibrated": [], "calibrated": []}
            for order in draws:
                model.calibration_scores_ = None
                test = model.decision_function(_frame(pool[order[n_cal : n_cal + m]]))
                r = score_drift(model, test)
                rows["uncalibrated"].append([r["p_value"], r["distribution"]["median_shift_std"], r["held_out"]])
                model.calibrate(_frame(pool[order[:n_cal]]))
                r = score_drift(model, test)
                rows["calibrated"].append([r["p_value"], r["distribution"]["median_shift_std"], r["held_out"]])
        out["detectors"][det_name] = {
            "training_scores": kind,
            **{
                k: {
                    "false_alarms": int(sum(p <= ALPHA for p, _, _ in v)),
                    "trials": len(v),
                    "median_shift_std": float(np.mean([s for _, s, _ in v])),
                    "held_out": bool(v[0][2]),
                    "p_values": [float(p) for p, _, _ in v],
                }
                for k, v in rows.items()
            },
            "seconds": time.perf_counter() - t0,
        }
    return out


def table(results: dict) -> list[str]:
    names = sorted(results)
    dets = list(next(iter(results.values()))["detectors"])
    lines = [
        "| detector | reference | held out | false alarms | rate | sets over 20 % | mean median shift (ref sd) |",
        "|---|---|---|---|---|---|---|",
    ]
    for det in dets:
        for ref in ("uncalibrated", "calibrated"):
            cells = [results[n]["detectors"][det][ref] for n in names]
            fa, n = sum(c["false_alarms"] for c in cells), sum(c["trials"] for c in cells)
            bad = [nm for nm, c in zip(names, cells) if c["false_alarms"] > 0.2 * c["trials"]]
            kind = results[names[0]]["detectors"][det]["training_scores"] if ref == "uncalibrated" else "calibration"
            held = {c["held_out"] for c in cells}
            lines.append(
                f"| {det} | {kind} | {'yes' if held == {True} else 'no' if held == {False} else 'mixed'} | "
                f"{fa}/{n} | {fa / n:.1%} | {', '.join(bad) or '-'} | "
                f"{np.mean([c['median_shift_std'] for c in cells]):+.3f} |"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", nargs="*")
    ap.add_argument("--out", default="benchmarks/results/drift-v4/reference.json")
    args = ap.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}  # checkpointed per set: a rerun resumes
    for name in args.sets or sorted(p.stem for p in DATA.glob("*.npz")):
        if name in results:
            continue
        results[name] = run_set(name, args.trials, args.seed)
        print(f"{name}: {sum(d['seconds'] for d in results[name]['detectors'].values()):.0f} s", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out)
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
