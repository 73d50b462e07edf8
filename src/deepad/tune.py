"""Hyper-parameter search for deepad detectors with Optuna (``pip install 'deepad[tune]'``).

:func:`tune` searches a detector's hyper-parameters with a seeded TPE
sampler (same ``random_state`` -> same trials) and refits the best
configuration on all of ``X``.  Two objectives:

**Labelled validation** (``X_val``, ``y_val`` given; ``y_val == 1`` marks an
anomaly): each trial fits on ``X`` and is scored by ``metric``
(``"roc_auc"`` or ``"average_precision"``) of its scores on ``X_val``.
Use it whenever a few labelled rows exist: it measures what you care about.

**Synthetic anomaly injection** (no labels).  Why: without labels there is
nothing to measure directly, and a detector's own training loss says
nothing about how well it separates anomalies (a model that reconstructs
everything perfectly has the lowest loss and detects nothing).  Instead,
following the idea of Steinbuss & Böhm (2021), "Benchmarking unsupervised
outlier detection with realistic synthetic data" (ACM TKDD), we hold out
``holdout_fraction`` of ``X`` (fixed once for all trials), create synthetic
anomalies from the held-out rows and ask each configuration, fitted on the
remaining rows, to rank the synthetic anomalies above the real held-out
rows.  The objective is the ROC-AUC of *held-out real rows (0) vs
synthetic anomalies (1)*.  The synthetic rows come in three equal parts,
one held-out row each:

* **feature shuffling** (dependency anomalies): a random subset of the
  columns (at least one, on average half) is replaced by values of other
  held-out rows, so every value is a plausible marginal value but the row
  breaks the correlations between columns;
* **local perturbation**: the numeric columns are moved away from the
  training median, ``x' = m + s * (x - m)`` with ``s ~ U(2, 5)`` per row, plus
  ``± U(1, 3)`` robust standard deviations (scaled IQR) so that rows at the
  median move too;
* **global**: numeric columns drawn uniformly from the training range
  widened by 10 % on each side (the "global outliers" of the paper).

Non-numeric columns (tables for :class:`deepad.pipeline.TabularDetector`)
take part in shuffling and keep their values otherwise.  The criterion
favours detectors that model the joint structure and the extent of the
data; it is a proxy, not a guarantee, and a labelled validation set should
be preferred when one exists.

Search spaces
-------------
A dict ``{parameter: spec}``; each spec is a list:

* ``["float", low, high]``        -- uniform float in [low, high]
* ``["log", low, high]``          -- log-uniform float (0 < low <= high)
* ``["int", low, high]``          -- integer in [low, high] (inclusive)
* ``["log_int", low, high]``      -- log-uniform integer (1 <= low <= high)
* ``["choice", [v1, v2, ...]]``   -- one of the listed values (any JSON value, e.g. ``[[64, 32], [128, 64]]``)

For example ``{"lr": ["log", 1e-4, 1e-2], "latent_dim": ["int", 2, 32],
"hidden_dims": ["choice", [[64, 32], [128, 64]]]}``.  ``None`` uses
:data:`DEFAULT_SPACES` for the detector.  For a
:class:`~deepad.pipeline.TabularDetector` template the space applies to its
wrapped ``detector``.  A malformed spec raises ``ValueError`` naming the
parameter.

Optuna is imported only inside :func:`tune`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone

__all__ = ["tune", "TuneResult", "DEFAULT_SPACES", "synthetic_anomalies", "METRICS"]

METRICS = ("roc_auc", "average_precision")

_AE_SPACE = {
    "hidden_dims": ["choice", [[64, 32], [128, 64], [32, 16], [64]]],
    "latent_dim": ["int", 2, 32],
    "lr": ["log", 1e-4, 1e-2],
    "epochs": ["int", 20, 150],
    "dropout": ["float", 0.0, 0.3],
    "weight_decay": ["log", 1e-7, 1e-3],
}

#: default search spaces by detector class name
DEFAULT_SPACES: dict[str, dict[str, list]] = {
    "AutoEncoder": _AE_SPACE,
    "VAE": {**_AE_SPACE, "beta": ["log", 0.1, 4.0]},
    "DeepSVDD": {
        "hidden_dims": ["choice", [[64], [128, 64], [32]]],
        "latent_dim": ["int", 4, 64],
        "lr": ["log", 1e-5, 1e-2],
        "epochs": ["int", 10, 100],
        "weight_decay": ["log", 1e-7, 1e-3],
    },
    "KNN": {"n_neighbors": ["log_int", 1, 100], "method": ["choice", ["largest", "mean", "median"]]},
    "LOF": {"n_neighbors": ["log_int", 5, 100]},
    "LocalGlobalEnsemble": {"n_neighbors": ["log_int", 1, 50], "local_weight": ["float", 0.0, 1.0]},
    "IsolationForest": {
        "n_estimators": ["log_int", 50, 500],
        "max_samples": ["choice", ["auto", 64, 128, 256, 512]],
        "max_features": ["float", 0.3, 1.0],
    },
    "HBOS": {"n_bins": ["log_int", 5, 100]},
}

_KINDS = ("float", "log", "int", "log_int", "choice")


@dataclass
class TuneResult:
    """What :func:`tune` found: the best parameters, their objective value, every trial and the refitted model."""

    best_params: dict
    best_value: float
    trials: pd.DataFrame
    model: Any
    objective: str = ""
    metric: str = "roc_auc"
    extra: dict = field(default_factory=dict)

    def save(self, path) -> None:
        """Save the tuned model (``deepad.load(path)`` reads it back)."""
        from deepad.persistence import save

        save(self.model, path)


# --------------------------------------------------------------------------- search spaces
def _template(detector) -> Any:
    """A detector instance from a class name, a class or an instance (cloned)."""
    from deepad.base import BaseDetector

    if isinstance(detector, str):
        from deepad.detectors import detector_class

        return detector_class(detector)()
    if isinstance(detector, type) and issubclass(detector, BaseDetector):
        return detector()
    if isinstance(detector, BaseDetector):
        return clone(detector)
    raise TypeError(f"detector must be a deepad detector class, instance or class name, got {detector!r}.")


def _inner(template):
    """The detector whose parameters are searched (a TabularDetector's wrapped detector)."""
    from deepad.pipeline import TabularDetector

    if isinstance(template, TabularDetector):
        return template._template()
    return template


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_space(space: Mapping, detector) -> dict[str, list]:
    """Validate a search space against ``detector``'s parameters; ``ValueError`` names the bad parameter."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"search_space must be a non-empty dict of parameter -> spec, got {space!r}.")
    known = detector.get_params(deep=False)
    out = {}
    for name, spec in space.items():
        where = f"search_space[{name!r}]"
        if name not in known:
            raise ValueError(
                f"{where}: {type(detector).__name__} has no parameter {name!r}; "
                f"its parameters are: {', '.join(sorted(known))}."
            )
        if not isinstance(spec, (list, tuple)) or not spec or spec[0] not in _KINDS:
            raise ValueError(f"{where}: expected [kind, ...] with kind one of {', '.join(_KINDS)}, got {spec!r}.")
        kind = spec[0]
        if kind == "choice":
            if len(spec) != 2 or not isinstance(spec[1], (list, tuple)) or not spec[1]:
                raise ValueError(f"{where}: expected ['choice', [value, ...]] with at least one value, got {spec!r}.")
            try:
                labels = [json.dumps(v) for v in spec[1]]
            except TypeError as exc:
                raise ValueError(f"{where}: choices must be JSON values (numbers, strings, lists): {exc}") from None
            if len(set(labels)) != len(labels):
                raise ValueError(f"{where}: duplicate choices in {spec[1]!r}.")
            out[name] = ["choice", list(spec[1])]
            continue
        if len(spec) != 3 or not _is_num(spec[1]) or not _is_num(spec[2]):
            raise ValueError(f"{where}: expected [{kind!r}, low, high] with finite numbers, got {spec!r}.")
        low, high = spec[1], spec[2]
        if low > high:
            raise ValueError(f"{where}: low must be <= high, got {spec!r}.")
        if kind in ("int", "log_int") and (int(low) != low or int(high) != high):
            raise ValueError(f"{where}: {kind} bounds must be integers, got {spec!r}.")
        if kind in ("log", "log_int") and low <= 0:
            raise ValueError(f"{where}: a log scale needs low > 0, got {spec!r}.")
        out[name] = [kind, low, high]
    return out


def _suggest(trial, space: dict[str, list]) -> dict:
    params = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "choice":
            # Optuna's categorical values must be scalars: suggest the JSON text, map back to the value.
            values = {json.dumps(v): v for v in spec[1]}
            value = values[trial.suggest_categorical(name, list(values))]
            params[name] = tuple(value) if isinstance(value, list) else value
        elif kind in ("float", "log"):
            params[name] = trial.suggest_float(name, float(spec[1]), float(spec[2]), log=kind == "log")
        else:
            params[name] = trial.suggest_int(name, int(spec[1]), int(spec[2]), log=kind == "log_int")
    return params


def _configure(template, params: dict, seed: int):
    """A fresh unfitted detector: ``template`` with ``params`` (on the wrapped detector of a pipeline)."""
    from deepad.pipeline import TabularDetector

    inner = clone(_inner(template))
    own = inner.get_params(deep=False)
    extra = {}
    if "random_state" in own and "random_state" not in params and own["random_state"] is None:
        extra["random_state"] = seed
    if "verbose" in own and "verbose" not in params:
        extra["verbose"] = False
    inner.set_params(**{**extra, **params})
    if isinstance(template, TabularDetector):
        return clone(template).set_params(detector=inner)
    return inner


# --------------------------------------------------------------------------- synthetic anomalies
def _numeric_columns(df: pd.DataFrame) -> list:
    return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


def synthetic_anomalies(X_ref, X_rows, seed: int = 0):
    """Synthetic anomalies made from the rows ``X_rows`` (see the module docstring), one per row.

    ``X_ref`` (the rows a detector is fitted on) gives the medians, spreads
    and ranges of the local and global perturbations.  Returns the same
    type as ``X_rows`` (NumPy array or DataFrame); deterministic in ``seed``.
    """
    as_array = not isinstance(X_rows, pd.DataFrame)
    rows = pd.DataFrame(np.asarray(X_rows, dtype=float)) if as_array else X_rows.reset_index(drop=True)
    ref = pd.DataFrame(np.asarray(X_ref, dtype=float)) if as_array else X_ref
    n, d = rows.shape
    if n < 3:
        raise ValueError(f"need at least 3 rows to make synthetic anomalies, got {n}.")
    rng = np.random.default_rng(seed)
    kind = np.arange(n) % 3
    rng.shuffle(kind)
    out = rows.copy()
    # 1. feature shuffling: each chosen cell takes the value of another (random) row of the same column
    for i in np.flatnonzero(kind == 0):
        mask = rng.random(d) < 0.5
        if not mask.any():
            mask[rng.integers(d)] = True
        donors = rng.integers(n - 1, size=d)
        donors = donors + (donors >= i)  # never the row itself
        for j in np.flatnonzero(mask):
            out.iat[i, j] = rows.iat[donors[j], j]
    num = _numeric_columns(rows)
    if num:
        R = ref[num].to_numpy(dtype=float)
        med = np.nanmedian(R, axis=0)
        q75, q25 = np.nanpercentile(R, [75, 25], axis=0)
        spread = np.where((q75 - q25) > 0, (q75 - q25) / 1.349, np.nanstd(R, axis=0))
        spread = np.where(spread > 0, spread, 1.0)
        lo, hi = np.nanmin(R, axis=0), np.nanmax(R, axis=0)
        width = np.where(hi > lo, hi - lo, 1.0)
        V = rows[num].to_numpy(dtype=float)
        V = np.where(np.isnan(V), med, V)
        # 2. local: scale away from the median, plus a push of 1-3 robust standard deviations
        idx = np.flatnonzero(kind == 1)
        s = rng.uniform(2.0, 5.0, size=(len(idx), 1))
        push = rng.uniform(1.0, 3.0, size=(len(idx), len(num))) * rng.choice([-1.0, 1.0], size=(len(idx), len(num)))
        local = med + s * (V[idx] - med) + push * spread
        # 3. global: uniform in the training range widened by 10 % each side
        idx_g = np.flatnonzero(kind == 2)
        glob = rng.uniform(lo - 0.1 * width, hi + 0.1 * width, size=(len(idx_g), len(num)))
        cols = [rows.columns.get_loc(c) for c in num]
        for block, ids in ((local, idx), (glob, idx_g)):
            for r, i in enumerate(ids):
                for k, j in enumerate(cols):
                    value = block[r, k]
                    if pd.api.types.is_integer_dtype(out.dtypes.iloc[j]):
                        value = int(round(value))
                    out.iat[i, j] = value
    return out.to_numpy(dtype=float) if as_array else out


# --------------------------------------------------------------------------- the search
def _take(X, idx):
    return X.iloc[idx].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[idx]


def _concat(a, b):
    return pd.concat([a, b], ignore_index=True) if isinstance(a, pd.DataFrame) else np.concatenate([a, b])


def _as_data(X, name: str):
    if isinstance(X, pd.DataFrame):
        return X.reset_index(drop=True)
    try:
        A = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array or a pandas DataFrame: {exc}") from None
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {A.shape}.")
    return A


def tune(
    detector,
    X,
    *,
    search_space: Mapping | None = None,
    X_val=None,
    y_val=None,
    n_trials: int = 20,
    timeout: float | None = None,
    random_state: int = 0,
    metric: str = "roc_auc",
    holdout_fraction: float = 0.3,
    refit: bool = True,
    refit_on=None,
) -> TuneResult:
    """Search ``detector``'s hyper-parameters with Optuna's seeded TPE sampler and refit the best on ``X``.

    Parameters
    ----------
    detector:
        a detector class name (``"AutoEncoder"``), class, or instance (its
        parameters are the starting point; a
        :class:`~deepad.pipeline.TabularDetector` instance tunes its wrapped
        detector and keeps its preprocessing).
    X:
        training data (array or, for a pipeline, a DataFrame).
    search_space:
        ``{parameter: spec}`` (format in the module docstring); ``None`` uses
        :data:`DEFAULT_SPACES`.
    X_val, y_val:
        a labelled validation set (``1`` = anomaly): objective = ``metric`` on
        it.  Without them, the synthetic-anomaly-injection objective (module
        docstring) is used.
    n_trials, timeout:
        stop after this many trials or seconds, whichever comes first.
    random_state:
        seeds the sampler, the hold-out split, the synthetic anomalies and
        detectors whose ``random_state`` is unset.
    metric:
        ``"roc_auc"`` or ``"average_precision"``.
    holdout_fraction:
        share of ``X`` held out for the synthetic objective.
    refit:
        refit the best configuration on all of ``X`` (``TuneResult.model``).
    refit_on:
        refit on this data instead of ``X``: e.g. ``X`` plus the validation
        rows, once they have done their job of choosing the parameters.
    """
    try:
        import optuna
    except ImportError:
        raise ImportError("deepad.tune needs Optuna: pip install 'deepad[tune]'") from None
    from sklearn.metrics import average_precision_score, roc_auc_score

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    if not isinstance(n_trials, (int, np.integer)) or isinstance(n_trials, bool) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}.")
    if timeout is not None and not (_is_num(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}.")
    if not (_is_num(holdout_fraction) and 0.0 < holdout_fraction < 1.0):
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}.")
    template = _template(detector)
    inner = _inner(template)
    if search_space is None:
        name = type(inner).__name__
        if name not in DEFAULT_SPACES:
            raise ValueError(
                f"no default search space for {name}; pass search_space= (defaults exist for "
                f"{', '.join(DEFAULT_SPACES)})."
            )
        search_space = DEFAULT_SPACES[name]
    space = check_space(search_space, inner)
    X = _as_data(X, "X")
    seed = int(random_state)
    score_fn = roc_auc_score if metric == "roc_auc" else average_precision_score

    if (X_val is None) != (y_val is None):
        raise ValueError("give both X_val and y_val for a labelled validation objective, or neither.")
    if X_val is not None:
        X_val = _as_data(X_val, "X_val")
        y = np.asarray(y_val, dtype=float).ravel()
        if len(y) != len(X_val):
            raise ValueError(f"y_val has {len(y)} labels for {len(X_val)} rows of X_val.")
        if not np.isin(y, (0, 1)).all() or len(np.unique(y)) != 2:
            raise ValueError("y_val must hold 0 (normal) and 1 (anomaly), with both present.")
        fit_X, eval_X, eval_y = X, X_val, y.astype(int)
        objective_name = f"{metric} on the labelled validation set ({len(y)} rows, {int(y.sum())} anomalies)"
    else:
        n = len(X)
        n_hold = int(round(holdout_fraction * n))
        if n_hold < 3 or n - n_hold < 3:
            raise ValueError(
                f"X has {n} rows: too few to hold out {holdout_fraction:.0%} for the synthetic-anomaly objective."
            )
        perm = np.random.default_rng(seed).permutation(n)
        fit_X, held = _take(X, np.sort(perm[n_hold:])), _take(X, np.sort(perm[:n_hold]))
        fake = synthetic_anomalies(fit_X, held, seed=seed)
        eval_X = _concat(held, fake)
        eval_y = np.r_[np.zeros(len(held), int), np.ones(len(fake), int)]
        objective_name = (
            f"{metric} of {len(held)} held-out rows vs {len(fake)} synthetic anomalies "
            f"(feature shuffling, local and global perturbations)"
        )

    def objective(trial) -> float:
        model = _configure(template, _suggest(trial, space), seed)
        model.fit(fit_X)
        scores = np.asarray(model.decision_function(eval_X), dtype=float)
        if not np.isfinite(scores).all():
            raise ValueError(f"trial {trial.number}: non-finite scores with {trial.params}")
        return float(score_fn(eval_y, scores))

    logger = optuna.logging.get_logger("optuna")
    old_level = logger.level
    logger.setLevel(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=int(n_trials), timeout=timeout, catch=(ValueError, RuntimeError))
    finally:
        logger.setLevel(old_level)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        errors = [t.user_attrs.get("error") or t.system_attrs.get("fail_reason") for t in study.trials]
        raise RuntimeError(f"all {len(study.trials)} trials failed; first error: {errors[0] if errors else None}")
    best = study.best_trial
    best_params = {}
    for name, spec in space.items():
        v = best.params[name]
        best_params[name] = (
            tuple(json.loads(v))
            if spec[0] == "choice" and isinstance(json.loads(v), list)
            else (json.loads(v) if spec[0] == "choice" else v)
        )
    model = None
    if refit:
        model = _configure(template, best_params, seed)
        model.fit(X if refit_on is None else refit_on)
    return TuneResult(
        best_params=best_params,
        best_value=float(best.value),
        trials=study.trials_dataframe(),
        model=model,
        objective=objective_name,
        metric=metric,
        extra={"n_complete": len(done), "n_trials": len(study.trials)},
    )
