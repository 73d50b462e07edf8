"""BoostedDetector: a few labelled anomalies, boosted trees, and the unsupervised DEFAULT as a safety net."""

from __future__ import annotations

import numbers

import numpy as np

from deepad.base import BaseDetector
from deepad.detectors.ensemble import LocalGlobalEnsemble

__all__ = ["BoostedDetector"]


def _ecdf(reference_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of reference values ``<= value``: a score's rank among the unlabelled training rows, in [0, 1]."""
    return np.searchsorted(reference_sorted, values, side="right") / reference_sorted.shape[0]


class BoostedDetector(BaseDetector):
    """Weakly supervised: gradient-boosted trees on the features *and* unsupervised anomaly scores.

    Papers: XGBOD -- Zhao & Hryniewicki, "XGBOD: Improving supervised outlier
    detection with unsupervised representation learning" (IJCNN 2018), which
    adds unsupervised outlier scores as features of a boosted classifier; and
    ADBench (Han et al., NeurIPS 2022), whose finding this detector acts on:
    with even 5 % of the anomalies labelled, boosted trees (CatBoost: Prokhorenkova
    et al., NeurIPS 2018) beat every deep semi-supervised detector, while
    with one or two labels nothing beats a good unsupervised detector.

    Why this design.  A dozen confirmed fraud cases say a lot about *that*
    kind of fraud and nothing about the next kind; an unsupervised score
    says something about every kind but cannot tell unusual-and-harmless
    from unusual-and-harmful.  So the classifier is a CatBoost model
    (ordered boosting, which overfits least when a class has a handful of
    rows) trained on the raw features plus the unsupervised
    :class:`~deepad.detectors.LocalGlobalEnsemble`'s local view, global
    view and score (leave-one-out on the training rows, so they mean the
    same there as on new rows) -- with the labelled anomalies as class 1 and
    every other row as class 0 ("unlabelled counts as normal", as in
    ADBench).  Its output is then blended with the unsupervised score, with
    a weight that grows with the number of labelled anomalies, so one or
    two labels cannot make the detector worse than having none.

    Scoring rule.  With ``u(x)`` the ensemble's score, ``c(x)`` the
    classifier's probability of class 1, ``F_u``/``F_c`` their empirical
    CDFs over the *unlabelled* training rows (a score's rank among them, so
    both are on the same 0-1 scale), and ``n`` the number of labelled
    anomalies::

        w        = n / (n + label_pseudocount)
        score(x) = (1 - w) * F_u(u(x)) + w * F_c(c(x))
                   + tie-breaker

    The tie-breaker, an increasing function of ``u(x)`` smaller than one
    step of ``(1 - w) F_u``, only orders rows the CDFs tie (for instance
    rows beyond every training row), so a new row far outside the training
    data still ranks above one that is merely at its edge.  Without labelled
    anomalies (``y`` missing, or no 1 in it) ``w = 0`` and the detector is
    its unsupervised ensemble.

    Labels (``fit(X, y)``): 1 = known anomaly, 0 = known normal, -1 or NaN
    = unlabelled.  Rows labelled normal are class 0 like unlabelled ones.
    ``decision_scores_`` are the training rows rescored: labelled anomalies
    score high there because the classifier has seen them.

    Parameters
    ----------
    iterations, depth, learning_rate, l2_leaf_reg:
        CatBoost's tree settings (``learning_rate=None``: CatBoost picks it
        from the data size).  The defaults are CatBoost's own.
    label_pseudocount:
        How many labelled anomalies give the classifier half the weight.
    n_neighbors, n_neighbors_global:
        Passed to the unsupervised :class:`LocalGlobalEnsemble`.
    """

    _uses_labels = True

    def __init__(self, *, iterations: int = 1000, depth: int = 6, learning_rate: float | None = None,
                 l2_leaf_reg: float = 3.0, label_pseudocount: float = 3.0, n_neighbors: int = 5,
                 n_neighbors_global: int = 200, contamination: float = 0.1, n_threads: int | None = None,
                 random_state=None):
        self.iterations = iterations
        self.depth = depth
        self.learning_rate = learning_rate
        self.l2_leaf_reg = l2_leaf_reg
        self.label_pseudocount = label_pseudocount
        self.n_neighbors = n_neighbors
        self.n_neighbors_global = n_neighbors_global
        self.contamination = contamination
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        for name in ("iterations", "depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}.")
        for name in ("l2_leaf_reg", "label_pseudocount"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not float(v) > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}.")
        lr = self.learning_rate
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < float(lr) <= 1):
            raise ValueError(f"learning_rate must be None or in (0, 1], got {lr!r}.")

    def _threads(self) -> int:
        if self.n_threads is not None:
            return max(1, int(self.n_threads))
        from deepad.training import default_threads

        return default_threads(None)

    def _features(self, X: np.ndarray, views: np.ndarray, unsup: np.ndarray) -> np.ndarray:
        return np.column_stack([X, views, unsup])

    def _fit(self, X, y, seed, **fit_params):
        self._check_params()
        self.ensemble_ = LocalGlobalEnsemble(n_neighbors=self.n_neighbors, n_neighbors_global=self.n_neighbors_global,
                                             contamination=self.contamination)
        self.ensemble_.fit(X)
        views = self.ensemble_.pop_training_views()
        unsup = self.ensemble_.decision_scores_
        labelled = np.zeros(X.shape[0], dtype=bool) if y is None else (y == 1)
        self.n_labelled_anomalies_ = int(labelled.sum())
        unlabelled = ~labelled
        self.unsup_reference_ = np.sort(unsup[unlabelled])
        q25, med, q75 = np.percentile(unsup[unlabelled], [25, 50, 75])
        self.unsup_center_ = float(med)
        self.unsup_scale_ = float(q75 - q25) if q75 - q25 > 1e-12 else 1.0
        if self.n_labelled_anomalies_ == 0:
            self.classifier_ = None
            self.classifier_reference_ = np.zeros(0)
            self.weight_ = 0.0
            return
        from catboost import CatBoostClassifier

        self.classifier_ = CatBoostClassifier(
            iterations=int(self.iterations), depth=int(self.depth), learning_rate=self.learning_rate,
            l2_leaf_reg=float(self.l2_leaf_reg), random_seed=int(seed % (2**31)), thread_count=self._threads(),
            verbose=0, allow_writing_files=False)
        self.classifier_.fit(self._features(X, views, unsup), labelled.astype(np.int64))
        proba = self.classifier_.predict_proba(self._features(X, views, unsup))[:, 1]
        self.classifier_reference_ = np.sort(proba[unlabelled])
        n = self.n_labelled_anomalies_
        self.weight_ = float(n / (n + float(self.label_pseudocount)))

    # ------------------------------------------------------------------ scoring
    def _score(self, X):
        ens = self.ensemble_
        views = ens._calibrated(ens._views(ens._member_raw(X)))
        unsup = ens._combine(views)
        score = (1.0 - self.weight_) * _ecdf(self.unsup_reference_, unsup)
        if self.classifier_ is not None:
            proba = self.classifier_.predict_proba(self._features(X, views, unsup))[:, 1]
            score += self.weight_ * _ecdf(self.classifier_reference_, proba)
        # tie-breaker smaller than one step of the unsupervised CDF: orders rows the CDFs tie (beyond every
        # training row) by how far out they are, without reordering anything else
        z = (unsup - self.unsup_center_) / self.unsup_scale_
        step = (1.0 - self.weight_) / self.unsup_reference_.shape[0] if self.weight_ < 1 else 1e-9
        return score + 0.5 * step * (0.5 + np.arctan(z) / np.pi)
