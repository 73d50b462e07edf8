"""Why is this row anomalous?  Per-column attributions of anomaly scores, for every detector.

:func:`explain` returns, for each row, how much each *source column* (the
user's own column names) contributed to the row's anomaly score; positive
values push the score up.  Encoded features that come from one column -- a
one-hot block, a missing-value indicator, a datetime's sine/cosine pairs --
are summed into that column (:attr:`deepad.pipeline.TabularDetector.feature_sources_`).

Which method is used (``method="auto"``) depends on the detector, because
the best explanation is the one that follows the detector's own scoring
rule:

``"reconstruction"`` (AutoEncoder, VAE -- detectors with ``feature_errors``)
    The score *is* a sum of per-feature reconstruction errors, so each
    feature's error is its exact share: ``(x_j - x̂_j)^2 / d`` for the
    AutoEncoder (attributions sum to the score) and ``(x_j - x̂_j)^2 / 2``
    for the VAE (they sum to the reconstruction part of the negative ELBO;
    the KL term is not attributed to features).  One forward pass.

``"integrated_gradients"`` (every other neural detector: DeepSVDD, DeepSAD, DevNet, DAGMM, ALAD)
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks"
    (ICML 2017).  ``IG_j(x) = (x_j - b_j) * ∫_0^1 ∂f/∂x_j (b + a (x - b)) da``
    in the network's input space, with the baseline ``b`` a *typical
    training row* (see below).  By the completeness axiom the attributions
    sum to ``f(x) - f(b)``: how much more anomalous the row is than a
    typical one.  The integral is a midpoint rule over ``n_steps`` points;
    all points of a chunk of rows go through the network as one batch with
    ``torch.autograd.grad`` (no loop over rows).

``"tail"`` (ECOD -- detectors with ``feature_scores``)
    ECOD's score is a sum over features of ``max(-log F_left, -log F_right)``
    (Li et al., TKDE 2022, the "dimensional outlier graph"); each
    feature's tail score is its exact share.

``"occlusion"`` (everything else: IsolationForest, KNN, LOF, OneClassSVM, PCA, Mahalanobis, PyOD models, ensembles)
    Model-agnostic: replace one source column at a time by its typical
    training value and measure how much the score drops,
    ``a_c(x) = f(x) - f(x with column c typical)`` (Zeiler & Fergus, ECCV
    2014, for images; "prediction difference" of Robnik-Šikonja &
    Kononenko, 2008, for tables).  One batched scoring call per column, on
    all rows at once.  Not additive for non-linear detectors, but exact in
    the question it answers: "would this row still look anomalous if this
    column were normal?".

The typical training row (baseline).  For a :class:`~deepad.pipeline.TabularDetector`
it is built from the saved preprocessing state: the training *median* of
every numeric and datetime feature, the majority value of booleans, the
*most frequent category* of categorical columns (a valid one-hot row rather
than a per-feature median), and "not missing".  For a bare detector on a
numeric matrix it is the median of ``reference`` rows when given, else the
detector's own record of the training centre (neural detectors'
standardisation mean/median, ECOD's sorted columns, KNN/LOF's training
rows, PCA's mean, Mahalanobis' location).  Detectors that keep no such
record (IsolationForest, OneClassSVM) need ``reference=X_train`` or an
explicit ``baseline``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "explain",
    "top_features",
    "top_feature_table",
    "explanation_method",
    "typical_encoded_row",
    "METHODS",
    "METHOD_DESCRIPTIONS",
]

METHODS = ("auto", "reconstruction", "integrated_gradients", "tail", "occlusion")

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
    if hasattr(det, "feature_errors"):
        return "reconstruction"
    if hasattr(det, "feature_scores"):
        return "tail"
    if _is_neural(det):
        return "integrated_gradients"
    return "occlusion"


METHOD_DESCRIPTIONS = {
    "reconstruction": "per-column share of the reconstruction error",
    "integrated_gradients": "integrated gradients from a typical training row (Sundararajan et al. 2017)",
    "tail": "per-column ECOD tail score",
    "occlusion": "score drop when the column is set to its typical training value",
}


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


# --------------------------------------------------------------------------- public API
def explain(
    model, X, top_k: int = 3, *, method: str = "auto", baseline=None, reference=None, n_steps: int = 32
) -> pd.DataFrame:
    """Per-row, per-column attributions of ``model``'s anomaly scores for the rows of ``X``.

    Parameters
    ----------
    model:
        a fitted deepad detector or :class:`~deepad.pipeline.TabularDetector`.
    X:
        rows to explain, as ``model.decision_function`` accepts them.
    top_k:
        how many top columns :func:`top_features` lists in ``result.attrs["top_features"]``.
    method:
        ``"auto"`` (see the module docstring), ``"reconstruction"``,
        ``"integrated_gradients"``, ``"tail"`` or ``"occlusion"``.
    baseline:
        the "typical row" for integrated gradients and occlusion, in the
        detector's input units (a raw table row is not accepted for a
        TabularDetector, whose baseline comes from its preprocessing state).
    reference:
        for bare detectors without a remembered training centre: rows whose
        per-feature median becomes the baseline (e.g. the training data).
    n_steps:
        integration points for integrated gradients.

    Returns
    -------
    DataFrame
        one row per row of ``X`` (same index when ``X`` is a DataFrame), one
        column per source column (a TabularDetector's schema feature
        columns; otherwise ``feature_names_in_`` or ``x0, x1, ...``).
        Higher = pushed the score up more.  ``attrs`` holds ``"method"``
        and ``"top_features"`` (strings, see :func:`top_features`).
    """
    from deepad.pipeline import TabularDetector

    check_is_fitted(model, "decision_scores_")
    how = explanation_method(model, method)
    if isinstance(model, TabularDetector):
        df = model._validate_for_scoring(X, warn_extra=False)
        Z = model.preprocessor.transform(df)
        det = model.detector_
        columns = [c["name"] for c in model.preprocessor.columns_]
        sources = np.asarray(model.feature_sources_, dtype=object)
        groups = [np.flatnonzero(sources == c) for c in columns]
        if baseline is None:
            base = typical_encoded_row(model.preprocessor)
        else:
            base = np.asarray(baseline, dtype=np.float64).ravel()
        index = df.index
    else:
        det = model
        Z = model._validate_for_scoring(X)
        d = Z.shape[1]
        names = getattr(model, "feature_names_in_", None)
        columns = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(d)]
        groups = [np.array([j]) for j in range(d)]
        base = None
        if how in ("integrated_gradients", "occlusion"):
            if baseline is not None:
                base = np.asarray(baseline, dtype=np.float64).ravel()
            elif reference is not None:
                base = np.median(model._validate_for_scoring(reference), axis=0)
            else:
                base = _detector_baseline(model)
                if base is None:
                    raise ValueError(
                        f"{type(model).__name__} keeps no record of its training data to take a typical "
                        "row from; pass reference=X_train (or baseline=...)."
                    )
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(Z.shape[0])
    if base is not None and base.shape != (Z.shape[1],):
        raise ValueError(f"baseline must have {Z.shape[1]} values (one per model input feature), got {base.shape[0]}.")

    if how == "reconstruction":
        values = _group_sum(_reconstruction(det, Z), groups)
    elif how == "tail":
        values = _group_sum(np.asarray(det.feature_scores(Z), dtype=np.float64), groups)
    elif how == "integrated_gradients":
        values = _group_sum(_integrated_gradients(det, Z, base, n_steps), groups)
    else:
        values = _occlusion(det, Z, base, groups)
    result = pd.DataFrame(values, columns=columns, index=index)
    result.attrs["method"] = how
    result.attrs["top_features"] = top_features(result, top_k)
    return result


def top_features(attributions: pd.DataFrame, k: int = 3, *, values: bool = True, sep: str = "; ") -> list[str]:
    """The ``k`` columns with the largest attributions of each row, as strings.

    ``"amount (+1.23); hour (+0.45)"`` with ``values=True``, else
    ``"amount; hour"``.  Only columns with a positive attribution (that
    raised the score) are listed, so a row can have fewer than ``k``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    names = np.asarray(attributions.columns, dtype=object)
    A = attributions.to_numpy(dtype=np.float64)
    order = np.argsort(-A, axis=1, kind="stable")[:, :k]
    out = []
    for r in range(A.shape[0]):  # formatting strings only; the attributions are computed above
        parts = [f"{names[j]} ({A[r, j]:+.3g})" if values else str(names[j]) for j in order[r] if A[r, j] > 0]
        out.append(sep.join(parts))
    return out


def top_feature_table(attributions: pd.DataFrame, k: int = 3) -> list[list[tuple[str, float]]]:
    """Per row, the ``k`` ``(column, attribution)`` pairs with the largest attributions (any sign), best first."""
    names = list(map(str, attributions.columns))
    A = attributions.to_numpy(dtype=np.float64)
    order = np.argsort(-A, axis=1, kind="stable")[:, :k]
    return [[(names[j], float(A[r, j])) for j in order[r]] for r in range(A.shape[0])]
