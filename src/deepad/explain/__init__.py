"""Why is this row anomalous?  Per-column attributions of anomaly scores, for every detector.

:func:`explain` returns, for each row, how much each *source column* (the
user's own column names) contributed to the row's anomaly score; positive
values push the score up.  Encoded features that come from one column -- a
one-hot block, a missing-value indicator, a datetime's sine/cosine pairs --
are summed into that column (:attr:`deepad.pipeline.TabularDetector.feature_sources_`).

``"shapley"`` (the default, ``method="auto"``, for every detector)
    Shapley values of the source columns against the typical training row
    (below): the value of a set of columns is the score with those columns
    kept and the others typical, and each column gets its average effect
    over all orders of repairing the others (:mod:`deepad.explain.shapley`;
    Sundararajan & Najmi, ICML 2020, "baseline Shapley").  Attributions
    sum to ``f(x) - f(typical)``.  Unlike one-column occlusion it credits
    columns that are anomalous only *together*: a row with four unusual
    columns stays anomalous when any one is made typical, so occlusion
    gives each ~0 (or less) while Shapley splits the drop between them.
    Exact (every coalition, ``2^g`` scores per row, batched) up to 10
    columns, antithetic permutation sampling with a seed above.  Only
    ``decision_function`` is needed.  On planted anomalies moving 1, 2 or 3
    columns at once it names the planted columns as often as occlusion or
    more for every family but DAGMM, far more often when several columns
    move (``benchmarks/explanations.py``; the choice is argued in
    ``docs/design/explanations.md``).  One exception to "the typical row":
    for an :class:`~deepad.detectors.IsolationForest` in a TabularDetector
    the game's reference takes each categorical column at its training
    mix (one-hot features at the categories' training shares), which a
    tree reads as the expected path over the categories, so an ordinary
    non-modal category is not credited as a cause (``mixes_categories``;
    ``benchmarks/results/explanations/MISSES.md``); attributions then sum
    to ``f(x) - f(that row)``.

:func:`counterfactual` (or ``explain(..., counterfactual=True)``): the
smallest set of columns whose repair to typical values takes a flagged
row under the threshold, with the bound each repaired numeric column
could stay within ("typical would be amount <= 356; n_tx_24h <= 11"),
see :mod:`deepad.explain.counterfactual`.

The detector-specific methods stay available by name; each follows the
detector's own scoring rule:

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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from deepad.explain._methods import (
    _IG_CELLS_PER_CHUNK,
    _OCCLUSION_CELLS_PER_CALL,
    BASELINE_METHODS,
    METHOD_DESCRIPTIONS,
    METHODS,
    _detector_baseline,
    _group_sum,
    _inner,
    _integrated_gradients,
    _is_neural,
    _occlusion,
    _reconstruction,
    category_mix_row,
    explanation_method,
    family_method,
    method_description,
    mixes_categories,
    typical_encoded_row,
)
from deepad.explain.shapley import MAX_EXACT, shapley_values

__all__ = [
    "explain",
    "counterfactual",
    "top_features",
    "top_feature_table",
    "explanation_method",
    "family_method",
    "method_description",
    "typical_encoded_row",
    "METHODS",
    "BASELINE_METHODS",
    "METHOD_DESCRIPTIONS",
    "NEGLIGIBLE",
    "BULK_SHAPLEY",
]
_ = (_IG_CELLS_PER_CHUNK, _OCCLUSION_CELLS_PER_CALL, _inner, _is_neural)  # old private names, still importable here

#: Shapley settings for many rows at once (``deepad score --explain``, the service's ``?explain=``): 8 antithetic
#: permutations, ``8 (g - 1) + 2`` scores per row instead of ``2^g``; as accurate on the benchmark (``shap8``).
BULK_SHAPLEY = {"max_exact": 0, "n_permutations": 8}

#: Attributions smaller than this share of a row's total absolute attribution (and exact zeros) are not listed.
NEGLIGIBLE = 0.01


@dataclass
class _Problem:
    """One explain request in the detector's input units: rows, typical row, source-column groups."""

    det: Any
    Z: np.ndarray
    base: np.ndarray | None
    groups: list[np.ndarray]
    columns: list[str]
    index: pd.Index
    preprocessor: Any = None
    #: the Shapley game's reference row when it is not ``base`` (IsolationForest: categories at their training mix)
    shapley_base: np.ndarray | None = None


