"""BoostedDetector: a few labelled anomalies, boosted trees, and the unsupervised DEFAULT as a safety net."""

from __future__ import annotations

import numbers

import numpy as np

from deepad.base import BaseDetector, check_int_param
from deepad.detectors.ensemble import LocalGlobalEnsemble

__all__ = ["BoostedDetector"]

#: the rules ``combine`` names: "bulk" (the default, issue 22), "rank" and "probability" (two members, before it)
COMBINE = ("bulk", "rank", "probability")
#: lambda of the "bulk" rule, chosen on the design half of the 28 ADBench sets (docs/design/boosted.md)
UNSUP_WEIGHT = 0.5


def _ecdf(reference_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of reference values ``<= value``: a score's rank among the unlabelled training rows, in [0, 1]."""
    return np.searchsorted(reference_sorted, values, side="right") / reference_sorted.shape[0]


class BoostedDetector(BaseDetector):
    """Weakly supervised: gradient-boosted trees on the features, and on the features plus anomaly scores.

    Papers: XGBOD -- Zhao & Hryniewicki, "XGBOD: Improving supervised outlier
    detection with unsupervised representation learning" (IJCNN 2018), which
    adds unsupervised outlier scores as features of a boosted classifier;
    CatBoost -- Prokhorenkova et al., "CatBoost: unbiased boosting with
    categorical features" (NeurIPS 2018); and ADBench (Han et al., NeurIPS
    2022), whose finding this detector acts on: with a few percent of the
    anomalies labelled, boosted trees beat every deep semi-supervised
    detector.

    Why this design.  A dozen confirmed fraud cases say a lot about *that*
    kind of fraud; a classifier learns it far better than any
    distance-to-normal score can.  CatBoost's ordered boosting overfits
    least when a class has a handful of rows, so both members are CatBoost
    models with the labelled anomalies as class 1 and every other row as
    class 0 ("unlabelled counts as normal", as in ADBench):

    * the **plain** member sees the features;
    * the **augmented** member sees the features plus the unsupervised
      :class:`~deepad.detectors.LocalGlobalEnsemble`'s local view, global
      view and score (leave-one-out on the training rows, so they mean the
      same there as on new rows) -- XGBOD's idea: "how unusual is this row"
      is a feature a few labels can then weigh.

    On the ADBench collection neither member wins everywhere (unsupervised
    features help where the anomalies are globally unusual and distract on
    sparse, high-dimensional data), so their ranks are averaged: two
    different views of the same labels make a lower-variance ranking.

    Both members are CatBoost with its own defaults, including the
    learning rate CatBoost picks from the data size (0.004 on 90 rows,
    0.010 on 1,000, 0.024 on 7,000, with 1,000 trees).  That matters: an
    explicit ``l2_leaf_reg`` -- even CatBoost's own default 3 -- switches
    the automatic rate off and fixes it at 0.03 (what that cost an earlier
    version: ``docs/design/boosted.md``).

    Measured (28 ADBench sets x 3 seeds, mean ROC-AUC at 5 % / 10 % / 5
    labelled anomalies, ``benchmarks/results/weak``; ``python
    benchmarks/run_adbench.py --setting weak --seeds 3 --labelled 0.05,0.10
    --labelled-count 5``, the full command in that folder's RESULTS.md):
    this detector 89.15 / 90.79 / 86.21, plain CatBoost on the features
    89.08 / 90.61 / 86.43.  The margin is small; per-set wins and losses and
    the other combination rules tried: ``docs/design/boosted.md``.

    Scoring rule.  With ``c_p(x)``, ``c_a(x)`` the members' probability of
    class 1, ``F_p``/``F_a`` their empirical CDFs over the *unlabelled*
    training rows (a score's rank among them, so both are on one 0-1
    scale), ``u(x)`` the ensemble's score with CDF ``F_u``, and ``n`` the
    number of labelled anomalies::

        w        = n / (n + label_pseudocount)
        score(x) = (1 - w) * F_u(u(x)) + w * (F_p(c_p(x)) + F_a(c_a(x))) / 2 + tie-breaker

    ``label_pseudocount`` (default 0: the classifiers alone as soon as one
    anomaly is labelled) shrinks towards the unsupervised score when you
    trust a handful of labels less.  The tie-breaker, an increasing
    function of ``u(x)`` smaller than half a CDF step, only orders rows the
    CDFs tie -- typically rows beyond every unlabelled training row, which
    then rank by how unusual they are.  Without labelled anomalies (``y``
    missing, or no 1 in it) ``w = 0`` and the detector is its unsupervised
    ensemble.

    ``combine="probability"`` averages the members' probabilities instead
    of their ranks: the training rows the ranks are taken among were seen
    by the classifiers, so with a handful of labels most new rows rank
    above all of them and tie at 1, while the probabilities still differ
    (measured in ``docs/design/boosted.md``: the ties cost nothing on average).

    Labels (``fit(X, y)``): 1 = known anomaly, 0 = known normal, -1 or NaN
    = unlabelled.  Rows labelled normal are class 0 like unlabelled ones.
    ``decision_scores_`` are the training rows rescored: labelled anomalies
    score high there because the classifiers have seen them.

    Parameters
    ----------
    iterations, depth, learning_rate, l2_leaf_reg:
        CatBoost's tree settings for both members.  ``None`` (the default
        for ``learning_rate`` and ``l2_leaf_reg``) leaves the setting to
        CatBoost, whose rate then depends on the data size; setting either
        fixes the rate (0.03 unless given).  The defaults are CatBoost's.
    label_pseudocount:
        ``>= 0``; how many labelled anomalies the unsupervised score is
        worth in the blend (0 = not blended once there are labels).
    n_neighbors, n_neighbors_global:
        Passed to the unsupervised :class:`LocalGlobalEnsemble`.
    combine : {"rank", "probability"}
        How the two members' outputs are averaged (see above).
    """

    _uses_labels = True

    def __init__(
        self,
        *,
        iterations: int = 1000,
        depth: int = 6,
        learning_rate: float | None = None,
        l2_leaf_reg: float | None = None,
        label_pseudocount: float = 0.0,
        n_neighbors: int = 5,
        n_neighbors_global: int = 200,
        combine: str = "bulk",
        unsup_weight: float = UNSUP_WEIGHT,
        contamination: float = 0.1,
        n_threads: int | None = None,
        random_state=None,
    ):
        self.iterations = iterations
        self.depth = depth
        self.learning_rate = learning_rate
        self.l2_leaf_reg = l2_leaf_reg
        self.label_pseudocount = label_pseudocount
        self.n_neighbors = n_neighbors
        self.n_neighbors_global = n_neighbors_global
        self.combine = combine
        self.unsup_weight = unsup_weight
        self.contamination = contamination
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        for name in ("iterations", "depth"):
            check_int_param(getattr(self, name), name, allowed="a positive integer")
        v = self.l2_leaf_reg
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not float(v) > 0):
            raise ValueError(f"l2_leaf_reg must be None or a positive number, got {v!r}.")
        v = self.label_pseudocount
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not float(v) >= 0:
            raise ValueError(f"label_pseudocount must be a number >= 0, got {v!r}.")
        if self.combine not in COMBINE:
            raise ValueError(f"combine must be one of {', '.join(map(repr, COMBINE))}, got {self.combine!r}.")
        v = self.unsup_weight
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not float(v) >= 0:
            raise ValueError(f"unsup_weight must be a number >= 0, got {v!r}.")
        lr = self.learning_rate
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < float(lr) <= 1):
            raise ValueError(f"learning_rate must be None or in (0, 1], got {lr!r}.")

    def _threads(self) -> int:
        if self.n_threads is not None:
            return max(1, int(self.n_threads))
        from deepad.training import default_threads

        return default_threads(None)

    def _classifier(self, seed: int):
        from catboost import CatBoostClassifier

        # Only settings given are passed: CatBoost picks its learning rate from the data size only when
        # neither learning_rate nor l2_leaf_reg is set (setting l2_leaf_reg=3, its own default, switches that
        # off and fixes the rate at 0.03 -- far too fast for a handful of labels on a small set).
        extra = {
            k: v for k, v in (("learning_rate", self.learning_rate), ("l2_leaf_reg", self.l2_leaf_reg)) if v is not None
        }
        return CatBoostClassifier(
            iterations=int(self.iterations),
            depth=int(self.depth),
            random_seed=int(seed % (2**31)),
            thread_count=self._threads(),
            verbose=0,
            allow_writing_files=False,
            **extra,
        )

    def _fit(self, X, y, seed, **fit_params):
        self._check_params()
        self.ensemble_ = LocalGlobalEnsemble(
            n_neighbors=self.n_neighbors,
            n_neighbors_global=self.n_neighbors_global,
            deep_weight=0.0,  # the kNN views only: CatBoost learns from them
            contamination=self.contamination,
        )
        self.ensemble_.fit(X)
        views = self.ensemble_.pop_training_views()
        if self.combine == "bulk":
            return self._fit_bulk(X, y, seed)
        # in-sample ensemble scores (each row among its own neighbours), as before decision_scores_ became
        # leave-one-out: the classifiers were tuned on these (docs/design/boosted.md)
        unsup = np.asarray(self.ensemble_._score(X), dtype=np.float64)
        labelled = np.zeros(X.shape[0], dtype=bool) if y is None else (y == 1)
        self.n_labelled_anomalies_ = n = int(labelled.sum())
        unlabelled = ~labelled
        self.unsup_reference_ = np.sort(unsup[unlabelled])
        q25, med, q75 = np.percentile(unsup[unlabelled], [25, 50, 75])
        self.unsup_center_ = float(med)
        self.unsup_scale_ = float(q75 - q25) if q75 - q25 > 1e-12 else 1.0
        self.plain_classifier_ = self.augmented_classifier_ = None
        self.plain_reference_ = self.augmented_reference_ = np.zeros(0)
        self.weight_ = 0.0 if n == 0 else float(n / (n + float(self.label_pseudocount)))
        if n == 0:
            return
        target = labelled.astype(np.int64)
        augmented = np.column_stack([X, views, unsup])
        self.plain_classifier_ = self._classifier(seed).fit(X, target)
        self.augmented_classifier_ = self._classifier(seed + 1).fit(augmented, target)
        self.plain_reference_ = np.sort(self.plain_classifier_.predict_proba(X)[unlabelled, 1])
        self.augmented_reference_ = np.sort(self.augmented_classifier_.predict_proba(augmented)[unlabelled, 1])

    def _fit_bulk(self, X, y, seed) -> None:
        """One CatBoost on the features, and how much of the unsupervised score to add (see the class docstring)."""
        unsup = np.asarray(self.ensemble_.decision_scores_, dtype=np.float64)  # leave-one-out: as on new rows
        labelled = np.zeros(X.shape[0], dtype=bool) if y is None else (y == 1)
        self.n_labelled_anomalies_ = n = int(labelled.sum())
        unlabelled = unsup[~labelled]
        q25, med, q75 = np.percentile(unlabelled, [25, 50, 75])
        self.unsup_center_ = float(med)
        self.unsup_scale_ = float(q75 - q25) if q75 - q25 > 1e-12 else 1.0
        self.plain_classifier_ = self.augmented_classifier_ = None
        self.weight_ = 0.0 if n == 0 else 1.0
        self.unsup_gini_ = self.unsup_coef_ = 0.0
        if n == 0:
            return
        self.plain_classifier_ = self._classifier(seed).fit(X, labelled.astype(np.int64))
        # the ensemble never saw a label, so how highly it ranks the labelled anomalies among the unlabelled rows
        # (leave-one-out scores) is an honest check of the unsupervised score on exactly the anomalies we know
        auc = float(_ecdf(np.sort(unlabelled), unsup[labelled]).mean())
        self.unsup_gini_ = float(np.clip(2.0 * auc - 1.0, 0.0, 1.0))
        log_odds = self.plain_classifier_.predict(X[~labelled], prediction_type="RawFormulaVal")
        self.unsup_coef_ = float(self.unsup_weight) * self.unsup_gini_ * float(np.std(log_odds))

    # ------------------------------------------------------------------ scoring
    def _score(self, X):
        if self.combine == "bulk":
            return self._score_bulk(X)
        return self._score_members(X)

    def _score_bulk(self, X):
        unsup = np.asarray(self.ensemble_._score(X), dtype=np.float64)
        if self.plain_classifier_ is None:
            return unsup  # no labelled anomaly: the unsupervised ensemble's own score
        log_odds = np.asarray(self.plain_classifier_.predict(X, prediction_type="RawFormulaVal"), dtype=np.float64)
        z = (unsup - self.unsup_center_) / self.unsup_scale_
        return log_odds + self.unsup_coef_ * np.arctan(z)

    def _score_members(self, X):
        """The two-member rules ("rank", "probability"): models saved before issue 22 score with these."""
        ens = self.ensemble_
        views = ens._calibrated(ens._views(ens._member_raw(X)))
        unsup = ens._combine(views)
        score = (1.0 - self.weight_) * _ecdf(self.unsup_reference_, unsup)
        n_ref = self.unsup_reference_.shape[0]
        step = (1.0 - self.weight_) / n_ref
        if self.plain_classifier_ is not None:
            plain = self.plain_classifier_.predict_proba(X)[:, 1]
            augmented = self.augmented_classifier_.predict_proba(np.column_stack([X, views, unsup]))[:, 1]
            if self.combine == "rank":
                plain, augmented = _ecdf(self.plain_reference_, plain), _ecdf(self.augmented_reference_, augmented)
                step = min(step, 0.5 * self.weight_ / n_ref) if self.weight_ < 1 else 0.5 / n_ref
            else:  # probabilities rarely tie: the tie-breaker only separates exact ties
                step = min(step, 1e-9) if self.weight_ < 1 else 1e-9
            score = score + 0.5 * self.weight_ * (plain + augmented)
        # tie-breaker below half a CDF step: orders rows the CDFs tie by how unusual they are, nothing else
        z = (unsup - self.unsup_center_) / self.unsup_scale_
        return score + 0.5 * step * (0.5 + np.arctan(z) / np.pi)
