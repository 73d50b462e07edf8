"""Anomaly likelihood: turn a stream of raw anomaly scores into few, confident alerts (HTM's post-processing).

Paper: Ahmad, Lavin, Purdy & Agha, "Unsupervised real-time anomaly detection
for streaming data", Neurocomputing 262 (2017), section 4.2 -- the step that
lifts Numenta HTM on NAB; the reference code is nupic's
``nupic/algorithms/anomaly_likelihood.py`` (also in htm.core).

Why: a raw score says how unusual one point is; most series have bursts of
moderately high raw scores all the time (noise, a predictable pattern the
model has not learned yet), and a fixed cut-off on the raw score alarms on
them.  The likelihood asks instead whether the *recent* scores are unusual
*for this stream's own score distribution*, so it alarms once on a change
and stays quiet on the stream's usual level of noise.

Scoring rule (per point, O(1)): ``m_t`` = mean of the last ``short_window``
raw scores; ``mu, sigma`` = mean and standard deviation of the last
``long_window`` values of ``m`` (a Gaussian estimate of the recent score
distribution; ``sigma`` floored at ``min_std`` and at ``rel_std`` times
``|mu|``, refreshed every ``reestimation`` points as in nupic), taken
*before* ``m_t`` joins them; the tail probability is ``q_t = Q((m_t - mu) /
sigma)`` (``Q`` the standard normal upper tail) and the likelihood ``L_t = 1 -
q_t``.  An alarm is ``q_t < epsilon`` (likelihood above ``1 - epsilon``); the
log score reported is ``-log10(q_t + 1e-10) / 10`` in [0, 1], as nupic's
``computeLogLikelihood``.  Until the long window holds ``min_history``
values ``q_t = 0.5`` (no alarm): the warm-up that NAB's probationary period
allows.

Changes from nupic, each for a failure seen on NAB (``benchmarks/results/nab-v2``):

* one-sided tail: a *low* recent mean is not an anomaly (nupic reflects it);
* ``alarm_update``: what a mean whose ``q_t`` is below ``epsilon`` does to the
  long window -- ``"learn"`` joins it (nupic), ``"skip"`` leaves it out,
  ``"clip"`` joins it at the alarm level ``mu + z_eps sigma``, so an incident
  cannot widen the distribution that must flag the next one (repeated
  spikes) and a level shift is still learnt, slowly;
* sums are running sums over ring buffers, so an update is O(1) instead of
  nupic's O(long_window) re-estimation.

State is plain numbers and two float arrays (:meth:`state` / :meth:`from_state`),
saved and resumed with :class:`deepad.stream.StreamScorer`'s state.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri as _ndtri

__all__ = ["AnomalyLikelihood", "log_likelihood", "LikelihoodStreamMixin"]

_SQRT2 = math.sqrt(2.0)


def log_likelihood(q: float) -> float:
    """nupic's log score of a tail probability: ``-log10(q + 1e-10) / 10`` clipped to [0, 1]."""
    return float(min(max(-math.log10(q + 1e-10) / 10.0, 0.0), 1.0))


