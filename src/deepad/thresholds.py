"""Turning anomaly scores into decisions and probabilities.

Scores from different detectors live on different scales (squared errors,
energies, distances).  Everything a user acts on -- a 0/1 label, a p-value, a
probability -- is therefore derived from the *distribution of reference
scores* (normally the training scores), never from the raw scale.  That is
why these helpers all take ``reference_scores``.

The second half is the *threshold rule* of a fitted model -- which of those
thresholds it uses and why, in one sentence -- as ``deepad train`` sets it
and ``deepad info``, the HTML report and the service describe it
(:func:`threshold_rule`, :func:`apply_threshold_rule`, :func:`threshold_reason`,
:func:`describe_threshold`).  These work on any object with ``set_threshold``,
``threshold_method_`` and the fitted score arrays (duck typing), so this
module imports nothing of deepad.
"""

from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np

__all__ = [
    "LongRunVariance",
    "PValueCUSUM",
    "contamination_threshold",
    "fpr_threshold",
    "pot_threshold",
    "conformal_p_values",
    "conformal_p_values_sorted",
    "validate_contamination",
    "THRESHOLD_RULES",
    "threshold_rule",
    "apply_threshold_rule",
    "threshold_reason",
    "flagged_text",
    "conformal_reason",
    "describe_threshold",
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
    from scipy import stats  # here: scipy.stats takes a second to import, and only this fit needs it

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
    return conformal_p_values_sorted(np.sort(np.asarray(reference_scores, dtype=np.float64)), scores)


class LongRunVariance:
    """The AR(1) long-run variance factor ``v = (1 + r) / (1 - r)`` of a stream, ``r`` its lag-1 autocorrelation online.

    For a CUSUM threshold on autocorrelated evidence (``deepad.stream.PValueCUSUM(autocorrelation=True)``): a
    CUSUM's run between false events depends on threshold x slack / variance, so multiplying the threshold by the
    long-run variance factor keeps it near the independent case.  ``r = 1 - E[(x_t - x_{t-1})^2] / (2 Var x)`` from
    running means -- over the first 1,000 points with 50 prior ones at ``r = 0`` and ``Var x = 1`` (the Exp(1) of
    ``-ln p``), then exponentially weighted -- clipped to [0, 0.98].  Differences barely move with a level shift,
    so a drift does not hide itself by looking autocorrelated (benchmarks/drift_cusum.py).
    """

    def __init__(self, state=None):
        self.d2, self.last, self.mu, self.s2, self.n = state if state is not None else (2.0, None, 1.0, 1.0, 0)

    def update(self, x: float) -> float:
        """Take the next value; return the factor ``v`` (1 for independent values)."""
        w = min(self.n + 50.0, 1000.0)
        if self.last is not None:
            self.d2 += ((x - self.last) ** 2 - self.d2) / w
        self.mu += (x - self.mu) / w
        self.s2 += ((x - self.mu) ** 2 - self.s2) / w
        self.last, self.n = x, self.n + 1
        r = min(max(1.0 - self.d2 / (2.0 * max(self.s2, 1e-12)), 0.0), 0.98)
        return (1.0 + r) / (1.0 - r)

    def state(self) -> list:
        return [self.d2, self.last, self.mu, self.s2, self.n]


def conformal_p_values_sorted(sorted_reference: np.ndarray, scores) -> np.ndarray:
    """:func:`conformal_p_values` against a reference already sorted ascending (sorted once, queried many times)."""
    s = np.asarray(scores, dtype=np.float64)
    n_greater_equal = sorted_reference.size - np.searchsorted(sorted_reference, s, side="left")
    return (1.0 + n_greater_equal) / (sorted_reference.size + 1.0)


def smoothed_conformal_p_value(sorted_reference: np.ndarray, score: float, counter: int) -> float:
    """Vovk's smoothed conformal p-value of one score: ``(#{ref > s} + u * (#{ref == s} + 1)) / (n + 1)``.

    Exactly uniform under exchangeability even when scores tie (a flat-lined
    sensor, a square wave: 88-100 % of the reference tied), where the
    conservative p-value of :func:`conformal_p_values_sorted` sits at 1 and
    ``-ln p`` averages far below its no-drift mean of 1.  ``u`` in (0, 1] is
    a deterministic hash of ``counter`` (splitmix64 of the point number), so a
    stream gives the same p-values when replayed or resumed from saved state.
    """
    n = sorted_reference.size
    below_or_tied = int(np.searchsorted(sorted_reference, score, side="right"))
    tied = below_or_tied - int(np.searchsorted(sorted_reference, score, side="left"))
    z = (int(counter) * 0x9E3779B97F4A7C15 + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    u = (((z ^ (z >> 31)) >> 11) + 1) / 2.0**53  # in (0, 1]
    return float((n - below_or_tied + u * (tied + 1)) / (n + 1.0))


def conformal_p_values_columns(sorted_reference: np.ndarray, scores) -> np.ndarray:
    """:func:`conformal_p_values_sorted` per column: reference ``(n, d)``, each column sorted ascending; scores
    ``(m, d)``, column ``j`` ranked against reference column ``j`` (per-column p-values of a multivariate model)."""
    ref = np.asarray(sorted_reference, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    return np.stack([conformal_p_values_sorted(ref[:, j], s[:, j]) for j in range(ref.shape[1])], axis=1)


# --------------------------------------------------------------------------- the threshold rule of a fitted model
#: the rules a model's threshold can be set by at training time
THRESHOLD_RULES = ("contamination", "fpr", "pot")


def threshold_rule(
    threshold: str | None = None,
    *,
    contamination: float | None = None,
    fpr: float | None = None,
    pot_risk: float | None = None,
    calibration_fraction: float = 0.0,
    flag: Callable[[str], str] | None = None,
) -> str:
    """Check a choice of threshold rule and its settings; return the rule's name (contamination, fpr or pot).

    ``threshold`` is the rule (default: ``fpr`` when ``fpr`` is given, else
    ``contamination``); each setting must go with its rule, ``fpr`` and
    ``pot_risk`` lie in (0, 1) and ``calibration_fraction`` in [0, 1).
    ``ValueError`` names the offending setting as ``flag(name)`` spells it
    (default: the parameter name; ``deepad train`` passes its options,
    ``--pot-risk``).
    """
    f = flag or (lambda name: name)
    method = (threshold or ("fpr" if fpr is not None else "contamination")).strip().lower()
    if method not in THRESHOLD_RULES:
        raise ValueError(f"{f('threshold')} must be contamination, fpr or pot, got {threshold!r}.")
    if method != "fpr" and fpr is not None:
        raise ValueError(f"{f('fpr')} goes with {f('threshold')} fpr, not {f('threshold')} {method}.")
    if method != "pot" and pot_risk is not None:
        raise ValueError(f"{f('pot_risk')} goes with {f('threshold')} pot, not {f('threshold')} {method}.")
    if method != "contamination" and contamination is not None:
        raise ValueError(
            f"{f('contamination')} goes with {f('threshold')} contamination; {f('threshold')} {method} "
            f"sets the threshold without a contamination guess."
        )
    if fpr is not None and not 0.0 < fpr < 1.0:
        raise ValueError(f"{f('fpr')} must be in (0, 1), got {fpr}.")
    if pot_risk is not None and not 0.0 < pot_risk < 1.0:
        raise ValueError(f"{f('pot_risk')} must be in (0, 1), got {pot_risk}.")
    if not (math.isfinite(calibration_fraction) and 0.0 <= calibration_fraction < 1.0):
        raise ValueError(f"{f('calibration_fraction')} must be in [0, 1), got {calibration_fraction}.")
    return method


def apply_threshold_rule(
    model, method: str, *, fpr: float | None = None, pot_risk: float | None = None, default: bool = False
) -> None:
    """Set a fitted model's threshold by ``method`` and store the rule and its reason in ``model.threshold_method_``.

    ``fpr`` (default 0.01) and ``pot_risk`` (default 0.001) are measured on
    the calibration scores when the model has them, else on the training
    scores; ``contamination`` keeps the model's contamination threshold (the one it was fitted with, or
    last set with ``set_threshold(contamination=...)``), or sets it back from the model's ``contamination``.
    ``default``: no rule was chosen (the reason says so).  The stored entry
    also says which scores the threshold is taken on (``scores``) and how
    many training rows it flags (``flagged`` of ``training_rows``), so the
    reason, ``labels_`` and what ``deepad train`` and ``deepad info`` print
    agree.
    """
    calibrated = getattr(model, "calibration_scores_", None) is not None
    n_ref = len(model.calibration_scores_) if calibrated else len(model.decision_scores_)
    if method == "fpr":
        value, key = (0.01 if fpr is None else fpr), "fpr"
        model.set_threshold(fpr=value)
    elif method == "pot":
        value, key = (1e-3 if pot_risk is None else pot_risk), "pot_risk"
        model.set_threshold(pot_risk=value)
    else:  # the contamination the threshold was last set with (set_threshold may have changed it since fit)
        current = dict(getattr(model, "threshold_method_", None) or {})
        if current.get("method") in ("fpr", "pot_risk", "value"):
            value = float(model.contamination)
            model.set_threshold(contamination=value)
        else:  # contamination, or a detector's own rule (ConformalKNN's conformal rate), kept as it is
            value = float(current.get("contamination", model.contamination))
        key = "contamination"
        n_ref = len(model.decision_scores_)
    reference = "calibration" if calibrated and key != "contamination" else "training"
    kind = getattr(model, "training_scores_kind", None)
    scores = kind() if callable(kind) else "training scores"
    labels = getattr(model, "labels_", None)
    n_train = len(model.decision_scores_)
    flagged = None if labels is None else int(np.asarray(labels).sum())
    model.threshold_method_ = {
        **model.threshold_method_,
        "reference": reference,
        "reference_rows": int(n_ref),
        "scores": scores,
        "training_rows": int(n_train),
        **({} if flagged is None else {"flagged": flagged}),
    }
    model.threshold_method_["reason"] = threshold_reason(
        key,
        value,
        reference=reference,
        n_reference=n_ref,
        default=default,
        scores=scores,
        flagged=flagged,
        n_training=n_train,
    )


def _percentile(q: float) -> str:
    """``0.9`` -> ``"90th percentile"``, ``0.999`` -> ``"99.9th percentile"``, ``0.5`` -> ``"median"``."""
    p = round(100.0 * q, 6)
    if p == 50:
        return "median"
    text = f"{p:g}"
    if p != int(p):
        return f"{text}th percentile"
    n = int(p)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} percentile"


def flagged_text(flagged: int, n_training: int) -> str:
    """``"it flags 500 of 5,000 training rows (10.00 %)"``: the count ``labels_`` holds, in words."""
    return f"it flags {flagged:,} of {n_training:,} training rows ({flagged / max(n_training, 1):.2%})"


def threshold_reason(
    method: str,
    value: float,
    *,
    reference: str = "training",
    n_reference: int | None = None,
    default: bool = False,
    scores: str | None = None,
    flagged: int | None = None,
    n_training: int | None = None,
) -> str:
    """One sentence on what a threshold rule is, what it flags, and when it is the right choice.

    ``scores`` names the scores the contamination quantile is taken on
    (e.g. ``"leave-one-out training scores"``); ``flagged`` of
    ``n_training`` is the number of training rows above the threshold
    (``labels_.sum()``), stated when given.
    """
    rows = f" ({n_reference:,} rows)" if n_reference else ""
    count = f"; {flagged_text(flagged, n_training)}" if flagged is not None and n_training else ""
    if method == "contamination":
        why = "the default, as no other rule was chosen; " if default else ""
        return (
            f"{why}the threshold is the {_percentile(1.0 - value)} of the {scores or 'training scores'} "
            f"(contamination {value:g}, PyOD's rule){count}: right when about {value:.2%} of the data is "
            f"anomalous; it gives no false-positive-rate guarantee."
        )
    if method == "fpr":
        guarantee = (
            f"held out of training{rows}, so on exchangeable normal data at most {value:g} of normal rows "
            f"are flagged (conformal guarantee)"
            if reference == "calibration"
            else f"in-sample{rows}, so slightly optimistic; hold out rows with --calibration-fraction for the "
            f"conformal guarantee"
        )
        return (
            f"target false-positive rate {value:g}: the threshold is the conformal quantile of the {reference} "
            f"scores, {guarantee}{count}."
        )
    if method == "pot_risk":
        return (
            f"extreme-value tail fit (peaks over threshold, SPOT; Siffer et al., KDD 2017) of the {reference} "
            f"scores{rows} at risk {value:g}: needs no contamination guess; about {value:g} of normal rows are "
            f"expected above it{count}."
        )
    if method == "value":
        return f"fixed by hand at {value:g} score units{count}."
    return f"{method} = {value:g}"


def conformal_reason(rate: float) -> str:
    """The reason of a series detector's own conformal threshold (ConformalKNN: an alert is a rare window)."""
    return (
        f"conformal: an alert is a point whose window is rarer than {rate:g} of the windows seen so far "
        f"(false-alarm probability {rate:g} on normal data)."
    )


def describe_threshold(model) -> str:
    """``threshold_method_["reason"]`` when training stored one, else a description of the rule."""
    info = dict(getattr(model, "threshold_method_", None) or {})
    if info.get("reason"):
        return str(info["reason"])
    method = str(info.get("method", "contamination"))
    value = info.get(method, getattr(model, "contamination", float("nan")))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return json.dumps(info, default=str)
    if method == "conformal":
        return conformal_reason(value)
    reference = str(info.get("reference", "training"))
    return threshold_reason(method, value, reference=reference, scores=info.get("scores"))


class PValueCUSUM:
    """Online score drift: a two-sided CUSUM (Page, 1954) of ``x = -ln p`` over the stream's conformal p-values.

    Under no drift each point's conformal p-value against the reference
    scores is uniform, so ``x`` is Exp(1) with mean exactly 1: this is the
    Page-Hinkley test with the in-control mean known rather than
    estimated.  ``up = max(0, up + x - 1 - slack)`` grows when scores creep
    up (p-values shrink, the flag rate rises); ``down = max(0, down + 1 - x -
    slack)`` when they sink (p-values near 1, the flag rate goes to 0).  A
    side crossing ``threshold`` starts a drift episode -- one event -- which
    ends when that side's statistic is back at 0 (it is capped at twice the
    threshold, so that happens soon after the drift stops).
    Defaults ``slack=0.5``, ``threshold=12``: on exchangeable normal points
    the median run between false events is about 8,000 points (simulated);
    a shift that doubles ``x``'s mean is found after about 24 points (12 / 0.5) on average.  With
    autocorrelated scores (series windows, ``smoothing > 1``) ``autocorrelation=True`` (StreamScorer's) multiplies
    the threshold by their long-run variance factor (:class:`~deepad.thresholds.LongRunVariance`).  O(1) per point.
    """

    def __init__(self, threshold: float = 12.0, slack: float = 0.5, autocorrelation: bool = False):
        if not (threshold > 0 and slack >= 0):
            raise ValueError(f"threshold must be > 0 and slack >= 0, got {threshold}, {slack}.")
        self.threshold, self.slack = float(threshold), float(slack)
        self.autocorrelation = LongRunVariance() if autocorrelation else None
        self.up = self.down = 0.0
        self.up_on = self.down_on = False  # in a drift episode (one event per episode)
        self.n = self.n_events = 0

    def step(self, p: float) -> str | None:
        """Process one p-value; return ``"up"`` or ``"down"`` when a drift episode starts, else ``None``."""
        x = float(-np.log(max(float(p), 1e-300)))
        self.n += 1
        h = self.threshold * (self.autocorrelation.update(x) if self.autocorrelation is not None else 1.0)
        cap = 2.0 * h  # so the statistic comes back down soon after a long drift ends
        self.up = min(cap, max(0.0, self.up + x - 1.0 - self.slack))
        self.down = min(cap, max(0.0, self.down + 1.0 - x - self.slack))
        side = None
        for name in ("up", "down"):
            value, on = getattr(self, name), getattr(self, f"{name}_on")
            if on and value == 0.0:
                setattr(self, f"{name}_on", False)  # the episode is over: the evidence has cleared
            elif not on and value > h:
                setattr(self, f"{name}_on", True)
                side = side or name
                self.n_events += 1
        return side

    def state(self) -> dict:
        state = {k: getattr(self, k) for k in ("threshold", "slack", "up", "down", "up_on", "down_on", "n", "n_events")}
        return {**state, "autocorrelation": None if self.autocorrelation is None else self.autocorrelation.state()}

    @classmethod
    def from_state(cls, state: dict) -> "PValueCUSUM":
        obj = cls(state["threshold"], state["slack"])
        obj.autocorrelation = (
            None if state.get("autocorrelation") is None else LongRunVariance(state["autocorrelation"])
        )
        obj.up, obj.down = float(state["up"]), float(state["down"])
        obj.up_on, obj.down_on = bool(state["up_on"]), bool(state["down_on"])
        obj.n, obj.n_events = int(state["n"]), int(state["n_events"])
        return obj
