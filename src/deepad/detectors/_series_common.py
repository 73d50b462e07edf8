"""Helpers shared by the series detectors (:mod:`deepad.detectors.series`): window checks, the kNN mean and the
base class that trains a neural detector on sliding windows and scores the window ending at each row."""

from __future__ import annotations

import numpy as np
import torch

from deepad.base import check_int_param
from deepad.data.series import align_to_points, sliding_windows
from deepad.detectors._neural import NeuralDetector
from deepad.training import batched_apply, torch_context


def _check_window(window, stride=1) -> tuple[int, int]:
    window = check_int_param(window, "window", allowed="a positive integer")
    stride = check_int_param(stride, "stride", allowed="a positive integer")
    if window < 2:
        raise ValueError(f"window must be at least 2 (the history plus the current point), got {window}.")
    return int(window), int(stride)


def _knn_mean(d: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` smallest finite entries of each row of ``d`` (fewer when the row has fewer)."""
    kk = min(k, d.shape[1])
    if kk == 0:
        return np.zeros(d.shape[0])
    part = np.partition(d, kk - 1, axis=1)[:, :kk]
    part = np.where(np.isfinite(part), part, np.nan)
    with np.errstate(invalid="ignore"):
        out = np.nanmean(part, axis=1)
    return np.nan_to_num(out, nan=0.0)


class _WindowNeural(NeuralDetector):
    """Shared windowing for neural window detectors: train on windows, score the window ending at each row."""

    _needs_wrapped = True

    def _min_samples(self) -> int:
        w = self.window if isinstance(self.window, (int, np.integer)) and not isinstance(self.window, bool) else 2
        return max(int(w) + 3, 4)

    def _training_data(self, X_t: torch.Tensor, y):
        w, stride = _check_window(self.window, self.stride)
        windows = X_t.unfold(0, w, stride).permute(0, 2, 1).contiguous()  # (m, w, d)
        return (windows,)

    def _score(self, X: np.ndarray) -> np.ndarray:
        w, _ = _check_window(self.window, self.stride)
        if X.shape[0] < w:
            raise ValueError(
                f"X has {X.shape[0]} rows; {type(self).__name__} needs at least window={w} consecutive rows."
            )
        self.module_.eval()
        windows = np.array(sliding_windows(self._transform(X), w), dtype=np.float32, order="C")
        with torch_context(None, self._device, self.n_threads, work=self._inference_work):
            s = batched_apply(
                lambda xb: self._score_batch(self.module_, xb), windows, device=self._device, batch_size=1024
            )
        return align_to_points(s, X.shape[0], w)
