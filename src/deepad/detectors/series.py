"""Window detectors for time series: a robust rolling z-score, a GRU forecaster and a temporal-convolution autoencoder.

Input is a 2-D array of *consecutive* rows (time x channels) on a regular
grid (see :mod:`deepad.data.series` for resampling and gap filling).  Every
detector returns one score per row: the score of the window of ``window``
rows *ending* at that row, so a score only uses the past and the present and
the same detector runs unchanged in a stream (:mod:`deepad.stream`).  The
first ``window - 1`` rows have no full window and get the first full
window's score.  ``stride`` subsamples the *training* windows (every
``stride``-th window is trained on); scoring always scores every row.

These detectors set ``_needs_wrapped = True``: they are excluded from the
generic tabular contract suite (whose rows are exchangeable, not a time
series) and have their own contract tests in ``tests/unit/test_series.py``.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np
import torch
from torch import nn

from deepad.base import BaseDetector, check_int_param
from deepad.data.series import align_to_points, sliding_windows
from deepad.detectors._series_common import _check_window, _knn_mean, _WindowNeural
from deepad.detectors._series_nets import _GRUNet, _TCNAutoEncoderNet
from deepad.training import Step

__all__ = ["RollingZScore", "GRUForecaster", "TCNAutoEncoder", "ConformalKNN"]


# --------------------------------------------------------------------------- non-deep baseline
class RollingZScore(BaseDetector):
    """Robust rolling z-score: how many robust standard deviations the current point lies from its recent past.

    Paper: the median/MAD outlier rule (Hampel, "The influence curve and its
    role in robust estimation", JASA 1974; Leys et al., J. Exp. Soc. Psych.
    2013) applied over a sliding window, the classic streaming baseline
    (e.g. NAB's "windowed Gaussian" detector, Lavin & Ahmad 2015).

    Why: a point far from the median of the previous ``window - 1`` points,
    in units of their median absolute deviation, is unusual *for its local
    context*; median and MAD ignore earlier spikes in the window, so one
    anomaly does not mask the next.

    Scoring rule: ``score_t = max_j |x_tj - med_j| / (1.4826 * MAD_j + eps_j)``
    over channels ``j``, with ``med``/``MAD`` over rows ``t-window+1 .. t-1``
    and ``eps_j = 1e-3 * std_j(training)`` (plus 1e-12) so flat stretches do
    not divide by zero.  The only learned state is ``eps_``.

    ``diff=True`` applies the rule to first differences inside the window
    (``x_t - x_{t-1}``), which removes trends and slow periodic swings that a
    window shorter than the period would otherwise mistake for outliers.
    """

    _needs_wrapped = True

    def __init__(self, window: int = 64, *, diff: bool = False, contamination: float = 0.1):
        self.window = window
        self.diff = diff
        self.contamination = contamination

    def _min_samples(self) -> int:
        return max(int(self.window) if isinstance(self.window, (int, np.integer)) else 2, 2)

    def _fit(self, X, y, seed, **fit_params):
        _check_window(self.window)
        base = np.diff(X, axis=0) if self.diff and X.shape[0] > 1 else X
        self.eps_ = 1e-3 * base.std(axis=0) + 1e-12

    def _score(self, X):
        w, _ = _check_window(self.window)
        if X.shape[0] < w:
            raise ValueError(f"X has {X.shape[0]} rows; RollingZScore needs at least window={w} consecutive rows.")
        win = sliding_windows(X, w)  # (m, w, d)
        if self.diff:
            if w < 3:
                raise ValueError(f"diff=True needs window >= 3, got {w}.")
            win = np.diff(win, axis=1)
        past, current = win[:, :-1, :], win[:, -1, :]
        med = np.median(past, axis=1)
        mad = np.median(np.abs(past - med[:, None, :]), axis=1)
        z = np.abs(current - med) / (1.4826 * mad + self.eps_)
        return align_to_points(z.max(axis=1), X.shape[0], w)


class ConformalKNN(BaseDetector):
    """Continual kNN conformal anomaly detection on multi-scale windows; the score is the point's conformal rarity.

    Paper: Burnaev & Ishimtsev, "Conformalized density- and distance-based
    anomaly detection in time-series data" (2016) -- KNN-CAD, NAB 58.0 --
    with two changes: the window is *multi-scale* (the last ``window`` rows
    plus the means of the last ``coarse_chunks`` blocks of ``coarse_width``
    rows, so a broken daily pattern is seen, not only a broken value) and the model learns *continually*: every scored window joins the
    neighbour memory (the last ``memory`` windows) and every nonconformity
    joins the calibration set, so a pattern that recurs stops being
    anomalous after it has been seen (a weekly job, a new load level).

    Why: a window with no close neighbour in everything seen so far is
    novel; the conformal p-value ranks its distance among all distances seen
    so far, which needs no distributional assumption and makes scores of
    different series comparable (a rarity, not a distance in the series'
    units).

    Scoring rule: embed row ``t`` as ``[x_{t-window+1..t}, means of the
    blocks x_{t-(j+1)c+1..t-jc}, j < coarse_chunks]`` (``c = coarse_width``) on
    robustly scaled channels (training median / IQR; the series is padded
    with its first row at the start); ``alpha_t`` = mean Euclidean distance
    to the ``n_neighbors`` nearest windows in memory, excluding the
    ``exclusion`` most recent windows (they overlap the query); ``p_t =
    (1 + #{past alpha >= alpha_t}) / (N + 1)`` over the last ``memory``
    alphas (training alphas are leave-out); ``score_t = -log10(p_t) / 10``,
    in [0, 1].  ``threshold_ = -log10(contamination) / 10``, i.e. an alarm
    is a point rarer than ``contamination`` -- a conformal guarantee on
    normal data, so the threshold is not a quantile of in-sample scores.

    Scoring is stateful: ``decision_function(X)`` treats ``X`` as one series
    that follows the training data (the memory starts from the training
    windows and grows along ``X``); :class:`deepad.stream.StreamScorer`
    gives the same scores point by point.
    """

    _needs_wrapped = True
    _unit_scores = True
    _stream_threshold = "fixed"

    def __init__(
        self,
        window: int = 16,
        *,
        coarse_chunks: int = 8,
        coarse_width: int = 16,
        n_neighbors: int = 5,
        memory: int = 5000,
        exclusion: int | None = None,
        contamination: float = 0.01,
    ):
        self.window = window
        self.coarse_chunks = coarse_chunks
        self.coarse_width = coarse_width
        self.n_neighbors = n_neighbors
        self.memory = memory
        self.exclusion = exclusion
        self.contamination = contamination

    # ------------------------------------------------------------------ settings
    def _settings(self) -> tuple[int, int, int, int, int, int]:
        for name in ("window", "coarse_chunks", "coarse_width", "n_neighbors", "memory"):
            check_int_param(getattr(self, name), name, 0 if name == "coarse_chunks" else 1)
        excl = self.window if self.exclusion is None else self.exclusion
        check_int_param(excl, "exclusion", 0, allowed="None or an integer >= 0")
        span = max(int(self.window), int(self.coarse_chunks) * int(self.coarse_width))
        return (
            int(self.window),
            int(self.coarse_chunks),
            int(self.coarse_width),
            int(self.n_neighbors),
            int(self.memory),
            int(excl),
            span,
        )

    def _min_samples(self) -> int:
        try:
            _, _, _, k, _, excl, _ = self._settings()
        except ValueError:
            return 2
        return max(2 * excl + k + 10, 20)

    def _embed(self, Z: np.ndarray) -> np.ndarray:
        """Embedding of rows ``span-1 ..`` of ``Z`` (the first ``span - 1`` rows are context only)."""
        L, m, c, _, _, _, span = self._settings()
        n = Z.shape[0] - (span - 1)
        fine = np.lib.stride_tricks.sliding_window_view(Z, L, axis=0)[span - L :]  # (n, d, L)
        parts = [fine.reshape(n, -1)]
        if m:
            cs = np.concatenate([np.zeros((1, Z.shape[1])), np.cumsum(Z, axis=0)])
            end = np.arange(span, Z.shape[0] + 1)  # blocks end at row t (cs index t + 1)
            blocks = [(cs[end - j * c] - cs[end - (j + 1) * c]) / c for j in range(m - 1, -1, -1)]
            parts.append(np.stack(blocks, axis=2).reshape(n, -1))
        return np.ascontiguousarray(np.concatenate(parts, axis=1))

    def _embed_last(self, ctx: np.ndarray) -> np.ndarray:
        """Embedding of the last row of ``ctx`` (``span`` rows): the streaming path; the same embedding as :meth:`_embed`."""
        L, m, c, _, _, _, span = self._settings()
        fine = ctx[-L:].T.reshape(-1)
        if not m:
            return fine
        blocks = ctx[ctx.shape[0] - m * c :].reshape(m, c, -1).mean(axis=1)  # oldest block first
        return np.concatenate([fine, blocks.T.reshape(-1)])

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return (X - self.center_) / self.scale_

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, seed, **fit_params):
        from deepad import thresholds as _thr

        L, m, c, k, mem, excl, span = self._settings()
        _thr.validate_contamination(self.contamination)
        self.center_ = np.median(X, axis=0)
        q75, q25 = np.percentile(X, [75, 25], axis=0)
        iqr = q75 - q25
        std = X.std(axis=0)
        self.scale_ = np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0))
        Z = self._scaled(X)
        E = self._embed(np.vstack([np.repeat(Z[:1], span - 1, axis=0), Z]))
        # leave-out nonconformity of the training windows: neighbours farther than `exclusion` rows away
        n = E.shape[0]
        alphas = np.empty(n)
        sq = (E * E).sum(axis=1)
        for b in range(0, n, 512):
            e = min(b + 512, n)
            d = np.sqrt(np.maximum(sq[b:e, None] + sq[None, :] - 2.0 * E[b:e] @ E.T, 0.0))
            near = np.abs(np.arange(b, e)[:, None] - np.arange(n)[None, :]) <= excl
            d[near] = np.inf
            alphas[b:e] = _knn_mean(d, k)
        # the last `exclusion` windows wait (they overlap the first streamed windows), the rest are memory
        split = max(n - excl, 0)
        self.memory_windows_ = E[max(0, split - mem) : split]
        self.pending_windows_ = E[split:]
        self.calibration_alphas_ = alphas[max(0, n - mem) :]

    def fit(self, X, y=None, **fit_params):
        super().fit(X, y, **fit_params)
        # an alarm is a point rarer than `contamination` (conformal), not a quantile of in-sample scores
        self.threshold_ = float(-np.log10(float(self.contamination)) / 10.0)
        self.threshold_method_ = {"method": "conformal", "contamination": float(self.contamination)}
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    # ------------------------------------------------------------------ scoring = a stream from the fitted state
    def _score(self, X):
        state = self._stream_state()
        return self._stream_scores(state, X)

    def _stream_state(self) -> dict:
        """Fresh stream state: memory = training windows, calibration = training alphas, no context yet."""
        mem = self._settings()[4]
        D = self.memory_windows_.shape[1]
        windows, alphas = np.zeros((mem, D)), np.zeros(mem)
        m_w, m_a = self.memory_windows_.shape[0], self.calibration_alphas_.shape[0]
        windows[:m_w] = self.memory_windows_
        alphas[:m_a] = self.calibration_alphas_
        i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        return {
            "context": np.zeros((0, self.n_features_in_)),
            "pending": self.pending_windows_.copy(),
            "windows": windows,
            "wcount": i64(m_w),
            "wpos": i64(m_w % mem),
            "alphas": alphas,
            "acount": i64(m_a),
            "apos": i64(m_a % mem),
            "sorted": np.sort(self.calibration_alphas_),
        }

    def _stream_prime(self, state: dict, X: np.ndarray) -> None:
        """History before the stream: only the context of the first windows (memory and calibration unchanged)."""
        *_, span = self._settings()
        ctx = np.vstack([state["context"], self._scaled(X)])
        state["context"] = ctx[-(span - 1) :] if span > 1 else ctx[:0]

    def _stream_scores(self, state: dict, X: np.ndarray) -> np.ndarray:
        return self._stream_conformal(state, self._stream_alphas(state, X))

    def _stream_alphas(self, state: dict, X: np.ndarray) -> np.ndarray:
        """Nonconformity of each row of ``X`` (its window's mean k-NN distance to the memory); the windows join the memory.

        Separate from the calibration (:meth:`_stream_conformal`) because the
        memory never depends on it: benchmarks replay other calibration rules
        on these alphas (``benchmarks/nab_variants.py``).
        """
        L, m, c, k, mem, excl, span = self._settings()
        Z = self._scaled(X)
        ctx = state["context"]
        if ctx.shape[0] < span - 1:  # the very start of a series: pad with its first row
            first = ctx[:1] if ctx.shape[0] else Z[:1]
            ctx = np.vstack([np.repeat(first, span - 1 - ctx.shape[0], axis=0), ctx])
        full = np.vstack([ctx, Z])
        windows = state["windows"]
        pending = state["pending"] if isinstance(state["pending"], deque) else deque(np.asarray(state["pending"]))
        wcount, wpos = int(state["wcount"]), int(state["wpos"])
        wsq = state.get("_wsq")
        if wsq is None:
            wsq = (windows * windows).sum(axis=1)
        out = np.empty(Z.shape[0])
        for i in range(Z.shape[0]):
            e = self._embed_last(full[i : i + span]) if span > 1 else Z[i]
            n_mem = min(wcount, mem)
            if n_mem:
                d2 = wsq[:n_mem] - 2.0 * (windows[:n_mem] @ e) + float(e @ e)
                kk = min(k, n_mem)
                out[i] = float(np.sqrt(np.maximum(np.partition(d2, kk - 1)[:kk], 0.0)).mean())
            else:
                out[i] = 0.0
            # continual learning: the window joins the memory once it no longer overlaps the query (`exclusion`)
            pending.append(e)
            if len(pending) > excl:
                w_old = pending.popleft()
                windows[wpos] = w_old
                wsq[wpos] = float(w_old @ w_old)
                wpos, wcount = (wpos + 1) % mem, wcount + 1
        state["context"] = full[-(span - 1) :] if span > 1 else Z[:0]
        i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        state.update(pending=pending, wcount=i64(wcount), wpos=i64(wpos), _wsq=wsq)
        return out

    def _stream_conformal(self, state: dict, alphas_new: np.ndarray) -> np.ndarray:
        """Unit score of each alpha: ``-log10`` of its conformal p-value among the last ``memory`` alphas / 10; then it joins them."""
        import bisect

        mem = self._settings()[4]
        alphas = state["alphas"]
        srt = state["sorted"] if isinstance(state["sorted"], list) else np.asarray(state["sorted"]).tolist()
        acount, apos = int(state["acount"]), int(state["apos"])
        out = np.empty(len(alphas_new))
        for i, a in enumerate(alphas_new.tolist()):
            n_cal = len(srt)
            ge = n_cal - bisect.bisect_left(srt, a)
            out[i] = min(-np.log10((1.0 + ge) / (n_cal + 1.0)) / 10.0, 1.0)
            if acount >= mem:
                del srt[bisect.bisect_left(srt, alphas[apos])]
            bisect.insort(srt, a)
            alphas[apos] = a
            apos, acount = (apos + 1) % mem, acount + 1
        i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        state.update(sorted=srt, acount=i64(acount), apos=i64(apos))
        return out


# --------------------------------------------------------------------------- neural window detectors
class GRUForecaster(_WindowNeural):
    """GRU next-step forecaster; the anomaly score is the squared forecast error.

    Paper: prediction-error detection with recurrent networks, Malhotra et
    al., "Long short term memory networks for anomaly detection in time
    series" (ESANN 2015), here with a GRU (Cho et al., 2014), which trains
    faster with the same accuracy on short windows.

    Why: trained on normal history, the network learns the series'
    dynamics; a point that its own past does not predict -- a spike, a level
    shift, a broken period -- leaves a large residual.  The network predicts
    the change from the last observed value, so a series with a trend or a
    slow drift is not an anomaly at every step.

    Scoring rule: the window of ``window`` rows ending at row ``t`` gives the
    history ``t-window+1 .. t-1``; ``score_t = mean_j (x_tj - x̂_tj)^2`` on
    standardised channels.

    ``hidden_dims``: ``(h,)`` or ``(h, h, ...)`` -- hidden size ``hidden_dims[0]``
    and one GRU layer per entry.  ``latent_dim`` is accepted for the shared
    vocabulary and unused.

    ``stateful=True`` scores with *one* GRU run over the whole series instead
    of a fresh run over each window: the forecast of row ``t`` comes from the
    hidden state after rows ``0 .. t-1`` (training is unchanged: windows,
    truncated back-propagation).  Why: a stream then costs one GRU step per
    point (O(1), the hidden state is kept) instead of ``window - 1`` steps,
    which is what makes per-point latency well under a millisecond; the
    memory is no longer cut at ``window`` rows.  Rows before ``window - 1``
    get the score of row ``window - 1``, as for the windowed detectors.
    """

    def __init__(
        self,
        window: int = 32,
        stride: int = 1,
        *,
        stateful: bool = False,
        hidden_dims: Sequence[int] = (32,),
        latent_dim: int = 8,
        dropout: float = 0.0,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.1,
        patience: int = 5,
        lr_schedule: str | None = None,
        preprocessing: str | None = "standard",
        contamination: float = 0.1,
        device: str = "auto",
        n_threads: int | None = None,
        random_state=None,
        verbose: bool = False,
    ):
        self.window = window
        self.stride = stride
        self.stateful = stateful
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.preprocessing = preprocessing
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _build_module(self, n_features: int) -> nn.Module:
        dims = list(self.hidden_dims)
        if not dims:
            raise ValueError("hidden_dims must name at least one GRU layer size.")
        return _GRUNet(n_features, int(dims[0]), len(dims), float(self.dropout))

    def _steps(self, module, data):
        def forecast_loss(batch):
            w = batch[0]
            return ((module(w[:, :-1, :]) - w[:, -1, :]) ** 2).mean()

        return [Step("loss", forecast_loss, list(module.parameters()))]

    def _score_batch(self, module, wb: torch.Tensor) -> torch.Tensor:
        return ((module(wb[:, :-1, :]) - wb[:, -1, :]) ** 2).mean(dim=1)

    # ------------------------------------------------------------------ stateful scoring and streaming
    def _score(self, X: np.ndarray) -> np.ndarray:
        if not self.stateful:
            return super()._score(X)
        w, _ = _check_window(self.window, self.stride)
        if X.shape[0] < w:
            raise ValueError(f"X has {X.shape[0]} rows; GRUForecaster needs at least window={w} consecutive rows.")
        state = self._stream_state()
        s = self._stream_scores(state, X)
        return np.concatenate([np.full(w - 1, s[w - 1]), s[w - 1 :]])

    def _stream_state(self) -> dict | None:
        """Initial state of a stateful stream (``None``: the detector is scored window by window)."""
        if not self.stateful:
            return None
        layers, hidden = self.module_.gru.num_layers, self.module_.gru.hidden_size
        return {
            "h": np.zeros((layers, 1, hidden)),
            "last": np.zeros(self.n_features_in_),
            "seen": np.zeros((), dtype=np.int64),
        }

    def _stream_scores(self, state: dict, X: np.ndarray) -> np.ndarray:
        """Score validated raw rows ``X`` that follow the stream ``state`` (updated in place).

        Row ``t`` is forecast from the hidden state after the rows before it;
        the first ``window - 1`` rows of a stream score NaN (too little
        history).  The recurrence runs in NumPy (float64) on the trained
        weights: one GRU step per row with no framework overhead, so a
        stream of single points costs tens of microseconds per point; the
        whole-series score uses the same code, so both agree exactly.
        """
        w, _ = _check_window(self.window, self.stride)
        layers, head_w, head_b = self._numpy_weights()
        Z = self._transform(X).astype(np.float64)
        h = state["h"].astype(np.float64).reshape(len(layers), -1)
        last = state["last"].astype(np.float64)
        k = Z.shape[0]
        s = np.empty(k)
        W_ih0, b_ih0 = layers[0][0], layers[0][1]
        gi0 = Z @ W_ih0.T + b_ih0  # input projections of the first layer, all rows at once
        H = h.shape[1]
        for i in range(k):
            forecast = head_w @ h[-1] + head_b + last
            s[i] = float(((Z[i] - forecast) ** 2).sum()) / Z.shape[1]
            x = None
            for l, (W_ih, b_ih, W_hh, b_hh) in enumerate(layers):
                gi = gi0[i] if l == 0 else W_ih @ x + b_ih
                gh = W_hh @ h[l] + b_hh
                rz = 1.0 / (1.0 + np.exp(-(gi[: 2 * H] + gh[: 2 * H])))
                n = np.tanh(gi[2 * H :] + rz[:H] * gh[2 * H :])
                h[l] = (1.0 - rz[H:]) * n + rz[H:] * h[l]
                x = h[l]
            last = Z[i]
        seen = int(state["seen"])
        s[: max(0, min(k, w - 1 - seen))] = np.nan
        state["h"] = h.reshape(len(layers), 1, H)
        state["last"] = last.copy()
        state["seen"] = np.asarray(seen + k, dtype=np.int64)
        return s

    def _numpy_weights(self):
        """The GRU's and the head's weights as float64 arrays, cached per fitted module."""
        cache = getattr(self, "_weights_cache", None)
        if cache is not None and cache[0] is self.module_:
            return cache[1]
        gru, head = self.module_.gru, self.module_.head
        get = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
        layers = [
            tuple(get(getattr(gru, f"{name}_l{l}")) for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
            for l in range(gru.num_layers)
        ]
        weights = (layers, get(head.weight), get(head.bias))
        self._weights_cache = (self.module_, weights)
        return weights


class TCNAutoEncoder(_WindowNeural):
    """Temporal-convolution autoencoder; the anomaly score is the window's reconstruction error.

    Paper: dilated temporal convolutions (Bai, Kolter & Koltun, "An empirical
    evaluation of generic convolutional and recurrent networks for sequence
    modeling", 2018) used as a window autoencoder, as in Thill et al.,
    "Temporal convolutional autoencoder for unsupervised anomaly detection
    in time series" (Applied Soft Computing 2021).

    Why: dilated convolutions see the whole window's shape at a few scales
    with few parameters; squeezed through ``latent_dim`` channels the network
    can only reconstruct shapes it saw in training, so an unusual *pattern*
    (not just an unusual value) reconstructs poorly.

    Scoring rule: ``score_t = mean over the window's rows and channels of
    (x - x̂)^2`` for the window ending at row ``t`` (standardised channels).

    ``hidden_dims`` are the channels of the encoder's convolutions (dilation
    1, 2, 4, ...), mirrored in the decoder; ``kernel_size`` their width.
    """

    def __init__(
        self,
        window: int = 32,
        stride: int = 1,
        *,
        hidden_dims: Sequence[int] = (16, 16),
        latent_dim: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.0,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.1,
        patience: int = 5,
        lr_schedule: str | None = None,
        preprocessing: str | None = "standard",
        contamination: float = 0.1,
        device: str = "auto",
        n_threads: int | None = None,
        random_state=None,
        verbose: bool = False,
    ):
        self.window = window
        self.stride = stride
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.preprocessing = preprocessing
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def _build_module(self, n_features: int) -> nn.Module:
        return _TCNAutoEncoderNet(
            n_features, list(self.hidden_dims), int(self.latent_dim), int(self.kernel_size), float(self.dropout)
        )

    def _steps(self, module, data):
        def reconstruction_loss(batch):
            w = batch[0]
            return ((module(w) - w) ** 2).mean()

        return [Step("loss", reconstruction_loss, list(module.parameters()))]

    def _score_batch(self, module, wb: torch.Tensor) -> torch.Tensor:
        return ((module(wb) - wb) ** 2).mean(dim=(1, 2))
