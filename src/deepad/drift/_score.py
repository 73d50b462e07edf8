"""The score section of :func:`deepad.drift.detect_drift`: the new rows' anomaly scores and flag rate vs the reference."""

from __future__ import annotations

import numpy as np

from deepad.drift._stats import proportion_test
from deepad.thresholds import conformal_p_values

__all__ = ["TAIL_QUANTILES", "check_tail_quantiles", "reference_held_out", "score_drift", "tail_test"]

#: the reference quantiles above which the score section counts an excess of new rows (see :func:`tail_test`)
TAIL_QUANTILES: tuple[float, ...] = ()


def reference_held_out(model) -> bool:
    """Whether ``model.p_value_reference`` holds scores of rows held out of training: calibration scores.

    Only then are new rows from the same source exchangeable with the
    reference rows, so the score tests hold their level.  Training scores
    are not: in-sample ones (IsolationForest, PCA, the autoencoders) are
    optimistic, and leave-one-out ones (KNN, DEFAULT) rank each row among
    ``n - 1`` others where a new row meets ``n``.  No-shift false alarms of
    the score section at alpha 0.05 on the 28 ADBench sets, training vs
    calibration reference: IsolationForest 7.9 vs 5.0 %, PCA 27.5 vs 6.1 %,
    KNN 8.9 vs 5.0 %, DEFAULT 14.6 vs 2.5 %
    (``benchmarks/drift_reference.py``).
    """
    return getattr(model, "calibration_scores_", None) is not None