def _as_baseline(baseline, how: str) -> np.ndarray:
    base = np.asarray(baseline, dtype=np.float64)
    if base.ndim == 2 and how == "shapley":
        return base  # a reference set: the Shapley game averages over its rows
    return base.ravel()


def _problem(model, X, how: str, baseline, reference) -> _Problem:
    from deepad.pipeline import TabularDetector

    if isinstance(model, TabularDetector):
        df = model._validate_for_scoring(X, warn_extra=False)
        Z = model.preprocessor.transform(df)
        columns = [c["name"] for c in model.preprocessor.columns_]
        sources = np.asarray(model.feature_sources_, dtype=object)
        groups = [np.flatnonzero(sources == c) for c in columns]
        if baseline is None:
            base = typical_encoded_row(model.preprocessor)
        else:
            base = _as_baseline(baseline, how)
        problem = _Problem(model.detector_, Z, base, groups, columns, df.index, model.preprocessor)
        if baseline is None and mixes_categories(model.detector_):
            problem.shapley_base = category_mix_row(model.preprocessor, base)
    else:
        Z = model._validate_for_scoring(X)
        d = Z.shape[1]
        names = getattr(model, "feature_names_in_", None)
        columns = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(d)]
        base = None
        if how in BASELINE_METHODS:
            if baseline is not None:
                base = _as_baseline(baseline, how)
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
        problem = _Problem(model, Z, base, [np.array([j]) for j in range(d)], columns, index)
    if problem.base is not None and problem.base.shape[-1] != problem.Z.shape[1]:
        raise ValueError(
            f"baseline must have {problem.Z.shape[1]} values (one per model input feature), got {problem.base.shape[-1]}."
        )
    return problem


def _counterfactuals(model, p: _Problem, phi, masks, V) -> list[dict]:
    from deepad.explain.counterfactual import column_specs, counterfactuals

    specs = column_specs(p.preprocessor, p.columns, p.base)
    scores = np.asarray(p.det.decision_function(p.Z), dtype=np.float64)
    return counterfactuals(
        p.det, p.Z, p.base, p.groups, specs, float(model.threshold_), scores, phi=phi, masks=masks, V=V
    )


