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

``threshold="fixed"`` uses the detector's own ``threshold_`` instead of SPOT.  With ``likelihood={...}`` the
alarm rule is HTM's anomaly likelihood instead (:class:`~deepad.detectors.series_likelihood.AnomalyLikelihood`,
initialised on the reference scores): the reported score is its log score, an alarm is a tail probability of
the recent mean below ``epsilon``, and ``warmup`` streamed points raise no alert.  ``range_tolerance=r`` adds
HTM's NAB range check: a value beyond ``[min - r (max - min), max + r (max - min)]`` of everything seen so far (the
detector's ``value_range_`` of its training rows, primed and streamed rows) is an alarm.  Both default to
``"auto"``: what the detector asks for (``_stream_likelihood()``, ``range_tolerance``; e.g. ``LikelihoodKNN``), unless
``threshold="fixed"`` is asked for.

With ``drift=True`` the scorer also watches for *score drift* -- scores
creeping up or sinking as a whole, not single alarms: a two-sided CUSUM
(:class:`PValueCUSUM`) on each point's smoothed conformal p-value against
the reference scores (exactly uniform under no drift, ties included).  Its events
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

from deepad.detectors.series_likelihood import AnomalyLikelihood, log_likelihood
from deepad.detectors.series_spot import SPOT
from deepad.thresholds import PValueCUSUM, conformal_p_values_sorted, smoothed_conformal_p_value

__all__ = [
    "StreamScorer",
    "StreamUpdate",
    "SPOT",
    "PValueCUSUM",
    "default_threshold",
    "is_series_detector",
    "keep_stream_history",
    "series_scores",
]


