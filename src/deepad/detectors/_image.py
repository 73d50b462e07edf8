"""The image contract: what image detectors accept, validate, learn and return.

Input.  ``X`` is a float array of images, either ``(N, H, W)`` (grey) or
``(N, C, H, W)`` (channels first; ``C = 1`` grey, ``3`` colour).  Values are
expected to be normalised already -- e.g. scaled to ``[0, 1]``, or
standardised per channel -- by the loader (:mod:`deepad.data.images` reads
folders, NumPy arrays and MNIST files and its ``ImagePreprocessor`` is saved
with the model).  Channel-last arrays ``(N, H, W, C)`` are rejected with a
hint instead of being silently misread as ``C = H`` channels.

Learned state every image detector has: ``image_shape_`` ``(C, H, W)`` (new
images must match it), ``n_features_in_ = C * H * W`` (pixels per image),
``decision_scores_`` etc. as for tables.

Scoring is batched (:attr:`ImageNeuralDetector.score_batch_size` images at
a time, in eval mode, so batch norm uses its running statistics) and
deterministic: an image's score does not depend on the other images in its
batch.  :meth:`ImageNeuralDetector.anomaly_map` returns a per-pixel map
``(N, H, W)`` saying *where* an image is unusual.

Image detectors set ``_image_input = True``; the generic tabular contract
suite (``tests/unit/test_contract.py``) skips them and ``tests/unit/test_images.py``
checks the same contract on images.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from deepad.detectors._neural import NeuralDetector
from deepad.training import resolve_device, torch_context

__all__ = ["ImageNeuralDetector", "validate_images"]

_IMAGE_SCALERS = ("standard", None)


def validate_images(
    X: Any, *, name: str = "X", min_samples: int = 1, image_shape: Sequence[int] | None = None, who: str = "detector"
) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 ``(N, C, H, W)`` array or raise a message naming the problem.

    ``(N, H, W)`` gets a channel axis of 1.  ``image_shape`` ``(C, H, W)``,
    when given, is the shape seen in fit, which new images must match.
    """
    if hasattr(X, "columns") or hasattr(X, "iloc"):
        raise TypeError(
            f"{name} is a pandas {type(X).__name__}; image detectors take an array of images "
            "(N, H, W) or (N, C, H, W). Load images with deepad.data.images."
        )
    arr = np.asarray(X)
    if arr.dtype == object or arr.dtype.kind in "USMmV":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} has dtype {arr.dtype} and cannot be read as pixel values; pass a numeric array of images."
            ) from None
    elif arr.dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; images need real pixel values.")
    elif arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has unsupported dtype {arr.dtype}; images need real pixel values.")
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim != 4:
        hint = (
            " For a single image add a leading axis: X[None]."
            if arr.ndim == 2
            else " Tables of features go to the tabular detectors (AutoEncoder, VAE, DeepSVDD)."
        )
        raise ValueError(
            f"{name} must be images of shape (N, H, W) or (N, C, H, W), got {arr.ndim}-D input of "
            f"shape {arr.shape}.{hint if arr.ndim <= 2 else ''}"
        )
    n, c, h, w = arr.shape
    if n == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape} has no images.")
    if min(c, h, w) == 0:
        raise ValueError(f"{name} has an empty image axis: shape {arr.shape}.")
    if c > 4 and w in (1, 3, 4):
        raise ValueError(
            f"{name} has shape {arr.shape}, which looks channel-last (N, H, W, C); image detectors "
            "take channels first (N, C, H, W): use np.moveaxis(X, -1, 1) or deepad.data.images.as_images."
        )
    if image_shape is not None and tuple(int(v) for v in image_shape) != (c, h, w):
        raise ValueError(
            f"{name} holds images of shape (C, H, W) = {(c, h, w)}, but this {who} was fitted on "
            f"{tuple(int(v) for v in image_shape)}; resize them the same way (ImagePreprocessor does)."
        )
    if n < min_samples:
        raise ValueError(f"{name} has {n} images, but this {who} needs at least {min_samples}.")
    arr = np.asarray(arr, dtype=np.float64 if arr.dtype == np.float64 else np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)
        i, ch, r, col = (int(v) for v in bad[0])
        what = "NaN" if np.isnan(arr[i, ch, r, col]) else "infinity"
        raise ValueError(
            f"{name} contains {what} (first in image {i}, channel {ch}, pixel row {r}, column {col}; "
            f"{len(bad)} non-finite values in total)."
        )
    too_large = np.abs(arr) > np.finfo(np.float32).max
    if too_large.any():
        i, ch, r, col = (int(v) for v in np.argwhere(too_large)[0])
        raise ValueError(
            f"{name} has a pixel value too large for float32 in image {i} (channel {ch}, row {r}, "
            f"column {col}): {arr[i, ch, r, col]:g}; normalise the images first."
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


class ImageNeuralDetector(NeuralDetector):
    """Base of the convolutional image detectors.

    Subclasses implement ``_build_module(image_shape)`` (``(C, H, W)``),
    ``_steps``, ``_score_batch`` (one score per image) and
    ``_anomaly_map_batch`` (``(B, H, W)`` per-pixel map), like the tabular
    neural detectors; training goes through the shared
    :class:`~deepad.training.Trainer`.

    ``preprocessing``: ``None`` (default; images are normalised by the
    loader) or ``"standard"`` (per-channel mean and standard deviation of
    the training images, saved with the model).
    """

    _image_input = True
    #: images per inference batch, fixed: shorter batches are zero-padded to it so an image's score is
    #: bit-identical whichever images share its batch (conv activations are large, so not 4096 as for tables)
    score_batch_size: int = 64
    #: whether ``_anomaly_map_batch`` needs gradients (e.g. Deep SVDD's saliency map)
    _map_needs_grad: bool = False

    # ------------------------------------------------------------------ hooks
    def _build_module(self, image_shape: tuple[int, int, int]) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _anomaly_map_batch(self, module: nn.Module, xb: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ validation
    def _validate_for_fit(self, X):
        return validate_images(X, min_samples=self._min_samples(), who=type(self).__name__), None

    def _validate_for_scoring(self, X) -> np.ndarray:
        check_is_fitted(self, "decision_scores_")
        return validate_images(X, image_shape=self.image_shape_, who=type(self).__name__)

    # ------------------------------------------------------------------ fitting
    def _fit_scaler(self, X: np.ndarray) -> None:
        if self.preprocessing not in _IMAGE_SCALERS:
            raise ValueError(
                f"preprocessing must be one of {_IMAGE_SCALERS} for image detectors "
                f"(per-channel standardisation or none), got {self.preprocessing!r}."
            )
        c = X.shape[1]
        if self.preprocessing == "standard":
            center = X.mean(axis=(0, 2, 3), dtype=np.float64)
            scale = X.std(axis=(0, 2, 3), dtype=np.float64)
            scale = np.where(scale > 1e-12, scale, 1.0)
        else:
            center, scale = np.zeros(c), np.ones(c)
        self.scaler_center_, self.scaler_scale_ = center.astype(np.float64), scale.astype(np.float64)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        center = np.asarray(self.scaler_center_, dtype=np.float64)[None, :, None, None]
        scale = np.asarray(self.scaler_scale_, dtype=np.float64)[None, :, None, None]
        if not center.any() and (scale == 1).all():
            return np.ascontiguousarray(X, dtype=np.float32)
        return ((X - center) / scale).astype(np.float32)

    def _fit(self, X: np.ndarray, y: np.ndarray | None, seed: int, callbacks=None) -> None:
        self.image_shape_ = [int(v) for v in X.shape[1:]]
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        self._fit_scaler(X)
        device = resolve_device(self.device)
        # Convolutions do far more arithmetic per parameter than dense layers,
        # so the thread count is not sized from the parameter count (work=None).
        self._train(X, y, seed, callbacks, device, module_shape=tuple(self.image_shape_), work=None)

    def _new_module(self, name: str) -> nn.Module:
        return self._build_module(tuple(int(v) for v in self.image_shape_))

    # ------------------------------------------------------------------ scoring
    def _batched(self, fn, X: np.ndarray, *, grad: bool = False) -> np.ndarray:
        """``fn(module, batch)`` over transformed images, :attr:`score_batch_size` at a time, in eval mode."""
        self.module_.eval()
        device = self._device
        bs = int(self.score_batch_size)
        out = []
        with torch_context(None, device, self.n_threads), torch.set_grad_enabled(grad):
            for start in range(0, X.shape[0], bs):
                chunk = self._transform(X[start : start + bs])
                n = chunk.shape[0]
                if n < bs:
                    # Pad to the fixed batch size: CPU kernels pick their algorithm (and so the
                    # float rounding) by batch size, so a short batch would score an image
                    # slightly differently from the same image in a full batch.
                    chunk = np.concatenate([chunk, np.zeros((bs - n, *chunk.shape[1:]), dtype=chunk.dtype)])
                xb = torch.as_tensor(chunk).to(device)
                out.append(fn(self.module_, xb).detach()[:n].to("cpu", torch.float64))
        return torch.cat(out).numpy()

    def _apply(self, fn, X: np.ndarray) -> np.ndarray:
        return self._batched(fn, X)

    def anomaly_map(self, X) -> np.ndarray:
        """Per-pixel anomaly map of each image, shape ``(N, H, W)``; higher = more anomalous there.

        What the map measures is detector-specific (reconstruction residual,
        or the gradient of the score); see the detector's docstring.
        """
        Xv = self._validate_for_scoring(X)
        return self._batched(self._anomaly_map_batch, Xv, grad=self._map_needs_grad)

    def reconstruct(self, X) -> np.ndarray:
        """Reconstruction of each image in the input's units, ``(N, C, H, W)``, where the model has a decoder."""
        Xv = self._validate_for_scoring(X)
        if not hasattr(self, "_reconstruct_batch"):
            raise AttributeError(f"{type(self).__name__} does not reconstruct images.")
        rec = self._batched(self._reconstruct_batch, Xv)
        center = np.asarray(self.scaler_center_)[None, :, None, None]
        scale = np.asarray(self.scaler_scale_)[None, :, None, None]
        return rec * scale + center