def check_tail_quantiles(values, *, what: str = "tail_quantiles") -> tuple[float, ...]:
    """``values`` as a tuple of floats, each finite and strictly between 0 and 1, none twice; else a ``ValueError``.

    The message names the bad value; ``what``: how it names the setting
    (``"--tail-quantiles"`` on the command line).
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{what} must be a list of numbers in (0, 1) such as (0.9, 0.99), got {values!r}.")
    out: list[float] = []
    for v in values:
        try:
            q = float(v)
        except (TypeError, ValueError):
            q = float("nan")
        if isinstance(v, bool) or not (np.isfinite(q) and 0.0 < q < 1.0):
            raise ValueError(f"{what} must be numbers strictly between 0 and 1, got {v!r}.")
        if q in out:
            raise ValueError(f"{what} lists {v!r} twice.")
        out.append(q)
    return tuple(out)


def tail_test(reference: np.ndarray, scores: np.ndarray, quantile: float) -> dict:
    """One-sided test of an excess of new scores above the reference's ``quantile``: more rows far out than normal.

    The cut is the reference's ``r = ceil(quantile (n + 1))``-th smallest
    score (capped at ``n``; under no drift a new row is above it with
    probability ``(n - r + 1) / (n + 1)``).  Under exchangeability of the
    ``n + m`` pooled scores, the number ``K`` of the ``m`` new rows above
    the reference's ``r``-th order statistic has the exact law ``P(K = k) =
    C(r - 1 + m - k, m - k) C(n - r + k, k) / C(n + m, m)`` (count the
    orders in which ``m - k`` new rows come before it); the p-value is
    ``P(K >= k_new)``, exact for any ``n``, ``m`` (conservative with tied
    scores: a new score equal to the cut is not counted).  Aimed at a
    rising anomaly rate (a fraud wave): anomalies score far above the
    reference, so a few rows above its 99th percentile are strong evidence
    where the two-sided flag-rate test at a 5 % threshold needs more rows.
    """
    from scipy.special import gammaln

    ref = np.sort(np.asarray(reference, dtype=np.float64))
    n, m = ref.size, scores.size
    r = max(1, min(n, int(np.ceil(quantile * (n + 1)))))
    cut = float(ref[r - 1])
    k_new = int(np.count_nonzero(scores > cut))

    def log_choose(a, b):
        return gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0)

    k = np.arange(k_new, m + 1, dtype=np.float64)
    log_p = log_choose(r - 1 + m - k, m - k) + log_choose(n - r + k, k) - log_choose(float(n + m), float(m))
    p = float(np.exp(log_p).sum()) if k_new > 0 else 1.0
    return {
        "test": "exceedances (one-sided, exact)",
        "quantile": float(quantile),
        "cut": cut,
        "reference_above": int(n - r),
        "new_count": k_new,
        "expected_count": float(m * (n - r + 1) / (n + 1)),
        "p_value": float(min(1.0, max(p, 0.0))),
    }


def score_drift(model, scores: np.ndarray, tail_quantiles=TAIL_QUANTILES) -> dict:
    """Score drift of ``scores`` (the model's scores of new rows) against the reference scores the model stores.

    The reference is ``model.p_value_reference``: the calibration scores
    when the model has them, else the training reference scores.  Tests:

    * distribution: Kolmogorov-Smirnov two-sample test of the new scores vs
      the reference scores.  This is the test that the conformal p-values
      of the new rows are uniform, with the reference's own sampling error
      accounted for (a one-sample KS of the p-values against U(0, 1)
      ignores it and raises false alarms once the new rows outnumber the
      reference rows);
    * flag rate: the rows above ``threshold_``, new vs reference, by
      Fisher's exact test (two-sided: a rate gone to 0 is drift too).
      Under no drift the new rows are exchangeable with the reference, so
      a new row is flagged with probability ``(1 + #reference above) / (n +
      1)``; the exact 2x2 test also carries the reference's uncertainty
      about that rate;
    * tails: per quantile of ``tail_quantiles``, :func:`tail_test`, an
      excess of rows far above the reference (``()``: none, the rule
      before the 28-set study of rows needed).

    The section's p-value is Bonferroni's over the tests that ran (``k *
    min``: ``2 min`` without tails).  ``held_out``: whether the reference
    scores are of rows held out of training (:func:`reference_held_out`);
    the tests hold their level only then.
    """
    from scipy import stats

    tail_quantiles = check_tail_quantiles(tail_quantiles)
    ref = np.asarray(model.p_value_reference, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    threshold = float(model.threshold_)
    held_out = reference_held_out(model)
    kind = "calibration scores (held out of training)" if held_out else model.training_scores_kind()
    ks = stats.ks_2samp(ref, scores, method="asymp" if ref.size * scores.size > 10_000 else "auto")
    p_values = conformal_p_values(ref, scores)
    rate = proportion_test(
        int(np.count_nonzero(ref > threshold)), ref.size, int(np.count_nonzero(scores > threshold)), scores.size
    )
    rate["expected_rate"] = (1.0 + rate["reference_count"]) / (ref.size + 1.0)
    rate["ratio"] = rate["new_rate"] / rate["expected_rate"]
    tails = [tail_test(ref, scores, q) for q in tail_quantiles]
    std = float(np.std(ref)) or 1.0
    note = None
    if not held_out:
        note = (
            f"the reference is the {kind}, not held out (the model learned from those rows), so new normal "
            "rows score differently from them; calibrate on held-out clean rows (deepad train --calibration-fraction, "
            "or deepad.drift.recalibrate) for the conformal guarantee"
        )
    if ref.size < 1000:
        spread = np.sqrt(max(rate["expected_rate"] * (1 - rate["expected_rate"]), 1e-12) / ref.size)
        small = (
            f"only {ref.size:,} reference scores: the no-drift flag rate is known to about +-{spread:.1%}, and "
            "a given small reference can be unlucky -- the tests hold at alpha over the draw of the reference, "
            "not for every reference; calibrate on more clean rows for a steadier verdict"
        )
        note = f"{note}; {small}" if note else small
    ps = [float(ks.pvalue), rate["p_value"]] + [t["p_value"] for t in tails]
    return {
        "p_value": float(min(1.0, len(ps) * min(ps))),
        "reference": kind,
        "reference_rows": int(ref.size),
        "held_out": held_out,
        "threshold": threshold,
        "distribution": {
            "test": "ks",
            "statistic": float(ks.statistic),
            "p_value": float(ks.pvalue),
            "median_p_value": float(np.median(p_values)),
            "reference_median": float(np.median(ref)),
            "new_median": float(np.median(scores)),
            "median_shift_std": float((np.median(scores) - np.median(ref)) / std),
        },
        "flag_rate": rate,
        "tails": tails,
        **({"note": note} if note else {}),
    }
