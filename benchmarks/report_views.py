"""Which 2-D projection of the report separates anomalies from normal rows (issue 19, item 7).

For each data set: fit the default detector in a TabularDetector on the
table (as `deepad train` then `deepad report` on the same data would), take
the encoded features Z the detector sees and its scores, project a sample
(<= 2,000 rows) to 2-D with each candidate, and measure how well the labels
(used only here, never by the projections) separate on the plane:

* knn_auc: 5-fold cross-validated ROC-AUC of a 15-NN classifier on the 2-D points
  (standardised per axis), i.e. "can a reader see where the anomalies are";
* silhouette: silhouette coefficient of the two label groups on the plane.

Candidates: pca (before), score_pc1 (x = score quantile, y = PC 1 of Z),
contrast (x = direction from the unflagged rows' mean to the flagged rows'
mean, y = PC 1 of Z orthogonal to it), attr_pca (PCA of the 5 encoded
columns that deviate most on the top-scored rows), score_attr (x = score
quantile, y = PC 1 of those 5 columns), tsne (sklearn TSNE; with --tsne).

Run: PYTHONPATH=src DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/report_views.py [--tsne] [out.csv]
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ADBENCH = Path("/work/shared/datasets/adbench")
SETS = ["38_thyroid", "30_satellite", "28_pendigits", "23_mammography", "12_fault", "42_WBC"]


def datasets():
    from deepad.data import load_cardio
    from deepad.data.synthetic import make_fraud_frame

    X, y = load_cardio()
    yield "cardio (bundled)", pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y
    fr = make_fraud_frame(5000, seed=0)
    yield "deepad example (fraud)", fr.drop(columns=["is_fraud"]), fr["is_fraud"].to_numpy()
    rng = np.random.default_rng(0)
    for name in SETS:
        with np.load(ADBENCH / f"{name}.npz", allow_pickle=False) as d:
            X, y = d["X"].astype(np.float64), d["y"].astype(np.int64)
        if len(y) > 5000:
            idx = rng.choice(len(y), 5000, replace=False)
            X, y = X[idx], y[idx]
        yield name, pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y


def separation(P: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    P = (P - P.mean(0)) / np.where(P.std(0) > 1e-12, P.std(0), 1.0)
    proba = cross_val_predict(
        KNeighborsClassifier(15), P, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba"
    )[:, 1]
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba)), float(silhouette_score(P, y))


def main() -> None:
    from deepad.pipeline import TabularDetector
    from deepad.report.views import PROJECTIONS

    rows = []
    for name, df, y in datasets():
        model = TabularDetector(contamination=max(float(y.mean()), 0.01)).fit(df)
        Z = model.preprocessor.transform(df)
        scores = model.decision_scores_
        flags = scores > model.threshold_
        rng = np.random.default_rng(0)
        keep = np.sort(rng.choice(len(y), min(2000, len(y)), replace=False))
        for proj in [p for p in PROJECTIONS if p != "tsne" or "--tsne" in sys.argv]:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                P, _ = PROJECTIONS[proj](Z[keep], scores[keep], flags[keep])
            sec = time.perf_counter() - t0
            auc, sil = separation(P, y[keep])
            rows.append({"data": name, "projection": proj, "knn_auc": auc, "silhouette": sil, "seconds": sec})
            print(f"{name:24s} {proj:10s} knn_auc {auc:.3f} silhouette {sil:+.3f} {sec:6.2f} s", flush=True)
    res = pd.DataFrame(rows)
    print()
    print(res.pivot(index="data", columns="projection", values="knn_auc").round(3).to_string())
    print()
    print(res.groupby("projection")[["knn_auc", "silhouette", "seconds"]].mean().round(3).to_string())
    out = [a for a in sys.argv[1:] if not a.startswith("--")]
    if out:
        res.to_csv(out[0], index=False)


if __name__ == "__main__":
    main()
