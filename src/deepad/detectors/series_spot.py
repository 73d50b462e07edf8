"""SPOT: streaming peaks-over-threshold (Siffer et al., KDD 2017) -- the adaptive threshold of :mod:`deepad.stream`.

Moved here from :mod:`deepad.stream` unchanged (``deepad.stream.SPOT`` still works); see that module's docstring
for the rule.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPOT"]


class SPOT:
    """Streaming peaks-over-threshold threshold (Siffer et al., KDD 2017), method-of-moments GPD fit.

    ``risk`` is the target probability that a normal score exceeds the
    threshold; ``init_quantile`` sets the tail threshold ``t``.
    """

    def __init__(self, risk: float = 1e-4, init_quantile: float = 0.98):
        if not (0.0 < risk < 1.0):
            raise ValueError(f"risk must be in (0, 1), got {risk}.")
        if not (0.5 <= init_quantile < 1.0):
            raise ValueError(f"init_quantile must be in [0.5, 1), got {init_quantile}.")
        self.risk, self.init_quantile = float(risk), float(init_quantile)
        self.t = self.n = self.n_peaks = self.sum = self.sumsq = None
        self.z = float("inf")
        self.gamma = self.sigma = None

    def initialize(self, scores: np.ndarray) -> "SPOT":
        s = np.asarray(scores, dtype=np.float64)
        s = s[np.isfinite(s)]
        if s.size < 10:
            raise ValueError(f"SPOT needs at least 10 finite initial scores, got {s.size}.")
        self.t = float(np.quantile(s, self.init_quantile))
        peaks = s[s > self.t] - self.t
        self.n, self.n_peaks = int(s.size), int(peaks.size)
        self.sum, self.sumsq = float(peaks.sum()), float((peaks**2).sum())
        self._max_init = float(s.max())
        self._refresh()
        return self

    def _refresh(self) -> None:
        if self.n_peaks < 5:
            # too few peaks to fit a tail: fall back to the largest initial score plus its distance to t
            self.z = self.t + 2.0 * max(self._max_init - self.t, 1e-12)
            return
        m = self.sum / self.n_peaks
        v = self.sumsq / self.n_peaks - m * m
        if not (v > 1e-18 and m > 0):
            self.z = self.t + 2.0 * max(m, 1e-12)
            return
        gamma = 0.5 * (1.0 - m * m / v)
        sigma = 0.5 * m * (m * m / v + 1.0)
        self.gamma, self.sigma = gamma, sigma
        ratio = self.risk * self.n / self.n_peaks
        if abs(gamma) < 1e-8:
            self.z = self.t - sigma * np.log(ratio)
        else:
            self.z = self.t + sigma / gamma * (ratio ** (-gamma) - 1.0)
        self.z = float(max(self.z, self.t))

    def tail_probability(self, s: float) -> float:
        """Estimated probability that a normal score is ``>= s``: ``n_t / n`` up to ``t``, the fitted GPD tail above."""
        frac = self.n_peaks / max(self.n, 1) if self.n_peaks else 1.0 / max(self.n, 1)
        if not np.isfinite(s) or s <= self.t:
            return frac
        if self.gamma is None or self.sigma is None or self.sigma <= 0:
            scale = max(self.z - self.t, 1e-12) / max(np.log(max(frac / self.risk, 1.0 + 1e-12)), 1e-12)
            return frac * float(np.exp(-(s - self.t) / scale))  # exponential tail through z
        y = (s - self.t) / self.sigma
        if abs(self.gamma) < 1e-8:
            return frac * float(np.exp(-y))
        base = 1.0 + self.gamma * y
        return frac * float(base ** (-1.0 / self.gamma)) if base > 0 else 0.0

    def step(self, s: float) -> bool:
        """Process one score; return whether it is an alarm (above the current threshold)."""
        if not np.isfinite(s):
            return False
        if s > self.z:
            return True
        self.n += 1
        if s > self.t:
            e = s - self.t
            self.n_peaks += 1
            self.sum += e
            self.sumsq += e * e
            self._refresh()
        elif self.n_peaks < 5:
            self._refresh()
        return False

    def state(self) -> dict:
        return {
            "risk": self.risk,
            "init_quantile": self.init_quantile,
            "t": self.t,
            "n": self.n,
            "n_peaks": self.n_peaks,
            "sum": self.sum,
            "sumsq": self.sumsq,
            "z": self.z,
            "max_init": getattr(self, "_max_init", None),
        }

    @classmethod
    def from_state(cls, state: dict) -> "SPOT":
        obj = cls(state["risk"], state["init_quantile"])
        obj.t, obj.n, obj.n_peaks = state["t"], state["n"], state["n_peaks"]
        obj.sum, obj.sumsq, obj.z, obj._max_init = state["sum"], state["sumsq"], state["z"], state["max_init"]
        obj._refresh()
        obj.z = state["z"]
        return obj
