"""Classifier two-sample test (C2ST): can a classifier tell the new rows from the reference rows?"""

from __future__ import annotations

import numpy as np

__all__ = ["c2st_test"]


def _fold_u(score: np.ndarray, label: np.ndarray) -> tuple[float, float, float]:
    """Mann-Whitney U of the new rows' (``label == 1``) out-of-fold scores, its null mean and variance (ties corrected)."""
    from scipy.stats import rankdata

    n1 = float(np.count_nonzero(label))
    n0 = float(label.size - n1)
    ranks = rankdata(score)
    u = float(ranks[label == 1].sum() - n1 * (n1 + 1.0) / 2.0)
    n = n0 + n1
    _, ties = np.unique(ranks, return_counts=True)
    tie = float(np.sum(ties**3 - ties)) / (n * (n - 1.0))
    return u, n0 * n1 / 2.0, n0 * n1 / 12.0 * ((n + 1.0) - tie)


def c2st_test(
    reference: np.ndarray,
    new: np.ndarray,
    *,
    max_rows: int = 500,
    n_folds: int = 5,
    random_state: int = 0,
    classifier=None,
) -> dict:
    """Classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017) with an out-of-fold AUC.

    The pooled rows (at most ``max_rows`` per side, seeded subsample) are
    labelled 0 (reference) / 1 (new) and split into ``n_folds`` stratified
    folds; a classifier (default: scikit-learn's histogram gradient
    boosting, 50 trees of 15 leaves -- it takes NaN and needs no scaling)
    is trained on the other folds and scores the held-out one.  Under no
    drift the labels of a held-out fold are exchangeable given the
    classifier, so each fold's Mann-Whitney U of the new rows' scores has
    the rank-sum null distribution; the p-value is one-sided (AUC above
    0.5) from the sum of the folds' U with its null mean and variance
    (normal approximation).  The statistic is the out-of-fold AUC (0.5: the
    classifier cannot tell; 1: it always can).  It sees any difference the
    classifier can learn, including joint ones (a swapped pair of columns),
    and is linear in the rows where MMD is quadratic.
    """
    from scipy.stats import norm
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(random_state)
    X = np.asarray(reference, dtype=np.float64)
    Y = np.asarray(new, dtype=np.float64)
    if X.shape[0] > max_rows:
        X = X[np.sort(rng.choice(X.shape[0], size=max_rows, replace=False))]
    if Y.shape[0] > max_rows:
        Y = Y[np.sort(rng.choice(Y.shape[0], size=max_rows, replace=False))]
    n, m = X.shape[0], Y.shape[0]
    if min(n, m) < n_folds:
        return {"p_value": None, "skipped": f"too few rows for {n_folds} folds ({n} reference, {m} new)"}
    if classifier is None:
        classifier = HistGradientBoostingClassifier(
            max_iter=50, max_leaf_nodes=15, early_stopping=False, random_state=random_state
        )
    Z = np.vstack([X, Y])
    label = np.concatenate([np.zeros(n, dtype=np.int8), np.ones(m, dtype=np.int8)])
    oof = np.empty(n + m)
    u = mu = var = 0.0
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    for train, test in folds.split(Z, label):
        clf = clone(classifier).fit(Z[train], label[train])
        oof[test] = clf.predict_proba(Z[test])[:, 1]
        fu, fmu, fvar = _fold_u(oof[test], label[test])
        u, mu, var = u + fu, mu + fmu, var + fvar
    z = (u - mu) / np.sqrt(var) if var > 0 else 0.0
    auc = u / (2.0 * mu) if mu > 0 else 0.5  # the folds' pooled pairwise AUC (within folds)
    return {
        "test": "c2st",
        "statistic": float(auc),
        "p_value": float(norm.sf(z)),
        "z": float(z),
        "classifier": type(classifier).__name__,
        "folds": int(n_folds),
        "reference_rows": int(n),
        "new_rows": int(m),
        "features": int(Z.shape[1]),
    }
