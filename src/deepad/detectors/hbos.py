"""HBOS: outlier scores from per-feature histograms."""

from __future__ import annotations

import numbers

import numpy as np

from deepad.base import BaseDetector, check_int_param

__all__ = ["HBOS"]


class HBOS(BaseDetector):
    """Histogram-based Outlier Score.

    Paper: Goldstein & Dengel, "Histogram-based Outlier Score (HBOS): A fast
    Unsupervised Anomaly Detection Algorithm" (KI 2012).

    Why it works: a row whose values fall in rarely populated ranges of some
    features is unusual.  Treating features as independent, the product of
    the per-feature histogram frequencies is a (naive) density estimate; its
    negative log adds up evidence over features.  Each histogram is built
    from *all* training rows at a coarse resolution, so a small clump of
    identical anomalies in contaminated training data barely raises the
    frequency of its bins -- which makes HBOS robust where nearest-neighbour
    methods are fooled by clumps (it is one of the "global" views of
    :class:`~deepad.detectors.LocalGlobalEnsemble`).

    Scoring rule.  For feature ``j``, ``n_bins`` equal-width bins span the
    training range ``[min_j, max_j]`` (``n_bins="auto"``: the Rice rule
    ``ceil(2 * n ** (1/3))`` for ``n`` training rows, at least 5 -- bin
    counts growing like ``n ** (1/3)`` are what minimises a histogram's
    integrated squared error); ``m_j(b)`` is the fraction of training
    rows in bin ``b``.  Then::

        score(x) = -sum_j log( m_j(bin_j(x_j)) + alpha / n_bins )

    A value beyond the training range by at most ``tol`` bin widths counts
    in the edge bin; a value further out gets the emptiest bin's frequency
    (as in PyOD).  A feature that was constant in training puts the training
    value in one bin and any other value in an empty one.  With bin
    *frequencies* rather than densities the score does not depend on the
    features' units; on min-max-scaled data it ranks rows exactly as PyOD's
    ``HBOS(n_bins, alpha, tol)``, whose ``log2(density + alpha)`` is
    ``log2(n_bins * m + alpha)``.

    Training scores.  A training row counts itself in its own bins, which
    makes isolated training rows look less unusual than a new row at the
    same place.  ``decision_scores_`` (and so thresholds, ``labels_`` and
    p-values) are leave-one-out scores: a
    training row's own bin frequencies are ``(count - 1) / (n - 1)`` (bin
    edges are kept).
    """

    _reference_needs_in_sample = False
    _training_scores_kind = "leave-one-out training scores"

    def __init__(self, n_bins: int | str = 10, alpha: float = 0.1, tol: float = 0.5, *, contamination: float = 0.1):
        self.n_bins = n_bins
        self.alpha = alpha
        self.tol = tol
        self.contamination = contamination

    def _check_params(self) -> None:
        if not (isinstance(self.n_bins, str) and self.n_bins == "auto"):
            check_int_param(self.n_bins, "n_bins", 2, allowed="an integer >= 2 or 'auto'")
        if not (isinstance(self.alpha, numbers.Real) and 0 < self.alpha <= 1):
            raise ValueError(f"alpha must be a number in (0, 1], got {self.alpha!r}.")
        if not (isinstance(self.tol, numbers.Real) and 0 <= self.tol <= 1):
            raise ValueError(f"tol must be a number in [0, 1], got {self.tol!r}.")

    def _bins(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bin index of every value (clipped to the edge bins) and a mask of values far outside the range."""
        B = self.n_bins_
        constant = self.width_ <= 0
        pos = (X - self.low_) / np.where(constant, 1.0, self.width_)
        idx = np.clip(np.floor(pos), 0, B - 1).astype(np.int64)
        outside = (pos < -self.tol) | (pos > B + self.tol)
        if constant.any():
            # a feature that was constant in training: only its training value is in range
            outside[:, constant] = X[:, constant] != self.low_[constant]
            idx[:, constant] = 0
        return idx, outside

    def _fit(self, X, y, seed, **fit_params):
        self._check_params()
        n, d = X.shape
        B = max(5, int(np.ceil(2.0 * n ** (1.0 / 3.0)))) if isinstance(self.n_bins, str) else int(self.n_bins)
        self.n_bins_ = B
        low, high = X.min(axis=0), X.max(axis=0)
        width = (high - low) / B
        self.low_ = low
        self.width_ = np.where(width > 0, width, 0.0)
        self.counts_ = np.zeros((B, d), dtype=np.float64)
        idx, _ = self._bins(X)
        for j in range(d):
            self.counts_[:, j] = np.bincount(idx[:, j], minlength=B)
        self.n_train_ = int(n)

    @property
    def _floor(self) -> float:
        return float(self.alpha) / self.n_bins_

    def _score_from(self, idx: np.ndarray, outside: np.ndarray, counts_at: np.ndarray, n: int) -> np.ndarray:
        log_mass = np.log(counts_at / n + self._floor)
        emptiest = np.log(self.counts_.min(axis=0) / self.n_train_ + self._floor)
        return -np.where(outside, emptiest[None, :], log_mass).sum(axis=1)

    def _score(self, X):
        idx, outside = self._bins(X)
        counts_at = self.counts_[idx, np.arange(X.shape[1])]
        return self._score_from(idx, outside, counts_at, self.n_train_)

    def _training_reference_scores(self, X):
        idx, outside = self._bins(X)
        counts_at = self.counts_[idx, np.arange(X.shape[1])] - 1.0
        return self._score_from(idx, outside, counts_at, max(self.n_train_ - 1, 1))
