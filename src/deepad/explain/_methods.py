"""The per-detector attribution methods of :mod:`deepad.explain` and the typical (baseline) row.

See the package docstring for what each method computes and why.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

METHODS = ("auto", "shapley", "reconstruction", "integrated_gradients", "tail", "occlusion")
#: The methods that compare a row with a typical row (and so need one: see :func:`_detector_baseline`).
BASELINE_METHODS = ("shapley", "integrated_gradients", "occlusion")

#: Most input cells (path points x features) pushed through a network at once by integrated gradients.
_IG_CELLS_PER_CHUNK = 2_000_000
#: Most occluded matrix cells (rows x features, 8 bytes each) scored in one call.
_OCCLUSION_CELLS_PER_CALL = 4_000_000


# --------------------------------------------------------------------------- which method
def _inner(model):
    from deepad.pipeline import TabularDetector

    return model.detector_ if isinstance(model, TabularDetector) else model


def _is_neural(det) -> bool:
    from deepad.detectors._neural import NeuralDetector

    return isinstance(det, NeuralDetector) and hasattr(det, "module_")


def explanation_method(model, method: str = "auto") -> str:
    """The attribution method :func:`explain` uses for ``model`` (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    det = _inner(model)
    if method != "auto":
        if method == "reconstruction" and not hasattr(det, "feature_errors"):
            raise ValueError(
                f"method='reconstruction' needs a reconstruction model (AutoEncoder, VAE); "
                f"{type(det).__name__} has no feature_errors."
            )
        if method == "tail" and not hasattr(det, "feature_scores"):
            raise ValueError(f"method='tail' needs per-feature tail scores (ECOD); {type(det).__name__} has none.")
        if method == "integrated_gradients" and not _is_neural(det):
            raise ValueError(f"method='integrated_gradients' needs a neural detector; {type(det).__name__} is not one.")
        return method
    return "shapley"  # every family: see benchmarks/results/explanations/RESULTS.md


def family_method(model) -> str:
    """The detector-specific method: what ``method="auto"`` chose before Shapley values (the benchmark's "family")."""
    det = _inner(model)
    if hasattr(det, "feature_errors"):
        return "reconstruction"
    if hasattr(det, "feature_scores"):
        return "tail"
    if _is_neural(det):
        return "integrated_gradients"
    return "occlusion"


METHOD_DESCRIPTIONS = {
    "shapley": "Shapley value of the column against a typical training row (sums to score - typical score)",
    "reconstruction": "per-column share of the reconstruction error",
    "integrated_gradients": "integrated gradients from a typical training row (Sundararajan et al. 2017)",
    "tail": "per-column ECOD tail score",
    "occlusion": "score drop when the column is set to its typical training value",
}


#: The Shapley description where the reference takes categories at their training mix (:func:`mixes_categories`).
SHAPLEY_MIX_DESCRIPTION = (
    "Shapley value of the column against a typical training row with its categorical columns at their training "
    "mix (sums to score - that row's score)"
)


def method_description(model, how: str) -> str:
    """:data:`METHOD_DESCRIPTIONS` ``[how]``, or :data:`SHAPLEY_MIX_DESCRIPTION` where it applies to ``model``."""
    from deepad.pipeline import TabularDetector

    if (
        how == "shapley"
        and isinstance(model, TabularDetector)
        and mixes_categories(model.detector_)
        and any(c["kind"] == "categorical" for c in model.preprocessor.columns_)
    ):
        return SHAPLEY_MIX_DESCRIPTION
    return METHOD_DESCRIPTIONS[how]


# --------------------------------------------------------------------------- baselines
def typical_encoded_row(preprocessor) -> np.ndarray:
    """The encoded (scaled) typical training row of a fitted :class:`~deepad.data.TabularPreprocessor`.

    Median of numeric and datetime-derived features, majority boolean value,
    most frequent category (as a one-hot row), not missing.
    """
    from deepad.data.preprocessing import _PERIODS, _circle

    values: list[float] = []
    for col in preprocessor.columns_:
        kind = col["kind"]
        if kind in ("numeric", "boolean"):
            values.append(float(col["fill"]))
        elif kind == "datetime":
            for f, fill in zip(col["features"], col["fill"]):
                if f in _PERIODS:
                    s, c = _circle(np.array([float(fill)]), _PERIODS[f])
                    values.extend([float(s[0]), float(c[0])])
                else:
                    values.append(float(fill))
        else:
            categories = list(col["categories"])
            onehot = [0.0] * (len(categories) + 1)
            levels = list(col["levels"])
            mode = levels[0] if levels else None  # levels are sorted by decreasing training count
            onehot[categories.index(mode) if mode in categories else len(categories)] = 1.0
            values.extend(onehot)
            if col["frequency"]:
                n = max(int(col["n_rows"]), 1)
                values.append(math.log(col["counts"][0] / n) if levels else math.log(0.5 / n))
        if col.get("indicator"):
            values.append(0.0)
    row = np.asarray(values, dtype=np.float64)
    if row.shape != (preprocessor.n_features_out_,):  # pragma: no cover - the layout and this function disagree
        raise RuntimeError("typical row does not match the preprocessor's feature layout.")
    return (row - preprocessor.center_) / preprocessor.scale_


def mixes_categories(det) -> bool:
    """Whether Shapley values for ``det`` take categorical columns at their training mix (see :func:`category_mix_row`).

    True for :class:`~deepad.detectors.IsolationForest`: its trees split a
    one-hot column at a threshold drawn uniformly between the node's
    values, so a column at its training share ``p`` takes the "has this
    category" side of each such split with probability ``p`` -- the
    expected path over the category's training distribution.  Against the
    modal category instead, any common but non-modal value (14 % of the
    rows) is credited as a cause, more than a value 5-8 standard deviations
    out (benchmarks/results/explanations/MISSES.md).  Detectors that score
    the encoded value itself (histograms, ranks, distances, networks) would
    see the fractional row as an outlier, so they keep the typical row.
    """
    from deepad.detectors.classical import IsolationForest

    return isinstance(det, IsolationForest)


def category_mix_row(preprocessor, base: np.ndarray) -> np.ndarray:
    """``base`` (an encoded row) with each categorical column's features at their training mean.

    A one-hot feature becomes the share of training rows with that category
    (``__other__``: the rest), the log-frequency feature (wide columns) its
    training mean ``sum_l p_l log p_l``; then centred and scaled like every
    encoded row.  Built from the saved preprocessing state, so old models
    need nothing new.
    """
    row = np.array(base, dtype=np.float64, copy=True)
    sources = np.asarray(preprocessor.feature_sources_, dtype=object)
    names = np.asarray(preprocessor.feature_names_out_, dtype=object)
    for col in preprocessor.columns_:
        if col["kind"] != "categorical":
            continue
        n = max(int(col["n_rows"]), 1)
        share = dict(zip(col["levels"], np.asarray(col["counts"], dtype=np.float64) / n))
        onehot = [share.get(c, 0.0) for c in col["categories"]]
        raw = onehot + [max(1.0 - sum(onehot), 0.0)]
        if col["frequency"]:
            p = np.asarray(col["counts"], dtype=np.float64) / n
            raw.append(float(np.sum(p * np.log(p))) if p.size else math.log(0.5 / n))
        idx = np.flatnonzero((sources == col["name"]) & ~np.char.endswith(names.astype(str), "__missing"))
        if idx.size != len(raw):  # pragma: no cover - the layout and this function disagree
            raise RuntimeError(f"category mix row does not match the feature layout of column {col['name']!r}.")
        row[idx] = (np.asarray(raw) - preprocessor.center_[idx]) / preprocessor.scale_[idx]
    return row


def _detector_baseline(det) -> np.ndarray | None:
    """The training centre a fitted bare detector remembers, in its input units; ``None`` if it keeps none."""
    if _is_neural(det) and getattr(det, "preprocessing", None) in ("standard", "robust"):
        return np.asarray(det.scaler_center_, dtype=np.float64)  # training mean / median
    sorted_train = getattr(det, "sorted_train_", None)
    if sorted_train is not None:
        return np.median(sorted_train, axis=0)
    est = getattr(det, "estimator_", None)
    fit_x = getattr(est, "_fit_X", None)  # sklearn NearestNeighbors / LocalOutlierFactor
    if isinstance(fit_x, np.ndarray):
        return np.median(fit_x, axis=0)
    scaler = getattr(det, "scaler_", None)
    if scaler is not None and getattr(scaler, "mean_", None) is not None:
        return np.asarray(scaler.mean_, dtype=np.float64)
    location = getattr(est, "location_", None)
    if location is not None:
        return np.asarray(location, dtype=np.float64)
    return None


# --------------------------------------------------------------------------- the methods, in the detector's input units
def _reconstruction(det, X: np.ndarray) -> np.ndarray:
    from deepad.detectors import VAE, AutoEncoder

    err = np.asarray(det.feature_errors(X), dtype=np.float64)
    if isinstance(det, AutoEncoder):
        return err / err.shape[1]  # score = mean_j err_j
    if isinstance(det, VAE):
        return 0.5 * err  # reconstruction NLL with unit variance
    return err


def _integrated_gradients(det, X: np.ndarray, baseline: np.ndarray, n_steps: int) -> np.ndarray:
    """Integrated gradients of ``det``'s score in its network input space; attribution per input feature."""
    import torch

    from deepad.training import torch_context

    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
    m = int(n_steps)
    module = det.module_
    module.eval()
    device = det._device
    Xt = torch.as_tensor(det._transform(X))
    bt = torch.as_tensor(det._transform(baseline[None, :]))[0]
    n, d = Xt.shape
    rows = max(1, _IG_CELLS_PER_CHUNK // (m * d))
    out = np.empty((n, d), dtype=np.float64)
    with torch_context(None, device, det.n_threads, work=det._inference_work):
        alphas = ((torch.arange(m, dtype=torch.float32) + 0.5) / m).to(device)
        base = bt.to(device)
        for start in range(0, n, rows):
            x = Xt[start : start + rows].to(device)
            diff = x - base
            path = (base + alphas[:, None, None] * diff[None]).reshape(-1, d).detach().requires_grad_(True)
            with torch.enable_grad():
                score = det._score_batch(module, path)
                (grad,) = torch.autograd.grad(score.sum(), path)
            avg = grad.reshape(m, -1, d).mean(dim=0)
            out[start : start + x.shape[0]] = (diff * avg).detach().to("cpu", torch.float64).numpy()
    return out


def _occlusion(det, X: np.ndarray, baseline: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """``f(x) - f(x with group g set to the baseline)`` per group.

    The occluded copies of several groups are stacked into one scoring call
    (up to :data:`_OCCLUSION_CELLS_PER_CALL` cells, 32 MB), so small
    requests cost one call and large ones one call per group.
    """
    n, d = X.shape
    score = np.asarray(det.decision_function(X), dtype=np.float64)
    out = np.empty((n, len(groups)), dtype=np.float64)
    per_call = max(1, _OCCLUSION_CELLS_PER_CALL // max(n * d, 1))
    for g0 in range(0, len(groups), per_call):
        part = groups[g0 : g0 + per_call]
        Xo = np.repeat(X[None], len(part), axis=0)
        for k, idx in enumerate(part):
            Xo[k][:, idx] = baseline[idx]
        occluded = np.asarray(det.decision_function(Xo.reshape(-1, d)), dtype=np.float64).reshape(len(part), n)
        out[:, g0 : g0 + len(part)] = (score[None, :] - occluded).T
    return out


def _group_sum(values: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    return np.column_stack([values[:, idx].sum(axis=1) for idx in groups])