class AnomalyLikelihood:
    """Running Gaussian estimate of the recent score distribution; the tail probability of the short-window mean.

    See the module docstring for the rule.  ``update(score)`` returns ``q_t``
    (the probability, under the estimate, of a recent mean at least this
    high); ``alarm(q)`` is ``q < epsilon``.
    """

    _SCALARS = (
        "short_window",
        "long_window",
        "epsilon",
        "min_std",
        "rel_std",
        "reestimation",
        "min_history",
        "alarm_update",
    )

    def __init__(
        self,
        short_window: int = 10,
        long_window: int = 8640,
        *,
        epsilon: float = 1e-5,
        min_std: float = 1e-6,
        rel_std: float = 0.0,
        reestimation: int = 1,
        min_history: int = 100,
        alarm_update: str = "learn",
    ):
        for name, v, low in (
            ("short_window", short_window, 1),
            ("long_window", long_window, 2),
            ("reestimation", reestimation, 1),
            ("min_history", min_history, 2),
        ):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")
        if min_history > long_window:
            raise ValueError(f"min_history ({min_history}) must be at most long_window ({long_window}).")
        if not (0.0 < epsilon < 0.5):
            raise ValueError(f"epsilon must be in (0, 0.5), got {epsilon!r}.")
        if not (min_std > 0.0 and rel_std >= 0.0):
            raise ValueError(f"min_std must be > 0 and rel_std >= 0, got {min_std!r}, {rel_std!r}.")
        self.short_window, self.long_window = int(short_window), int(long_window)
        self.epsilon, self.min_std, self.rel_std = float(epsilon), float(min_std), float(rel_std)
        self.reestimation, self.min_history = int(reestimation), int(min_history)
        if alarm_update not in ("learn", "skip", "clip"):
            raise ValueError(f"alarm_update must be 'learn', 'skip' or 'clip', got {alarm_update!r}.")
        self.alarm_update = alarm_update
        self._z_eps = float(-_ndtri(self.epsilon))  # the z of the alarm level: Q(z_eps) = epsilon
        self._short = np.zeros(self.short_window)
        self._long = np.zeros(self.long_window)
        self.n_short = self.n_long = 0  # values ever pushed into each ring buffer
        self.short_sum = self.long_sum = self.long_sumsq = 0.0
        self.mu, self.sigma = 0.0, float("inf")
        self.n_updates = 0

    # ------------------------------------------------------------------ arithmetic
    def _push_long(self, m: float) -> None:
        pos = self.n_long % self.long_window
        if self.n_long >= self.long_window:
            old = float(self._long[pos])
            self.long_sum -= old
            self.long_sumsq -= old * old
        self._long[pos] = m
        self.long_sum += m
        self.long_sumsq += m * m
        self.n_long += 1
        if self.n_long % self.long_window == 0:  # refresh the running sums exactly, against rounding drift
            self.long_sum, self.long_sumsq = float(self._long.sum()), float((self._long**2).sum())

    def _short_mean(self, score: float) -> float:
        pos = self.n_short % self.short_window
        if self.n_short >= self.short_window:
            self.short_sum -= float(self._short[pos])
        self._short[pos] = score
        self.short_sum += score
        self.n_short += 1
        if self.n_short % self.short_window == 0:
            self.short_sum = float(self._short.sum())
        return self.short_sum / min(self.n_short, self.short_window)

    def _estimate(self) -> None:
        n = min(self.n_long, self.long_window)
        if n < self.min_history:
            self.mu, self.sigma = 0.0, float("inf")
            return
        mu = self.long_sum / n
        var = max(self.long_sumsq / n - mu * mu, 0.0)
        self.mu, self.sigma = mu, max(math.sqrt(var), self.min_std, self.rel_std * abs(mu))

    def tail(self, m: float) -> float:
        """``Q((m - mu) / sigma)`` under the current estimate; 0.5 before ``min_history`` values."""
        if not math.isfinite(self.sigma):
            return 0.5
        return 0.5 * math.erfc((m - self.mu) / (self.sigma * _SQRT2))

    def initialize(self, scores) -> "AnomalyLikelihood":
        """Fill the buffers with reference scores (e.g. the training scores) in time order, without alarming."""
        for s in np.asarray(scores, dtype=np.float64).ravel().tolist():
            if math.isfinite(s):
                self._push_long(self._short_mean(s))
        self._estimate()
        return self

    def update(self, score: float) -> float:
        """One raw score in; its short-window mean's tail probability ``q_t`` out (see the module docstring)."""
        score = float(score)
        if not math.isfinite(score):
            return float("nan")
        if self.n_updates % self.reestimation == 0 or not math.isfinite(self.sigma):
            self._estimate()
        m = self._short_mean(score)
        q = self.tail(m)
        if not q < self.epsilon or self.alarm_update == "learn":
            self._push_long(m)
        elif self.alarm_update == "clip":  # the incident joins the estimate at the alarm level, not beyond
            self._push_long(self.mu + self._z_eps * self.sigma)
        self.n_updates += 1
        return q

    def alarm(self, q: float) -> bool:
        return bool(q < self.epsilon)

    @property
    def threshold(self) -> float:
        """The alarm level on the log score: ``-log10(epsilon) / 10``."""
        return -math.log10(self.epsilon) / 10.0

    # ------------------------------------------------------------------ state
    def settings(self) -> dict:
        return {k: getattr(self, k) for k in self._SCALARS}

    def state(self) -> tuple[dict, dict]:
        """``(json_state, arrays)``: the settings and counters, and the two ring buffers."""
        js = {
            **self.settings(),
            **{
                k: getattr(self, k)
                for k in ("n_short", "n_long", "short_sum", "long_sum", "long_sumsq", "mu", "sigma", "n_updates")
            },
        }
        js["sigma"] = None if not math.isfinite(self.sigma) else self.sigma
        return js, {"short": self._short.copy(), "long": self._long.copy()}

    @classmethod
    def from_state(cls, js: dict, arrays: dict) -> "AnomalyLikelihood":
        obj = cls(**{k: js[k] for k in cls._SCALARS})
        obj._short = np.asarray(arrays["short"], dtype=np.float64).copy()
        obj._long = np.asarray(arrays["long"], dtype=np.float64).copy()
        obj.n_short, obj.n_long, obj.n_updates = int(js["n_short"]), int(js["n_long"]), int(js["n_updates"])
        obj.short_sum, obj.long_sum, obj.long_sumsq = (
            float(js["short_sum"]),
            float(js["long_sum"]),
            float(js["long_sumsq"]),
        )
        obj.mu = float(js["mu"])
        obj.sigma = float("inf") if js["sigma"] is None else float(js["sigma"])
        return obj


def check_range_tolerance(tol) -> None:
    """HTM's range check setting: ``None`` (off) or a number >= 0 (a share of the range seen); else ValueError."""
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0):
        raise ValueError(f"range_tolerance must be None or a number >= 0, got {tol!r}.")


class LikelihoodStreamMixin:
    """For a detector whose streams alarm by the likelihood: hyper-parameters ``short_window``, ``long_window``,
    ``epsilon``, ``alarm_update`` and ``range_tolerance`` become the :class:`deepad.stream.StreamScorer` rules."""

    def _stream_likelihood(self) -> dict:
        """The :class:`AnomalyLikelihood` settings a stream of this detector uses (validated here)."""
        lw = self.long_window
        lk = dict(
            short_window=self.short_window,
            long_window=lw,
            epsilon=self.epsilon,
            alarm_update=self.alarm_update,
            min_history=min(100, int(lw)) if isinstance(lw, (int, np.integer)) and not isinstance(lw, bool) else 100,
        )
        AnomalyLikelihood(**lk)  # raises a clear ValueError on a bad setting
        check_range_tolerance(self.range_tolerance)
        return lk
