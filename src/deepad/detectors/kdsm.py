"""Denoising score matching with kurtosis-guided per-feature noise (K-DSM)."""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np
import torch
from torch import nn

from deepad.base import check_int_param
from deepad.detectors._neural import NeuralDetector
from deepad.nn.score import ScoreNet
from deepad.training import Step

__all__ = ["KDSM", "kurtosis_noise_scales"]


def _peak_centred(col: np.ndarray, bins: int) -> np.ndarray:
    """``col`` with each value replaced by the position of its histogram bin, the bins reordered by frequency.

    The most frequent bin goes to 0, the next to +1, then -1, +2, -2, ...;
    a multimodal marginal becomes one peak, so its kurtosis measures how
    concentrated the values are rather than how the modes are spaced.
    """
    counts, edges = np.histogram(col, bins=bins)
    rank = np.arange(bins)
    positions = np.where(rank % 2 == 1, (rank + 1) // 2, -(rank // 2)).astype(np.float64)
    bin_position = np.empty(bins)
    bin_position[np.argsort(-counts, kind="stable")] = positions
    index = np.clip(np.searchsorted(edges, col, side="right") - 1, 0, bins - 1)
    return bin_position[index]


def kurtosis_noise_scales(
    X: np.ndarray,
    *,
    base: float = 0.5,
    c: float = 0.33,
    low: float = 0.1,
    high: float = 3.0,
    trim: float = 0.04,
    bins: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature noise scales ``clip(base * (1 + c * (kurtosis - 3)), low, high)`` and the kurtoses.

    The rule of K-DSM (Livernoche, Zan & Rabbany, 2026): the ``trim``
    fraction of each feature's values (half from each tail) is dropped, the
    rest is peak-centred (:func:`_peak_centred`) and standardised, and its
    Pearson kurtosis ``mean(z^4)`` sets the noise (3 for a Gaussian, about
    2.4 once its tails are trimmed; 1.9 for a uniform, 3.3 for a trimmed
    Laplace): a
    heavy-tailed or spiky feature gets more noise, so the perturbed samples
    reach the sparse regions around its peak; a flat one (kurtosis < 3)
    less, keeping the detail of its density.  A feature that is constant
    after trimming gets ``high``.
    """
    n, d = X.shape
    cut = int(n * trim / 2)
    trimmed = np.sort(X, axis=0)[cut : n - cut] if n - 2 * cut >= 2 else X
    kurt = np.empty(d)
    for j in range(d):  # one histogram per feature; the rows are handled by vectorised NumPy calls
        col = trimmed[:, j]
        if col.max() - col.min() <= 1e-12:
            kurt[j] = np.inf
            continue
        z = _peak_centred(col, bins)
        sd = z.std()
        kurt[j] = np.mean(((z - z.mean()) / sd) ** 4) if sd > 0 else np.inf
    scales = np.clip(base * (1.0 + c * (np.nan_to_num(kurt, nan=np.inf, posinf=1e3) - 3.0)), low, high)
    return scales.astype(np.float64), kurt


class _TeacherFilter:
    """An exponential moving average of the score network that picks the rows of each batch to train on.

    The rows whose teacher score is in the top ``fraction`` of the batch
    (the likeliest anomalies of a contaminated training set) are left out of
    that step.  The teacher follows the trained weights with ``decay``.
    """

    def __init__(self, module: nn.Module, fraction: float, decay: float) -> None:
        self.teacher = copy.deepcopy(module).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.module, self.fraction, self.decay = module, float(fraction), float(decay)

    @torch.no_grad()
    def keep(self, x: torch.Tensor) -> torch.Tensor:
        for t, p in zip(self.teacher.parameters(), self.module.parameters()):
            t.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)
        norms = self.teacher(x).norm(dim=1)
        n_keep = max(2, int(math.ceil(x.shape[0] * (1.0 - self.fraction))))
        if n_keep >= x.shape[0]:
            return x
        return x[torch.topk(norms, n_keep, largest=False).indices]


class KDSM(NeuralDetector):
    """Denoising score matching with kurtosis-guided per-feature noise; the score is the norm of the learned score.

    Paper: Livernoche, Zan & Rabbany, "Kurtosis-Guided Denoising Score
    Matching for Tabular Anomaly Detection" (arXiv 2605.06955, 2026), on
    denoising score matching (Vincent, Neural Computation 2011).

    Why it works.  A network ``s`` trained to denoise learns the score of
    the noise-smoothed training density, ``sigma * grad log p_sigma(x)``.
    Inside the bulk of normal data that gradient is small; off it, the
    smoothed density falls steeply and the learned score points back to the
    data with a length that grows with the distance to it (for a single
    training row ``r``, ``|x - r| / sigma``), so the norm behaves like a
    smoothed, per-feature-scaled nearest-neighbour distance learned into a
    network that scores a row in one forward pass.

    Training.  On standardised features, each batch row ``x`` is perturbed
    ``n_noise`` times, ``x~ = x + sigma * z`` with ``z ~ N(0, I)`` and the
    per-feature ``sigma_j`` of :func:`kurtosis_noise_scales` (``noise="kurtosis"``,
    ``base_noise`` for a Gaussian feature) or ``sigma_j = base_noise``
    (``noise="constant"``), and the loss is
    ``1/2 ||s(x~) + z||^2`` (the noise-scaled DSM target).  The network is
    a residual MLP (:class:`deepad.nn.score.ScoreNet`, ``width`` x
    ``n_blocks``).  Training runs a fixed number of optimiser steps,
    ``n_steps`` (epochs are rounded up to cover them), so the cost does not
    grow with the number of rows.

    ``filter_fraction`` > 0 adds the EMA-teacher filter of the paper for
    contaminated training data: a moving average of the network
    (``ema_decay``) scores each batch and its top ``filter_fraction`` rows
    are left out of that step.

    Scoring rule: ``score(x) = ||s(x)||_2`` on the standardised row (the
    clean row, no noise), higher = less consistent with the training density.

    Cost and accuracy: the defaults (width 128, 2 blocks, 1000 steps) fit
    in about 15x the time of an exact 5-NN self-query on 10,000 x 30 rows
    and score in about 0.1x the 5-NN query; on the ADBench confirmation
    half they score below kNN one-class and well below Isolation Forest
    unsupervised (``docs/design/kdsm.md``).
    """

    def __init__(
        self,
        width: int = 128,
        n_blocks: int = 2,
        *,
        noise: str = "kurtosis",
        base_noise: float = 0.5,
        kurtosis_weight: float = 0.33,
        n_noise: int = 3,
        n_steps: int = 1000,
        filter_fraction: float = 0.0,
        ema_decay: float = 0.999,
        dropout: float = 0.0,
        batch_size: int = 128,
        lr: float = 5e-4,
        weight_decay: float = 5e-5,
        preprocessing: str | None = "standard",
        contamination: float = 0.1,
        device: str = "auto",
        n_threads: int | None = None,
        random_state=None,
        verbose: bool = False,
    ):
        self.width = width
        self.n_blocks = n_blocks
        self.noise = noise
        self.base_noise = base_noise
        self.kurtosis_weight = kurtosis_weight
        self.n_noise = n_noise
        self.n_steps = n_steps
        self.filter_fraction = filter_fraction
        self.ema_decay = ema_decay
        self.dropout = dropout
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.preprocessing = preprocessing
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # the shared trainer's vocabulary: no validation split, a fixed step budget
    validation_fraction = 0.0
    patience = 0
    lr_schedule = None
    epochs = 1  # replaced in _make_trainer by the epochs that cover n_steps

    def _check_params(self) -> None:
        check_int_param(self.width, "width", allowed="a positive integer")
        check_int_param(self.n_blocks, "n_blocks", 0, allowed="a non-negative integer")
        check_int_param(self.n_noise, "n_noise", allowed="a positive integer")
        check_int_param(self.n_steps, "n_steps", allowed="a positive integer")
        check_int_param(self.batch_size, "batch_size", allowed="a positive integer")
        if self.noise not in ("kurtosis", "constant"):
            raise ValueError(f"noise must be 'kurtosis' or 'constant', got {self.noise!r}.")
        for name in ("base_noise", "lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}.")
        for name, low_open in (("filter_fraction", False), ("ema_decay", True), ("dropout", False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= value < 1.0):
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}.")
        if isinstance(self.kurtosis_weight, bool) or not isinstance(self.kurtosis_weight, numbers.Real):
            raise ValueError(f"kurtosis_weight must be a number, got {self.kurtosis_weight!r}.")

    def _fit(self, X, y, seed, callbacks=None) -> None:
        self._check_params()
        self._n_rows = X.shape[0]
        try:
            super()._fit(X, y, seed, callbacks=callbacks)
        finally:
            self.__dict__.pop("_n_rows", None)

    def _make_trainer(self, device, callbacks):
        trainer = super()._make_trainer(device, callbacks)
        per_epoch = max(1, math.ceil(self._n_rows / int(self.batch_size)))
        trainer.epochs = max(1, math.ceil(int(self.n_steps) / per_epoch))
        return trainer

    def _build_module(self, n_features: int) -> nn.Module:
        return ScoreNet(n_features, int(self.width), int(self.n_blocks), float(self.dropout))

    def _before_training(self, module, data, generator) -> None:
        X = data[0].detach().cpu().numpy().astype(np.float64)
        if self.noise == "kurtosis":
            scales, _ = kurtosis_noise_scales(X, base=float(self.base_noise), c=float(self.kurtosis_weight))
        else:
            scales = np.full(X.shape[1], float(self.base_noise))
        self.noise_scales_ = scales

    def _steps(self, module, data):
        sigma = torch.as_tensor(self.noise_scales_, dtype=torch.float32, device=data[0].device)
        k = int(self.n_noise)
        keep = _TeacherFilter(module, self.filter_fraction, self.ema_decay).keep if self.filter_fraction > 0 else None

        def dsm_loss(batch):
            x = batch[0]
            if keep is not None and module.training:
                x = keep(x)
            x = x.repeat(k, 1)
            z = torch.randn_like(x)
            return 0.5 * (module(x + sigma * z) + z).pow(2).sum(dim=1).mean()

        return [Step("dsm", dsm_loss, list(module.parameters()))]

    def _score_batch(self, module, xb: torch.Tensor) -> torch.Tensor:
        return module(xb).norm(dim=1)

    def score_components(self, X):
        """Per-feature squared score ``s_j(x)^2``, shape ``(n, d)``; each row sums to ``score(x)^2``.

        Not named ``feature_errors``: that would make :mod:`deepad.explain` read it as a reconstruction
        error; explanations of KDSM use the methods every neural detector has.
        """
        return self._apply(lambda module, xb: module(xb).pow(2), self._validate_for_scoring(X))
