"""A multivariate window detector that says which column (sensor) drove each alert: :class:`MultiSeriesKNN`.

Kept apart from :mod:`deepad.detectors.series` (the univariate stream
detectors) because its unit of evidence is a *column*: every column gets
its own conformal p-value, and the model's score is their combination, so
an alert comes with a per-column attribution that means the same thing in
every column (see the class docstring).
"""

from __future__ import annotations

import numpy as np

from deepad.base import BaseDetector, check_int_param
from deepad.data.scaling import fit_scaler
from deepad.data.series import align_to_points, sliding_windows
from deepad.thresholds import conformal_p_values_columns, validate_contamination

__all__ = ["MultiSeriesKNN"]

#: the share of the calibration above which a p-value follows the fitted exponential tail
_TAIL = 0.05
#: ``-ln p``  ->  the unit score ``-log10(p) / 10``
_TO_UNIT = 1.0 / (10.0 * np.log(10.0))


class MultiSeriesKNN(BaseDetector):
    """One model over several value columns; each alert names the columns that drove it, with a p-value each.

    Paper: kNN conformal anomaly detection on windows (Burnaev & Ishimtsev,
    "Conformalized density- and distance-based anomaly detection in
    time-series data", 2016, KNN-CAD) run *per column*, with each column's
    window extended by its cross-sectional residual -- the part of the
    column that the other columns, by a ridge regression fitted on the
    training series, do not explain (the residual view of multivariate
    sensor monitoring, e.g. Hundman et al., KDD 2018, score each channel's
    own error).  The per-column p-values are combined by their minimum,
    calibrated conformally (Vovk et al., "Algorithmic learning in a random
    world", 2005), so the combined p-value keeps the conformal guarantee.

    Why: a fault in one sensor moves that sensor's window away from every
    training window of *that sensor*, and a fault that breaks the
    correlation between sensors (each marginal unchanged) moves the
    residuals of the sensors involved; either way the evidence is in
    particular columns, and a per-column p-value ranks the columns on one
    scale whatever their units or noise.  A joint distance (ConformalKNN on
    all columns) detects the same faults but cannot say which column they
    are in.

    Scoring rule: columns are robustly scaled (training median / IQR);
    ``r_tj = z_tj - ẑ_tj`` with ``ẑ_j`` the ridge prediction of column ``j``
    from the other columns at the same time (``cross=False`` or one column:
    no residual).  Column ``j``'s window at row ``t`` is ``[z_{t-w+1..t,j} -
    mean, r_{t-w+1..t,j} / s_j]`` (its shape, the mean removed so that a level
    the shared factor has not visited in training is not novel by itself,
    and its residual; ``s_j`` the residual's training IQR); without a
    residual it is ``z_{t-w+1..t,j}``, level included;
    ``alpha_tj`` = mean Euclidean distance to its ``n_neighbors`` nearest
    training windows of column ``j`` (at most ``memory``, evenly spaced; a
    stream's cost per point grows with it;
    training windows leave out those within ``window`` rows of
    themselves).  ``p_tj`` is the conformal p-value of ``alpha_tj`` among
    the training alphas of column ``j``, with an exponential tail fitted to
    their top 5 % above that (so p-values keep ordering faults beyond
    anything seen in training); the combined statistic ``max_j -ln p_tj``
    gets its p-value ``p_t`` the same way against the training windows'
    combined statistics, and ``score_t = min(-log10(p_t) / 10, 1)`` in [0,
    1] (a rarity, as ConformalKNN's); ``threshold_ = -log10(contamination)
    / 10``: an alarm is a window rarer than ``contamination``.

    Attribution: :meth:`column_scores` (every row) and
    :meth:`column_attribution` (the last row of a window; what
    ``deepad stream`` prints as ``columns`` on an alert) give each column's
    rarity ``-log10(p_tj) / 10`` -- the column's own p-value, not its share
    of a distance, because a share depends on the column's scale and noise
    while a p-value is comparable across columns.

    The model is fixed after ``fit`` (memory and calibration are the
    training series), so a stream and ``decision_function`` agree (to float
    rounding); a lasting change of regime alarms until it is retrained.

    The default ``contamination=1e-4`` relies on the exponential tail (below
    one over the number of training windows); on the benchmark below 1e-3
    and 1e-2 raised 1.5 and 2.5 times as many alerts for the same faults.

    Measured: on 6 correlated sensors with 8 faults in known sensors (5
    seeds of :func:`deepad.data.synthetic.make_sensor_series`), with the
    defaults every fault raised an alert, 93 % of the alerts were in fault
    windows and the top columns were the culprits in all of them
    (ConformalKNN on the joint window found 7 of 40 faults); a stream cost
    about 1 ms of CPU per point (0.99 and 1.18 in two rounds, ConformalKNN
    0.79 and 1.36 beside it, load 12-14 on 2 cores):
    ``python benchmarks/series_multivariate.py --seeds 5``.
    """

    _needs_wrapped = True
    _reference_needs_in_sample = False  # the training scores are leave-out (set in _fit), not in-sample
    _training_scores_kind = "leave-out training scores"
    _unit_scores = True
    _stream_threshold = "fixed"

    def __init__(
        self,
        window: int = 16,
        *,
        n_neighbors: int = 5,
        memory: int = 2000,
        cross: bool = True,
        ridge: float = 0.01,
        contamination: float = 1e-4,
    ):
        self.window = window
        self.n_neighbors = n_neighbors
        self.memory = memory
        self.cross = cross
        self.ridge = ridge
        self.contamination = contamination

    # ------------------------------------------------------------------ settings
    def _settings(self) -> tuple[int, int, int]:
        w = check_int_param(self.window, "window", 2, allowed="an integer >= 2")
        k = check_int_param(self.n_neighbors, "n_neighbors")
        mem = check_int_param(self.memory, "memory", 2, allowed="an integer >= 2")
        if not (isinstance(self.ridge, (int, float)) and not isinstance(self.ridge, bool) and self.ridge >= 0):
            raise ValueError(f"ridge must be a number >= 0, got {self.ridge!r}.")
        return int(w), int(k), int(mem)

    def _min_samples(self) -> int:
        try:
            w, k, _ = self._settings()
        except ValueError:
            return 2
        return 3 * w + k + 10

    # ------------------------------------------------------------------ features
    def _features(self, X: np.ndarray) -> np.ndarray:
        """Per-column windows ``(n_windows, d, F)`` of the rows of ``X`` (one per row from row ``window - 1``)."""
        w = int(self.window)  # checked by fit and by _score (a check per call is a tenth of a stream's point)
        Z = (X - self.center_) / self.scale_
        windows = Z.T[None] if Z.shape[0] == w else sliding_windows(Z, w).transpose(0, 2, 1)  # (m, d, w)
        if self.coef_ is None:
            return np.ascontiguousarray(windows)
        # with other columns to explain it: the window's shape (its mean removed, so a level the shared factor
        # has not visited in training is not novel) and the residual the other columns do not explain
        R = (Z - Z @ self.coef_ - self.intercept_) / self.residual_scale_
        R = R.T[None] if Z.shape[0] == w else sliding_windows(R, w).transpose(0, 2, 1)
        parts = [windows - windows.mean(axis=2, keepdims=True), R]
        return np.ascontiguousarray(np.concatenate(parts, axis=2))

    def _alphas(self, F: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
        """Mean distance of each window to its k nearest memory windows, per column: ``(m, d)``.

        ``times`` (the rows the windows end at, training only) leave out memory
        windows within ``window`` rows of the query (they overlap it).
        """
        w, k = int(self.window), int(self.n_neighbors)
        MT, msq = self.memory_windows_, self.memory_sq_  # (d, F, m_mem), (d, m_mem)
        kk = min(k, MT.shape[2])
        out = np.empty(F.shape[:2])
        # new windows one at a time: a product's rounding depends on the batch's shape, and a near-copy of a
        # memory window has a distance of rounding size, so a stream (one row a call) and a whole series would
        # rank some windows one step apart; training windows (times given) go 128 at a time
        step = 128 if times is not None else 1
        for b in range(0, F.shape[0], step):
            Fb = F[b : b + step].transpose(1, 0, 2)  # (d, nb, F)
            d2 = msq[:, None, :] - 2.0 * np.matmul(Fb, MT) + (Fb * Fb).sum(axis=2)[:, :, None]
            if times is not None:
                near = np.abs(times[b : b + step, None] - self.memory_times_[None, :]) < w
                d2[:, near] = np.inf
            part = np.partition(d2, kk - 1, axis=2)[:, :, :kk] if kk < d2.shape[2] else d2
            # sorted before the mean, so a row's score does not depend on the order partition left them in
            out[b : b + step] = np.sqrt(np.maximum(np.sort(part, axis=2), 0.0)).mean(axis=2).T
        return out

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, seed, **fit_params):
        w, k, mem = self._settings()
        validate_contamination(self.contamination)
        n, d = X.shape
        self.center_, self.scale_ = fit_scaler(X, "robust", constant="evidence")
        Z = (X - self.center_) / self.scale_
        self.coef_ = self.intercept_ = self.residual_scale_ = None
        if self.cross and d > 1:
            self.coef_, self.intercept_ = _ridge_each_on_others(Z, float(self.ridge))
            R = Z - Z @ self.coef_ - self.intercept_
            self.residual_scale_ = fit_scaler(R, "robust", constant="evidence")[1]
        F = self._features(X)
        times = np.arange(w - 1, n)
        keep = np.unique(np.linspace(0, F.shape[0] - 1, min(mem, F.shape[0])).round().astype(np.int64))
        self.memory_windows_ = np.ascontiguousarray(F[keep].transpose(1, 2, 0))  # (d, F, m_mem): one matmul a query
        self.memory_sq_ = (self.memory_windows_**2).sum(axis=1)
        self.memory_times_ = times[keep]
        alphas = self._alphas(F, times)
        self.column_calibration_ = np.sort(alphas, axis=0)  # (n_windows, d), each column ascending
        self.column_tails_ = _exp_tail(self.column_calibration_)
        stat = self._combined_statistic(alphas)
        self.combined_calibration_ = np.sort(stat)[:, None]  # (n_windows, 1)
        self.combined_tail_ = _exp_tail(self.combined_calibration_)
        comb = _neg_log_p(self.combined_calibration_, self.combined_tail_, stat[:, None])[:, 0]
        self._leave_out_scores = align_to_points(np.minimum(comb * _TO_UNIT, 1.0), n, w)

    def _training_reference_scores(self, X):
        # a training window finds itself in memory; its score without the windows that overlap it is the honest one
        scores = self._leave_out_scores
        del self._leave_out_scores
        return scores

    def fit(self, X, y=None, **fit_params):
        super().fit(X, y, **fit_params)
        # an alarm is a window rarer than `contamination` (conformal), not a quantile of in-sample scores
        self.threshold_ = float(-np.log10(float(self.contamination)) / 10.0)
        self.threshold_method_ = {"method": "conformal", "contamination": float(self.contamination)}
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    # ------------------------------------------------------------------ p-values
    def _column_log_p(self, alphas: np.ndarray) -> np.ndarray:
        """``-ln p_tj`` of per-column alphas ``(m, d)`` against each column's calibration (all columns at once)."""
        return _neg_log_p(self.column_calibration_, self.column_tails_, alphas)

    def _combined_statistic(self, alphas: np.ndarray) -> np.ndarray:
        return self._column_log_p(alphas).max(axis=1)

    def _window_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Combined unit scores ``(m,)`` and per-column unit scores ``(m, d)`` of the windows of ``X``."""
        alphas = self._alphas(self._features(X))
        col = self._column_log_p(alphas)
        comb = _neg_log_p(self.combined_calibration_, self.combined_tail_, col.max(axis=1, keepdims=True))[:, 0]
        return np.minimum(comb * _TO_UNIT, 1.0), np.minimum(col * _TO_UNIT, 1.0)

    def _score(self, X):
        w = self._settings()[0]
        if X.shape[0] < w:
            raise ValueError(f"X has {X.shape[0]} rows; MultiSeriesKNN needs at least window={w} consecutive rows.")
        return align_to_points(self._window_scores(X)[0], X.shape[0], w)

    # ------------------------------------------------------------------ attribution
    def column_names(self) -> list[str]:
        """The value columns' names: the training frame's, else ``x0, x1, ...``."""
        names = getattr(self, "feature_names_in_", None)
        return [str(c) for c in names] if names is not None else [f"x{j}" for j in range(self.n_features_in_)]

    def column_scores(self, X) -> np.ndarray:
        """Each column's rarity ``-log10(p_tj) / 10`` for every row of ``X``: ``(n, d)``, aligned as the scores are.

        A column's own conformal p-value (see the class docstring); the combined
        score is high exactly when some column's is.
        """
        Xv = self._validate_for_scoring(X)
        w = self._settings()[0]
        if Xv.shape[0] < w:
            raise ValueError(f"X has {Xv.shape[0]} rows; MultiSeriesKNN needs at least window={w} consecutive rows.")
        col = self._window_scores(Xv)[1]
        return np.vstack([np.repeat(col[:1], w - 1, axis=0), col])

    def column_attribution(self, window, top: int = 5) -> dict[str, float]:
        """``{column: rarity}`` of the window ending at the last row of ``window`` (rows in time order), the
        ``top`` most anomalous columns first -- the ``columns`` of an alert in ``deepad stream``."""
        scores = self.column_scores(window)[-1]
        order = np.argsort(-scores, kind="stable")[: max(int(top), 1)]
        names = self.column_names()
        return {names[j]: round(float(scores[j]), 6) for j in order}


def _ridge_each_on_others(Z: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge coefficients ``B`` (``d x d``, zero diagonal) and intercepts so that ``Z @ B + b`` predicts each column
    from the others; ``lam`` is per row (the penalty is ``lam * n``), so it does not depend on the series' length."""
    n, d = Z.shape
    mu = Z.mean(axis=0)
    C = (Z - mu).T @ (Z - mu)
    B = np.zeros((d, d))
    for j in range(d):
        o = np.r_[0:j, j + 1 : d]
        A = C[np.ix_(o, o)] + lam * n * np.eye(d - 1)
        B[o, j] = np.linalg.solve(A, C[o, j])
    return B, mu - mu @ B


