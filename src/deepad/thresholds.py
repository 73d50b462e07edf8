"""Turning anomaly scores into decisions and probabilities.

Scores from different detectors live on different scales (squared errors,
energies, distances).  Everything a user acts on -- a 0/1 label, a p-value, a
probability -- is therefore derived from the *distribution of reference
scores* (normally the training scores), never from the raw scale.  That is
why these helpers all take ``reference_scores``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "contamination_threshold",
    "fpr_threshold",
    "pot_threshold",
    "conformal_p_values",
    "validate_contamination",
]


def validate_contamination(contamination: float) -> float:
    """Check PyOD's contamination range (0, 0.5] and return it as a float."""
    if isinstance(contamination, bool) or not isinstance(contamination, (int, float, np.floating, np.integer)):
        raise TypeError(f"contamination must be a float in (0, 0.5], got {type(contamination).__name__}")
    contamination = float(contamination)
    if not (0.0 < contamination <= 0.5):
        raise ValueError(f"contamination must be in (0, 0.5], got {contamination}")
    return contamination


def contamination_threshold(reference_scores: np.ndarray, contamination: float) -> float:
    """Score above which the top ``contamination`` fraction of the reference lies.

    This is PyOD's rule: ``threshold_ = percentile(decision_scores_, 100 * (1 - contamination))``.
    """
    contamination = validate_contamination(contamination)
    return float(np.quantile(np.asarray(reference_scores, dtype=np.float64), 1.0 - contamination))


def fpr_threshold(reference_scores: np.ndarray, fpr: float) -> float:
    """Threshold whose false-positive rate on *clean* reference scores is at most ``fpr``.

    With conformal p-values, flagging ``p <= fpr`` has a false-positive rate of
    at most ``fpr`` on exchangeable normal data (Vovk et al., 2005).  The
    matching score threshold is the ``ceil((n + 1)(1 - fpr))``-th smallest
    reference score; we return that order statistic so ``score > threshold``
    gives the same decisions as ``p_value <= fpr``.
    """
    if not (0.0 < float(fpr) < 1.0):
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    n = ref.size
    k = int(np.ceil((n + 1) * (1.0 - float(fpr))))  # 1-based rank
    if k > n:
        # Too few calibration scores to certify this FPR: nothing can be flagged.
        return float(np.inf)
    return float(ref[k - 1])


def pot_threshold(reference_scores: np.ndarray, risk: float = 1e-3, initial_quantile: float = 0.98) -> float:
    """Peaks-over-threshold (extreme value theory) threshold, no contamination guess needed.

    Following SPOT (Siffer et al., KDD 2017): take an initial high quantile
    ``t``, fit a generalised Pareto distribution to the excesses over ``t``,
    and return the score whose exceedance probability is ``risk``:

        z_q = t + (sigma / xi) * ((risk * n / n_t) ** (-xi) - 1)

    Falls back to the empirical ``1 - risk`` quantile when there are too few
    excesses to fit the tail.
    """
    ref = np.asarray(reference_scores, dtype=np.float64)
    if not (0.0 < risk < 1.0):
        raise ValueError(f"risk must be in (0, 1), got {risk}")
    t = float(np.quantile(ref, initial_quantile))
    excess = ref[ref > t] - t
    n, n_t = ref.size, excess.size
    if n_t < 10 or np.ptp(excess) == 0:
        return float(np.quantile(ref, 1.0 - risk))
    xi, _, sigma = stats.genpareto.fit(excess, floc=0.0)
    ratio = risk * n / n_t
    if abs(xi) < 1e-8:
        return float(t - sigma * np.log(ratio))
    return float(t + (sigma / xi) * (ratio ** (-xi) - 1.0))


def conformal_p_values(reference_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values: ``p(x) = (1 + #{ref >= s(x)}) / (n_ref + 1)``.

    A small p-value means few reference (normal) records score as high as
    ``x``.  Computed with one sort and a binary search, so it costs
    O((n + m) log n) rather than O(n * m).
    """
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    s = np.asarray(scores, dtype=np.float64)
    n_greater_equal = ref.size - np.searchsorted(ref, s, side="left")
    return (1.0 + n_greater_equal) / (ref.size + 1.0)