# --------------------------------------------------------------------------- public API
def explain(
    model,
    X,
    top_k: int = 3,
    *,
    method: str = "auto",
    baseline=None,
    reference=None,
    n_steps: int = 32,
    counterfactual: bool = False,
    max_exact: int = MAX_EXACT,
    n_permutations: int = 64,
    random_state: int | None = 0,
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
        ``"auto"`` (= ``"shapley"``, see the module docstring), ``"shapley"``,
        ``"reconstruction"``, ``"integrated_gradients"``, ``"tail"`` or ``"occlusion"``.
    baseline:
        the "typical row" for Shapley values, integrated gradients and
        occlusion, in the detector's input units (a raw table row is not
        accepted for a TabularDetector, whose baseline comes from its
        preprocessing state).
    reference:
        for bare detectors without a remembered training centre: rows whose
        per-feature median becomes the baseline (e.g. the training data).
    n_steps:
        integration points for integrated gradients.
    counterfactual:
        also compute :func:`counterfactual` (free with exact Shapley values)
        into ``result.attrs["counterfactual"]``; needs ``method="shapley"``.
    max_exact, n_permutations, random_state:
        Shapley values: exact enumeration up to ``max_exact`` columns, else
        ``n_permutations`` antithetic permutations drawn with ``random_state``.

    Returns
    -------
    DataFrame
        one row per row of ``X`` (same index when ``X`` is a DataFrame), one
        column per source column (a TabularDetector's schema feature
        columns; otherwise ``feature_names_in_`` or ``x0, x1, ...``).
        Higher = pushed the score up more.  ``attrs`` holds ``"method"``
        and ``"top_features"`` (strings, see :func:`top_features`), and
        ``"counterfactual"`` when asked for.
    """
    check_is_fitted(model, "decision_scores_")
    how = explanation_method(model, method)
    if counterfactual and how != "shapley":
        raise ValueError(f"counterfactual=True needs method='shapley' (or 'auto'), got method={method!r}.")
    p = _problem(model, X, how, baseline, reference)
    det, Z = p.det, p.Z
    if how == "reconstruction":
        values = _group_sum(_reconstruction(det, Z), p.groups)
    elif how == "tail":
        values = _group_sum(np.asarray(det.feature_scores(Z), dtype=np.float64), p.groups)
    elif how == "integrated_gradients":
        values = _group_sum(_integrated_gradients(det, Z, p.base, n_steps), p.groups)
    elif how == "occlusion":
        values = _occlusion(det, Z, p.base, p.groups)
    else:
        shap = {"max_exact": max_exact, "n_permutations": n_permutations, "random_state": random_state}
        base = p.base if p.shapley_base is None else p.shapley_base
        values, masks, V = shapley_values(det, Z, base, p.groups, **shap)
    result = pd.DataFrame(values, columns=p.columns, index=p.index)
    result.attrs["method"] = how
    result.attrs["top_features"] = top_features(result, top_k)
    if counterfactual:
        if p.shapley_base is not None:  # the repair is to the typical (real) row: its own game
            values, masks, V = shapley_values(det, Z, p.base, p.groups, **shap)
        result.attrs["counterfactual"] = _counterfactuals(model, p, values, masks, V)
    return result


def counterfactual(model, X, *, baseline=None, reference=None, max_exact: int = MAX_EXACT, **kwargs) -> pd.DataFrame:
    """For each row, the smallest set of columns whose repair to typical values brings its score under the threshold.

    See :mod:`deepad.explain.counterfactual`.  Returns a DataFrame indexed
    like ``X`` with ``score``, ``flagged``, ``found`` (False when even the
    typical row is above the threshold), ``repair`` (the column names, most
    anomalous first; empty for rows already under the threshold),
    ``score_after`` (the score with them repaired), ``conditions`` (per
    column ``{"column", "op", "value", "text"}``: ``amount <= 356``,
    ``country = US``) and ``text`` (the conditions joined by ``"; "``).
    """
    check_is_fitted(model, "decision_scores_")
    p = _problem(model, X, "shapley", baseline, reference)
    phi, masks, V = shapley_values(p.det, p.Z, p.base, p.groups, max_exact=max_exact, **kwargs)
    rows = _counterfactuals(model, p, phi, masks, V)
    scores = np.asarray(p.det.decision_function(p.Z), dtype=np.float64)
    frame = pd.DataFrame(rows, index=p.index)
    frame.insert(0, "score", scores)
    return frame[["score", "flagged", "found", "repair", "score_after", "conditions", "text"]]


def _listed(A: np.ndarray) -> np.ndarray:
    """Which attributions are worth listing: non-zero and at least :data:`NEGLIGIBLE` of the row's total |a|."""
    total = np.nansum(np.abs(A), axis=1, keepdims=True)
    return np.isfinite(A) & (A != 0) & (np.abs(A) >= NEGLIGIBLE * total) | ~np.isfinite(A) & ~np.isnan(A)


def top_features(attributions: pd.DataFrame, k: int = 3, *, values: bool = True, sep: str = "; ") -> list[str]:
    """The ``k`` columns with the largest attributions of each row, as strings.

    ``"amount (+1.23); hour (+0.45)"`` with ``values=True``, else
    ``"amount; hour"``.  Only columns that raised the score are listed, and
    not negligible ones (below :data:`NEGLIGIBLE` of the row's total
    absolute attribution, or exactly 0), so a row can have fewer than ``k``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    names = np.asarray(attributions.columns, dtype=object)
    A = attributions.to_numpy(dtype=np.float64)
    order = np.argsort(-A, axis=1, kind="stable")[:, :k]
    show = _listed(A) & (A > 0)
    out = []
    for r in range(A.shape[0]):  # formatting strings only; the attributions are computed above
        parts = [f"{names[j]} ({A[r, j]:+.3g})" if values else str(names[j]) for j in order[r] if show[r, j]]
        out.append(sep.join(parts))
    return out


def top_feature_table(attributions: pd.DataFrame, k: int = 3) -> list[list[tuple[str, float]]]:
    """Per row, the ``k`` ``(column, attribution)`` pairs with the largest attributions, best first.

    Negative attributions (the column made the row look *more* normal) are
    kept; negligible ones (see :func:`top_features`) are dropped.
    """
    names = list(map(str, attributions.columns))
    A = attributions.to_numpy(dtype=np.float64)
    order = np.argsort(-A, axis=1, kind="stable")[:, :k]
    show = _listed(A)
    return [[(names[j], float(A[r, j])) for j in order[r] if show[r, j]] for r in range(A.shape[0])]