def _exp_tail(sorted_ref: np.ndarray) -> np.ndarray:
    """Exponential tails of the columns of ``sorted_ref`` ``(n, d)`` (each ascending): ``(d, 3)`` rows ``(t, beta,
    p_t)`` -- the ``1 - _TAIL`` quantile, the mean excess above it (the generalised Pareto with shape 0, as SPOT's
    fallback) and the conformal p-value at ``t``."""
    t = np.quantile(sorted_ref, 1.0 - _TAIL, axis=0)
    excess = np.where(sorted_ref > t, sorted_ref - t, np.nan)
    with np.errstate(invalid="ignore"):
        beta = np.nan_to_num(np.nanmean(excess, axis=0), nan=0.0) if np.isfinite(excess).any() else np.zeros_like(t)
    beta = np.maximum(beta, 1e-12 * np.maximum(np.abs(t), 1.0))
    return np.column_stack([t, beta, conformal_p_values_columns(sorted_ref, t[None, :])[0]])


def _neg_log_p(sorted_ref: np.ndarray, tail: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``-ln p`` of statistics ``s`` ``(m, d)`` against the columns of ``sorted_ref`` ``(n, d)``: the conformal
    p-value, and above the tail's start ``t`` the exponential tail if that is smaller (so ranks below ``t`` are
    unchanged and faults beyond every training window keep their order)."""
    p = conformal_p_values_columns(sorted_ref, s)
    t, beta, p_t = tail[:, 0], tail[:, 1], tail[:, 2]
    above = s > t
    if above.any():
        p = np.where(above, np.minimum(p, p_t * np.exp(-(np.where(above, s, t) - t) / beta)), p)
    return -np.log(np.maximum(p, 1e-300))
