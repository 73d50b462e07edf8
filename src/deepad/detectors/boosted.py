"""BoostedDetector: a few labelled anomalies, CatBoost, and the unsupervised DEFAULT for what CatBoost cannot tell."""

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
    """Weakly supervised: CatBoost on a few labelled anomalies, the unsupervised DEFAULT ordering what it cannot tell.

    Papers: CatBoost -- Prokhorenkova et al., "CatBoost: unbiased boosting
    with categorical features" (NeurIPS 2018); ADBench (Han et al., NeurIPS
    2022), whose finding this detector acts on: with a few percent of the
    anomalies labelled, boosted trees beat most deep semi-supervised
    detectors; XGBOD (Zhao & Hryniewicki, IJCNN 2018) for combining an
    unsupervised outlier score with a boosted classifier.

    Why this design.  A dozen confirmed fraud cases say a lot about *that*
    kind of fraud; a classifier learns it far better than a
    distance-to-normal score, and CatBoost's ordered boosting (with the
    learning rate it picks from the data size) overfits least on a handful
    of positives.  So the list an analyst reads is CatBoost's, with the
    labelled anomalies as class 1 and every other row as class 0
    ("unlabelled counts as normal", as in ADBench).  Its log-odds are flat
    over the bulk of rows that look like no labelled anomaly; there the
    unsupervised :class:`~deepad.detectors.LocalGlobalEnsemble` (DEFAULT)
    orders them, through a *bounded* term, so it can move a row only among
    rows the classifier scores alike and never dilutes the top of the list
    -- which averaging ranks did (the rule before issue 22 lost AUC-PR to
    plain CatBoost that way, and fitted two CatBoosts).  How much the
    unsupervised score may add is decided by the labels themselves: the
    ensemble never sees a label, so how highly it ranks the labelled
    anomalies among the unlabelled rows is an honest, free check of it on
    exactly the anomalies we know.

    Scoring rule (``combine="bulk"``, the default).  With ``L(x)``
    CatBoost's log-odds of class 1, ``u(x)`` the ensemble's score,
    ``z = (u - median) / IQR`` over the unlabelled training rows'
    leave-one-out scores, ``A`` the share of unlabelled rows the labelled
    anomalies' leave-one-out scores reach or beat (their mean rank, an AUC)
    and ``sd(L)`` the standard deviation of ``L`` over the unlabelled
    training rows::

        score(x) = L(x) + unsup_weight * clip(2 A - 1, 0, 1) * sd(L) * atan(z(x))

    (the weight is ``unsup_coef_``).  The term moves a score by at most
    ``unsup_coef_ * pi / 2``: rows whose log-odds differ by more keep
    CatBoost's order.  Without labelled anomalies (``y`` missing, or no 1
    in it) the score is the ensemble's own: this detector is then DEFAULT.
    The rule and ``unsup_weight=0.5`` were chosen on the design half of
    the 28 ADBench sets and checked on the other half
    (``benchmarks/weak_rules.py``; ``docs/design/boosted.md``).

    Measured (``benchmarks/results/weak-v2/RESULTS.md``, the commands
    there; 28 ADBench sets x 3 seeds, 5 % of the train anomalies
    labelled, mean AUC-PR x 100): this detector 64.72, plain CatBoost
    64.33, DEFAULT 39.60; fit time 1.17x CatBoost's (13 cells
    side by side).

    ``combine="rank"`` / ``"probability"`` are the rules before issue 22
    (models saved then load and score as before): a *plain* CatBoost on
    the features and an *augmented* one on the features plus the
    ensemble's two views and score, their CDF ranks among the unlabelled
    training rows (or probabilities) averaged and blended with the
    ensemble's rank by ``w = n / (n + label_pseudocount)``.

    Labels (``fit(X, y)``): 1 = known anomaly, 0 = known normal, -1 or NaN
    = unlabelled.  Rows labelled normal are class 0 like unlabelled ones.
    ``decision_scores_`` are the training rows rescored: labelled anomalies
    score high there because the classifier has seen them.

    Parameters
    ----------
    iterations, depth, learning_rate, l2_leaf_reg:
        CatBoost's tree settings.  ``None`` (the default for
        ``learning_rate`` and ``l2_leaf_reg``) leaves the setting to
        CatBoost, whose rate then depends on the data size; setting either
        fixes the rate (0.03 unless given).  The defaults are CatBoost's.
    unsup_weight:
        ``>= 0``; the unsupervised term's weight in the "bulk" rule (0:
        plain CatBoost, ties left as they are).
    label_pseudocount:
        ``>= 0``; the "rank" and "probability" rules only: how many
        labelled anomalies the unsupervised score is worth in the blend.
    n_neighbors, n_neighbors_global:
        Passed to the unsupervised :class:`LocalGlobalEnsemble`.
    combine : {"bulk", "rank", "probability"}
        The scoring rule (see above).
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