def is_series_detector(model) -> bool:
    """Whether ``model`` scores rows as a time series (a ``window`` or a stream state), not as exchangeable rows."""
    return hasattr(model, "window") or callable(getattr(model, "_stream_state", None))


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
    raw_scores: np.ndarray | None = None  #: the detector's (smoothed) score before the likelihood layer
    columns: list | None = None  #: per point None, or on an alert {column: rarity} (detectors with column_attribution)

    def __len__(self) -> int:
        return len(self.scores)

    def records(self, timestamps) -> list[dict]:
        """One JSON-able record per point, ``{"timestamp", "score", "threshold", "alarm", "alert"}`` (+ ``columns``).

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
                **({"columns": self.columns[i]} if self.columns is not None and self.columns[i] is not None else {}),
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
        ``"auto"`` (default): what the detector calibrates for itself, as ``deepad stream`` does
        (:func:`default_threshold`: ``"fixed"`` for ConformalKNN and ARTimeEnsemble, else ``"spot"``);
        ``"spot"`` (adaptive) or ``"fixed"`` (``detector.threshold_``).
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
    likelihood:
        ``None``, the settings of an :class:`AnomalyLikelihood` (a dict) that replaces ``threshold``, or
        ``"auto"``: the detector's ``_stream_likelihood()`` where it has one.
    range_tolerance:
        ``None``, a tolerance ``r >= 0`` for the range check (see the module docstring), or ``"auto"``.
    warmup:
        the first ``warmup`` scored points raise no alert (their scores still update every state).
    history:
        rows that precede the stream, given to :meth:`prime` before the first point: ``"auto"`` (default) the
        end of the training series the detector keeps (``stream_history_``, see :func:`keep_stream_history`;
        none: a cold start), an array of rows, or ``None`` for a cold start.  Without it the first windows
        are empty or half made of zeros: on a clean continuation of its training series a cold LikelihoodKNN
        raised 71 false alerts in 1,000 points, primed 0 (``tests/unit/test_stream_history.py``).
    """

    def __init__(
        self,
        detector,
        *,
        threshold: str = "auto",
        risk: float = 1e-4,
        init_quantile: float = 0.98,
        refractory: int = 0,
        smoothing: int = 1,
        rearm: int = 0,
        drift: bool = False,
        likelihood: dict | str | None = "auto",
        warmup: int = 0,
        range_tolerance: float | str | None = "auto",
        history="auto",
    ):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(detector, "decision_scores_")
        if threshold == "auto":
            threshold = default_threshold(detector)
        if threshold not in ("spot", "fixed"):
            raise ValueError(f"threshold must be 'auto', 'spot' or 'fixed', got {threshold!r}.")
        for name, v in (("refractory", refractory), ("smoothing", smoothing), ("rearm", rearm), ("warmup", warmup)):
            low = 1 if name == "smoothing" else 0
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}.")
        self.detector = detector
        self.threshold = threshold
        self.refractory = int(refractory)
        self.smoothing = int(smoothing)
        self.rearm, self.warmup = int(rearm), int(warmup)
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
        auto = threshold != "fixed"  # a fixed threshold asked for wins over the detector's own rules
        if isinstance(likelihood, str) and likelihood == "auto":
            hook = getattr(detector, "_stream_likelihood", None)
            likelihood = hook() if callable(hook) and auto else None
        self.likelihood = None if likelihood is None else AnomalyLikelihood(**likelihood).initialize(reference)
        if isinstance(range_tolerance, str) and range_tolerance == "auto":
            range_tolerance = (
                getattr(detector, "range_tolerance", None) if hasattr(detector, "value_range_") and auto else None
            )
        if range_tolerance is not None and not (np.isfinite(range_tolerance) and range_tolerance >= 0):
            raise ValueError(f"range_tolerance must be None, 'auto' or a number >= 0, got {range_tolerance!r}.")
        self.range_tolerance = None if range_tolerance is None else float(range_tolerance)
        vr = getattr(detector, "value_range_", None)
        inf = np.full(self.n_features, np.inf)
        self._range = np.array(vr, dtype=np.float64) if vr is not None else np.stack([inf, -inf])
        if threshold == "spot" and self.likelihood is None:
            self.spot = SPOT(risk, init_quantile).initialize(reference)
        self.drift = PValueCUSUM(autocorrelation=True) if drift else None  # issue 20: drift_cusum.py
        if isinstance(history, str) and history == "auto":
            history = getattr(detector, "stream_history_", None)
        elif isinstance(history, str):
            raise ValueError(f"history must be 'auto', None or an array of rows, got {history!r}.")
        self.n_primed = 0
        if history is not None:
            self.prime(history)

    # ------------------------------------------------------------------ streaming
    def prime(self, history) -> "StreamScorer":
        """Fill the point buffer (e.g. with the end of the training series) without scoring or alarming."""
        H = self._validate(history)
        self._out_of_range(H)
        if self._state is not None:
            # a recurrent state runs through the history; a detector with a memory of windows (which
            # already holds the training windows) takes only the context, via its own _stream_prime
            prime = getattr(self.detector, "_stream_prime", None)
            if prime is not None:
                prime(self._state, H)
            else:
                self.detector._stream_scores(self._state, H)
        self._points = np.vstack([self._points, H])[-self.context :] if self.context else self._points
        self.n_primed = getattr(self, "n_primed", 0) + H.shape[0]
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
        out_of_range = self._out_of_range(P)
        smoothed = np.full(k, np.nan)
        for i in range(k):
            if not np.isfinite(raw[i]):
                continue
            self._recent.append(float(raw[i]))
            s = smoothed[i] = scores[i] = sum(self._recent) / len(self._recent)
            if self.drift is not None:
                ref = self._sorted_reference
                side = self.drift.step(smoothed_conformal_p_value(ref, s, self.n_seen + i))  # exact under ties
                if side is not None:
                    events.append({"index": i, "direction": side, "points": self.n_seen + i + 1})
            if native_unit and self.likelihood is None:  # the score is -log10(p) / 10 of the detector's own p-value
                units[i] = min(max(s, 0.0), 1.0)
                pvals[i] = 10.0 ** (-10.0 * units[i])
            if self.likelihood is not None:  # HTM's rule: the recent mean's tail probability under the estimate
                pvals[i] = self.likelihood.update(s)
                scores[i] = units[i] = log_likelihood(pvals[i])
                thresholds[i] = self.likelihood.threshold
                alarm = self.likelihood.alarm(pvals[i])
            elif self.spot is not None:
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
            if out_of_range[i]:  # HTM's "spatial anomaly": the top score
                alarm, units[i], pvals[i] = True, 1.0, 0.0
                scores[i] = 1.0 if self.likelihood is not None else scores[i]
            alarms[i] = alarm
            if self.n_scored + i < self.warmup:  # n_scored: points of earlier calls
                suppressed[i] = True
            elif self.quiet_run >= 0:  # an incident is open: count the quiet points that close it
                self.quiet_run = 0 if alarm else self.quiet_run + 1
            if suppressed[i]:
                pass
            elif self.cooldown > 0:
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
        explain = getattr(self.detector, "column_attribution", None) if self._state is None else None
        columns = [None] * k if explain is not None else None  # the columns that drove each alert: its window's
        for i in np.flatnonzero(alerts) if explain is not None else ():
            columns[i] = explain(buf[buf.shape[0] - k + i - self.context : buf.shape[0] - k + i + 1])
        self.n_seen += k
        elapsed = time.perf_counter() - start
        self.total_latency_s += elapsed
        self.total_cpu_s = getattr(self, "total_cpu_s", 0.0) + (time.process_time() - cpu_start)
        self.n_scored += k
        return StreamUpdate(
            scores, thresholds, alarms, alerts, elapsed, units, suppressed, pvals, events, smoothed, columns
        )

    def _out_of_range(self, P: np.ndarray) -> np.ndarray:
        """Whether each row leaves the range seen so far by more than ``range_tolerance`` of it; the range grows."""
        lo, hi = self._range
        # the range before each row: running min / max over the range so far and the rows before it
        lows = np.minimum.accumulate(np.vstack([lo, P]), axis=0)
        highs = np.maximum.accumulate(np.vstack([hi, P]), axis=0)
        self._range = np.stack([lows[-1], highs[-1]])
        if self.range_tolerance is None:
            return np.zeros(P.shape[0], dtype=bool)
        lo, hi = lows[:-1], highs[:-1]
        with np.errstate(invalid="ignore"):  # an empty range (inf - inf) is no range: span > 0 is False there
            span = hi - lo
            tol = self.range_tolerance * span
        return np.any((span > 0) & ((P > hi + tol) | (P < lo - tol)), axis=1)

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
        lk_state = self.likelihood.state() if self.likelihood is not None else None
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
            "warmup": self.warmup,
            "range_tolerance": self.range_tolerance,
            "likelihood": lk_state[0] if lk_state else None,
        }
        (path / "stream.json").write_text(json.dumps(state, indent=2))
        lk_arrays = {f"likelihood_{k}": v for k, v in (lk_state[1] if lk_state else {}).items()}
        flush = getattr(self.detector, "_stream_flush", None)  # a detector keeping live objects: arrays up to date
        if self._state is not None and callable(flush):
            flush(self._state)
        # keys starting with "__" hold live objects the detector rebuilds from the arrays (LikelihoodEnsemble)
        state_arrays = {f"state_{k}": np.asarray(v) for k, v in (self._state or {}).items() if not k.startswith("__")}
        np.savez(
            path / "stream.npz",
            points=self._points,
            recent=np.asarray(self._recent, dtype=np.float64),
            sorted_reference=self._sorted_reference,
            value_range=self._range,
            **state_arrays,
            **lk_arrays,
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
            inf = np.full(obj.n_features, np.inf)
            obj._range = arrays["value_range"].copy() if "value_range" in arrays else np.stack([inf, -inf])
            if obj._state is not None:
                saved = [k[6:] for k in arrays.files if k.startswith("state_")]  # also caches, e.g. "_wsq"
                obj._state = {k: arrays[f"state_{k}"].copy() for k in saved}
            lk = state.get("likelihood")  # absent in states saved before issue 21
            lk_arrays = {k: arrays[f"likelihood_{k}"] for k in ("short", "long")} if lk else None
        obj.likelihood = AnomalyLikelihood.from_state(lk, lk_arrays) if lk else None
        obj.warmup = int(state.get("warmup", 0))
        obj.range_tolerance = state.get("range_tolerance")
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


#: trailing training rows :func:`keep_stream_history` keeps at least: a recurrent state (GRUForecaster) runs
#: through them; window detectors need only their window's context, OnlineForecaster also its replay buffer
HISTORY_ROWS = 2048


def keep_stream_history(model, X) -> None:
    """Keep the end of ``model``'s training series (rows ``X`` in time order) as ``model.stream_history_``.

    A stream of the points that follow the training series then starts where
    training stopped (:class:`StreamScorer`'s ``history="auto"``): the
    first windows are full, a recurrent state is warm.  It keeps
    ``max(HISTORY_ROWS, window - 1 + replay)`` rows, so its size does not grow
    with the series; ``deepad train`` on a series calls it.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != int(model.n_features_in_):
        raise ValueError(f"X must have {model.n_features_in_} columns (the model's), got shape {X.shape}.")
    need = int(getattr(model, "window", 1)) - 1 + int(getattr(model, "replay", 0))
    model.stream_history_ = X[-max(HISTORY_ROWS, need) :].copy()


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
    sc = StreamScorer(  # the series' own start: no training history before it
        model,
        history=None,
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
