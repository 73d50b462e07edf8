"""Weakly supervised detectors vs unsupervised and supervised baselines on ADBench tabular sets.

Protocol: 70/30 stratified split, min-max scaling fitted on the train part,
``--label-fraction`` (default 5%) of the train anomalies labelled (at least 1),
every other train row unlabelled (-1).  ROC-AUC on the test part.

    DEEPAD_NUM_THREADS=1 .venv/bin/python benchmarks/weak_detectors.py --seeds 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "adbench"
SETS = ["6_cardio", "38_thyroid", "4_breastw", "23_mammography", "30_satellite", "12_fault"]


def split(name, seed, label_fraction):
    d = np.load(DATA / f"{name}.npz")
    X, y = d["X"].astype(np.float64), d["y"].astype(int)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    lo, hi = Xtr.min(0), Xtr.max(0)
    scale = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    Xtr, Xte = (Xtr - lo) / scale, (Xte - lo) / scale
    rng = np.random.default_rng(seed)
    anom = np.flatnonzero(ytr == 1)
    k = max(1, int(round(label_fraction * anom.size)))
    labelled = rng.choice(anom, size=k, replace=False)
    weak = np.full(ytr.shape, -1)
    weak[labelled] = 1
    return Xtr, weak, Xte, yte


def models(seed):
    import deepad.detectors as D

    def xgb(X, w):
        from xgboost import XGBClassifier

        clf = XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.1, n_jobs=1, random_state=seed)
        clf.fit(X, (w == 1).astype(int))
        return clf.predict_proba

    out = {
        "DeepSAD": lambda X, w: D.DeepSAD(random_state=seed).fit(X, w).decision_function,
        "DevNet": lambda X, w: D.DevNet(random_state=seed).fit(X, w).decision_function,
        "DeepSAD(y=None)": lambda X, w: D.DeepSAD(random_state=seed).fit(X).decision_function,
        "DevNet(y=None)": lambda X, w: D.DevNet(random_state=seed).fit(X).decision_function,
        "AutoEncoder": lambda X, w: D.AutoEncoder(random_state=seed).fit(X).decision_function,
        "IsolationForest": lambda X, w: D.IsolationForest(random_state=seed).fit(X).decision_function,
        "XGBoost": xgb,
    }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--sets", nargs="+", default=SETS)
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--label-fraction", type=float, default=0.05)
    args = ap.parse_args()
    registry = models(0)
    names = args.models or list(registry)
    table = {}
    for ds in args.sets:
        for seed in args.seeds:
            Xtr, w, Xte, yte = split(ds, seed, args.label_fraction)
            reg = models(seed)
            for m in names:
                t = time.perf_counter()
                score = reg[m](Xtr, w)(Xte)
                score = score[:, 1] if score.ndim == 2 else score
                auc = roc_auc_score(yte, score)
                table.setdefault((ds, m), []).append(auc)
                print(
                    f"{ds:16s} seed={seed} {m:16s} auc={auc:.3f} labelled={int((w == 1).sum())} "
                    f"({time.perf_counter() - t:.1f}s)",
                    flush=True,
                )
    print("\n| data set | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for ds in args.sets:
        print(f"| {ds} | " + " | ".join(f"{np.mean(table[ds, m]):.3f}" for m in names) + " |")
    print("| mean | " + " | ".join(f"{np.mean([np.mean(table[ds, m]) for ds in args.sets]):.3f}" for m in names) + " |")


if __name__ == "__main__":
    main()
