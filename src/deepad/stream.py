"""Streaming scoring: one point (or a small batch) at a time, with adaptive thresholds and alarm suppression.

:class:`StreamScorer` wraps a fitted detector and keeps everything a stream
needs between calls:

* the last ``window - 1`` raw points (window detectors score the window
  ending at each new point, so a stream gives exactly the scores
  ``decision_function`` gives on the whole series) -- or, for *stateful*
  detectors (those whose ``_stream_state()`` is not ``None``, e.g.
  ``GRUForecaster(stateful=True)``), the detector's own recurrent state,
  advanced by ``_stream_scores(state, rows)`` at O(1) cost per point;
* the last ``smoothing`` raw scores -- the reported score is their mean,
  which turns a single noisy residual into evidence accumulated over a few
  steps (as HTM's anomaly likelihood does; Ahmad et al., Neurocomputing 2017);
* the threshold state: streaming peaks-over-threshold (SPOT, Siffer et al.,
  "Anomaly detection in streams with extreme value theory", KDD 2017).  An
  initial high quantile ``t`` of the training scores splits off the tail;
  excesses over ``t`` follow a generalised Pareto distribution (GPD), and the
  alarm threshold is ``z = t + sigma/gamma * ((risk * n / n_t)^(-gamma) - 1)``.
  Every new score that is not an alarm updates the state (a score between
  ``t`` and ``z`` is a new peak), so the threshold adapts to the stream.  The
  GPD is fitted by the method of moments from running sums of the peaks,
  an O(1) update per point (the paper refits by Grimshaw's maximum
  likelihood, which costs O(peaks) per peak);
* alarm suppression, so one incident raises one alert: after an alert,
  alarms are suppressed for ``refractory`` points and, with ``rearm > 0``,
  until the score has stayed at or below the threshold for ``rearm``
  consecutive points -- the incident is over.  The second rule is what
  makes suppression independent of the sampling rate: a fixed refractory
  long enough to silence an incident in 5-minute data (300 points, 25
  hours) also silences the *next* incident in hourly data (see
  ``benchmarks/results/nab-heldout``).

``threshold="fixed"`` uses the detector's own ``threshold_`` instead of SPOT.

With ``drift=True`` the scorer also watches for *score drift* -- scores
creeping up or sinking as a whole, not single alarms: a two-sided CUSUM
(:class:`PValueCUSUM`) on each point's conformal p-value against the
reference scores, whose mean under no drift is known exactly.  Its events
come in :attr:`StreamUpdate.drift_events`; its state is saved and resumed
with the stream's.

Every update also reports a *unit score* in [0, 1] (NAB's score format):
``-log10(P) / 10`` where ``P`` is the estimated probability that a normal
score is at least this high -- the GPD tail of SPOT above ``t`` (``n_t / n``
below it), or the conformal p-value against the training scores with a
fixed threshold -- so one cut-off on unit scores means the same rarity in
every stream.  Detectors whose scores already are in [0, 1]
(``_unit_scores = True``) report them unchanged.

State is saved as a directory: the detector (``detector/``, see
:mod:`deepad.persistence`), ``stream.json`` (settings, threshold state,
counters) and ``stream.npz`` (the point and score buffers), loaded with
``allow_pickle=False`` -- no pickle anywhere.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepad.thresholds import LongRunVariance, conformal_p_values_sorted

__all__ = [
    "StreamScorer",
    "StreamUpdate",
    "SPOT",
    "PValueCUSUM",
    "default_threshold",
    "is_series_detector",
    "series_scores",
]


def is_series_detector(model) -> bool:
    """Whether ``model`` scores rows as a time series (a ``window`` or a stream state), not as exchangeable rows."""
    return hasattr(model, "window") or callable(getattr(model, "_stream_state", None))


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


@dataclass
class StreamUpdate:
    """What :meth:`StreamScorer.update` returns for a batch of new points (one entry per point)."""

    scores: np.ndarray  #: the (smoothed) anomaly score; NaN until the first full window
    thresholds: np.ndarray  #: the threshold each score was compared with
    alarms: np.ndarray  #: score above the threshold
    alerts: np.ndarray  #: alarms that survive suppression: one per incident
    latency_s: float  #: wall time of this call
    unit_scores: np.ndarray | None = None  #: the score as a rarity in [0, 1] (see the module docstring)
    suppressed: np.ndarray | None = None  #: an alarm here would not be an alert (refractory, or an open incident)
    #: the probability, as the alert rule estimates it, that a normal point scores at least this high: below the
    #: alert level (SPOT's ``risk``; ConformalKNN's ``contamination``) exactly where the score is above the threshold
    p_values: np.ndarray | None = None
    #: with ``drift=True``: the drift events of this batch, ``{"index", "direction" ("up": scores rose), "points"}``
    drift_events: list | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def records(self, timestamps) -> list[dict]:
        """One JSON-able record per point, ``{"timestamp", "score", "threshold", "alarm", "alert"}``.

        What ``deepad stream`` prints per line and the service's ``.../stream``
        endpoint answers per row; ``timestamps`` (one per point) pass through
        as given.  ``score`` and ``threshold`` are ``None`` where not finite
        (before the first full window).
        """
        return [
            {
                "timestamp": timestamps[i],
                "score": _finite(self.scores[i]),
                "threshold": _finite(self.thresholds[i]),
                "alarm": bool(self.alarms[i]),
                "alert": bool(self.alerts[i]),
            }
            for i in range(len(self.scores))
        ]


class StreamScorer:
    """Score a stream point by point with a fitted detector; see the module docstring.

    Parameters
    ----------
    detector:
        a fitted deepad detector; window detectors (with a ``window``
        attribute) get their history from the stream.
    threshold:
        ``"spot"`` (adaptive, default) or ``"fixed"`` (``detector.threshold_``).
    risk, init_quantile:
        SPOT settings.
    refractory:
        points after an alert during which alarms are suppressed.
    rearm:
        with ``rearm > 0``, alarms stay suppressed after an alert (and after
        ``refractory``) until the score has been at or below the threshold
        for ``rearm`` consecutive points: one alert per incident, however
        long the incident lasts.  0: ``refractory`` alone.
    smoothing:
        the reported score is the mean of the last ``smoothing`` raw scores.
    drift:
        also watch for score drift: :class:`PValueCUSUM` on each point's
        conformal p-value against the reference scores; events are in
        :attr:`StreamUpdate.drift_events` and saved with the state.
    """

    def __init__(
        self,
        detector,
        *,
        threshold: str = "spot",
        risk: float = 1e-4,
        init_quantile: float = 0.98,
        refractory: int = 0,
        smoothing: int = 1,
        rearm: int = 0,
        drift: bool = False,
    ):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(detector, "decision_scores_")
        if threshold not in ("spot", "fixed"):
            raise ValueError(f"threshold must be 'spot' or 'fixed', got {threshold!r}.")
        for name, v in (("refractory", refractory), ("smoothing", smoothing), ("rearm", rearm)):
            low = 1 if name == "smoothing" else 0
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")
        self.detector = detector
        self.threshold = threshold
        self.refractory = int(refractory)
        self.smoothing = int(smoothing)
        self.rearm = int(rearm)
        self.quiet_run = -1  # points in a row at/below the threshold since the last alert; -1: armed
        self._state = detector._stream_state() if hasattr(detector, "_stream_state") else None
        self.context = 0 if self._state is not None else max(int(getattr(detector, "window", 1)) - 1, 0)
        self.n_features = int(detector.n_features_in_)
        self._points = np.empty((0, self.n_features))
        self._recent = deque(maxlen=self.smoothing)
        self.n_seen = 0
        self.n_alerts = 0
        self.cooldown = 0
        self.total_latency_s = 0.0
        self.n_scored = 0
        self.spot = None
        reference = _moving_average(np.asarray(detector.p_value_reference, dtype=np.float64), self.smoothing)
        self._sorted_reference = np.sort(reference[np.isfinite(reference)])
        if threshold == "spot":
            self.spot = SPOT(risk, init_quantile).initialize(reference)
        self.drift = PValueCUSUM(autocorrelation=True) if drift else None  # issue 20: drift_cusum.py

    # ------------------------------------------------------------------ streaming
    def prime(self, history) -> "StreamScorer":
        """Fill the point buffer (e.g. with the end of the training series) without scoring or alarming."""
        H = self._validate(history)
        if self._state is not None:
            # a recurrent state runs through the history; a detector with a memory of windows (which
            # already holds the training windows) takes only the context, via its own _stream_prime
            prime = getattr(self.detector, "_stream_prime", None)
            if prime is not None:
                prime(self._state, H)
            else:
                self.detector._stream_scores(self._state, H)
        self._points = np.vstack([self._points, H])[-self.context :] if self.context else self._points
        return self

    def update(self, points) -> StreamUpdate:
        """Score one point (1-D, length n_features) or a batch of rows, in arrival order."""
        start, cpu_start = time.perf_counter(), time.process_time()
        P = self._validate(points)
        k = P.shape[0]
        if self._state is not None:
            raw = np.asarray(self.detector._stream_scores(self._state, P), dtype=np.float64)
        else:
            buf = np.vstack([self._points, P]) if self.context else P
            n_ready = buf.shape[0] - self.context  # rows of buf whose full window is available
            raw = np.full(k, np.nan)
            if n_ready > 0:
                have = min(n_ready, k)
                raw[k - have :] = self.detector.decision_function(buf[buf.shape[0] - have - self.context :])[-have:]
            self._points = buf[-self.context :] if self.context else self._points
        scores, thresholds, units, pvals = (
            np.full(k, np.nan),
            np.full(k, np.nan),
            np.full(k, np.nan),
            np.full(k, np.nan),
        )
        native_unit = bool(getattr(self.detector, "_unit_scores", False))
        alarms, alerts, suppressed = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool), np.zeros(k, dtype=bool)
        events = [] if self.drift is not None else None
        for i in range(k):
            if not np.isfinite(raw[i]):
                continue
            self._recent.append(float(raw[i]))
            s = sum(self._recent) / len(self._recent)
            scores[i] = s
            if self.drift is not None:
                ref = self._sorted_reference
                side = self.drift.step(float(conformal_p_values_sorted(ref, s)))
                if side is not None:
                    events.append({"index": i, "direction": side, "points": self.n_seen + i + 1})
            if native_unit:  # the score is -log10(p) / 10 of the detector's own p-value (ConformalKNN)
                units[i] = min(max(s, 0.0), 1.0)
                pvals[i] = 10.0 ** (-10.0 * units[i])
            if self.spot is not None:
                thresholds[i] = self.spot.z
                if not native_unit:
                    pvals[i] = self.spot.tail_probability(s)
                    units[i] = _unit(pvals[i])
                alarm = self.spot.step(s)
            else:
                if not native_unit:
                    ref = self._sorted_reference
                    pvals[i] = conformal_p_values_sorted(ref, s)
                    units[i] = _unit(pvals[i])
                thresholds[i] = float(self.detector.threshold_)
                alarm = s > thresholds[i]
            alarms[i] = alarm
            if self.quiet_run >= 0:  # an incident is open: count the quiet points that close it
                self.quiet_run = 0 if alarm else self.quiet_run + 1
            if self.cooldown > 0:
                self.cooldown -= 1
                suppressed[i] = True
            elif self.quiet_run >= 0 and self.quiet_run < self.rearm:
                suppressed[i] = True
            else:
                self.quiet_run = -1
                if alarm:
                    alerts[i] = True
                    self.n_alerts += 1
                    self.cooldown = self.refractory
                    self.quiet_run = 0 if self.rearm else -1
        self.n_seen += k
        elapsed = time.perf_counter() - start
        self.total_latency_s += elapsed
        self.total_cpu_s = getattr(self, "total_cpu_s", 0.0) + (time.process_time() - cpu_start)
        self.n_scored += k
        return StreamUpdate(scores, thresholds, alarms, alerts, elapsed, units, suppressed, pvals, events)

    @property
    def latency_per_point_s(self) -> float:
        """Mean wall time per point over all :meth:`update` calls so far."""
        return self.total_latency_s / self.n_scored if self.n_scored else float("nan")

    @property
    def cpu_per_point_s(self) -> float:
        """Mean CPU time of this process per point over all :meth:`update` calls so far (wall time minus waiting
        for a busy machine's cores)."""
        return getattr(self, "total_cpu_s", 0.0) / self.n_scored if self.n_scored else float("nan")

    def _validate(self, points) -> np.ndarray:
        arr = np.asarray(points, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise ValueError(f"points must have {self.n_features} values per row, got shape {np.shape(points)}.")
        if not np.isfinite(arr).all():
            raise ValueError(
                "points contain NaN or infinity; impute gaps before streaming (see deepad.data.series.regularize)."
            )
        return arr

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Save detector + stream state to directory ``path`` (JSON + arrays, no pickle)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.detector.save(path / "detector")
        state = {
            "format": "deepad-stream",
            "version": 1,
            "threshold": self.threshold,
            "refractory": self.refractory,
            "smoothing": self.smoothing,
            "rearm": self.rearm,
            "quiet_run": self.quiet_run,
            "n_seen": self.n_seen,
            "n_alerts": self.n_alerts,
            "cooldown": self.cooldown,
            "total_latency_s": self.total_latency_s,
            "n_scored": self.n_scored,
            "spot": self.spot.state() if self.spot is not None else None,
            "drift": self.drift.state() if self.drift is not None else None,
        }
        (path / "stream.json").write_text(json.dumps(state, indent=2))
        state_arrays = {f"state_{k}": np.asarray(v) for k, v in (self._state or {}).items()}
        np.savez(
            path / "stream.npz",
            points=self._points,
            recent=np.asarray(self._recent, dtype=np.float64),
            sorted_reference=self._sorted_reference,
            **state_arrays,
        )

    @classmethod
    def load(cls, path) -> "StreamScorer":
        """Resume a stream saved with :meth:`save`."""
        import deepad

        path = Path(path)
        state_file = path / "stream.json"
        if not state_file.exists():
            raise FileNotFoundError(f"{state_file} not found; {path} is not a saved stream.")
        state = json.loads(state_file.read_text())
        if state.get("format") != "deepad-stream":
            raise ValueError(f"{state_file} is not a deepad stream state.")
        detector = deepad.load(path / "detector")
        obj = cls.__new__(cls)
        obj.detector, obj.threshold = detector, state["threshold"]
        obj.refractory, obj.smoothing = int(state["refractory"]), int(state["smoothing"])
        obj.rearm, obj.quiet_run = int(state.get("rearm", 0)), int(state.get("quiet_run", -1))
        obj._state = detector._stream_state() if hasattr(detector, "_stream_state") else None
        obj.context = 0 if obj._state is not None else max(int(getattr(detector, "window", 1)) - 1, 0)
        obj.n_features = int(detector.n_features_in_)
        with np.load(path / "stream.npz", allow_pickle=False) as arrays:
            obj._points = arrays["points"].reshape(-1, obj.n_features)
            obj._recent = deque(arrays["recent"].tolist(), maxlen=obj.smoothing)
            obj._sorted_reference = arrays["sorted_reference"]
            if obj._state is not None:
                obj._state = {k: arrays[f"state_{k}"].copy() for k in obj._state}
        for key in ("n_seen", "n_alerts", "cooldown", "n_scored"):
            setattr(obj, key, int(state[key]))
        obj.total_latency_s = float(state["total_latency_s"])
        obj.spot = SPOT.from_state(state["spot"]) if state["spot"] is not None else None
        drift = state.get("drift")  # absent in states saved before issue 20
        obj.drift = PValueCUSUM.from_state(drift) if drift is not None else None
        return obj


def default_threshold(detector, fixed: bool = False) -> str:
    """The stream threshold a detector gets: ``"fixed"`` when asked or when it calibrates its own (e.g.
    ConformalKNN's conformal rarity, ``_stream_threshold = "fixed"``), else adaptive ``"spot"``."""
    return "fixed" if fixed or getattr(detector, "_stream_threshold", "spot") == "fixed" else "spot"


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _unit(p: float) -> float:
    """Rarity in [0, 1]: ``-log10(p) / 10`` (p = 1e-10 or rarer gives 1)."""
    return float(min(max(-np.log10(max(p, 1e-300)) / 10.0, 0.0), 1.0))


def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    """Trailing mean of the last ``k`` values (fewer at the start), as the stream computes it."""
    if k <= 1:
        return x
    c = np.cumsum(np.r_[0.0, x])
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(idx - k, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def series_scores(
    model,
    values: np.ndarray,
    *,
    risk: float = 1e-4,
    refractory: int = 0,
    rearm: int = 0,
    smoothing: int = 1,
    fixed_threshold: bool = False,
    batch: int = 512,
) -> pd.DataFrame:
    """Replay ``values`` (rows in time order) through a fresh stream; one row of results per input row.

    Columns ``score``, ``p_value`` (see :attr:`StreamUpdate.p_values`: the alert rule's own tail probability, so
    it is below the alert level exactly on the alarms), ``threshold``, ``alarm`` and ``alert``.
    """
    sc = StreamScorer(
        model,
        threshold=default_threshold(model, fixed_threshold),
        risk=risk,
        refractory=refractory,
        rearm=rearm,
        smoothing=smoothing,
    )
    parts = [sc.update(values[i : i + batch]) for i in range(0, values.shape[0], batch)]
    return pd.DataFrame(
        {
            "score": np.concatenate([u.scores for u in parts]),
            "p_value": np.concatenate([u.p_values for u in parts]),
            "threshold": np.concatenate([u.thresholds for u in parts]),
            "alarm": np.concatenate([u.alarms for u in parts]),
            "alert": np.concatenate([u.alerts for u in parts]),
        }
    )
