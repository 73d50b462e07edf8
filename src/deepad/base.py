"""The detector contract every deepad detector follows.

It is scikit-learn's estimator contract (hyper-parameters in ``__init__``,
stored unchanged; learned state ends in ``_``; ``fit`` returns ``self``) plus
PyOD's detector contract (higher ``decision_function`` = more anomalous,
``predict`` gives 1 for anomalies, ``decision_scores_``, ``threshold_``,
``labels_``, ``contamination``), so users can swap a deepad detector for a
PyOD one and back.

Subclasses implement two methods:

* ``_fit(X, y, seed)`` -- learn from a validated float array;
* ``_score(X)`` -- return one float per row, higher = more anomalous.

The base class owns everything else: validation with clear messages,
seeding, thresholds, calibrated probabilities, re-thresholding and saving.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from deepad import persistence as _persistence
from deepad import thresholds as _thr

__all__ = ["BaseDetector", "LabelsIgnoredWarning", "check_finite", "resolve_seed", "validate_X", "validate_labels"]


class LabelsIgnoredWarning(UserWarning):
    """Raised when ``fit`` receives labels that the detector cannot use."""


# --------------------------------------------------------------------------- validation
def _describe(X: Any) -> str:
    shape = getattr(X, "shape", None)
    return f"{type(X).__name__} of shape {shape}" if shape is not None else type(X).__name__


def validate_X(
    X: Any,
    *,
    name: str = "X",
    min_samples: int = 1,
    n_features: int | None = None,
    feature_names: list[str] | None = None,
    who: str = "detector",
    contiguous: bool = True,
    finite: bool = True,
) -> np.ndarray:
    """Return ``X`` as a C-contiguous float64 2-D array or raise a message that names the problem.

    ``contiguous=False`` returns a float64 array in whatever memory layout it already has (a column-major
    matrix is not copied into row-major): for callers that read it in row batches into buffers of their own.
    ``finite=False`` leaves out the test for NaN and infinity: for callers that make it themselves while they
    read the rows, with :func:`check_finite` on the array to word the error (``BaseDetector._checks_finite``).

    Accepts NumPy arrays, nested lists and pandas DataFrames with numeric
    columns.  Errors name the shape, the offending column and the first bad
    row, because "Input contains NaN" from deep inside a library tells a user
    nothing about *where* to look.
    """
    columns: list[str] | None = None
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(X, pd.Series):
        raise ValueError(
            f"{name} is a 1-D pandas Series of length {len(X)}; pass a DataFrame "
            "or a 2-D array of shape (n_samples, n_features), e.g. series.to_frame()."
        )
    if pd is not None and isinstance(X, pd.DataFrame):
        columns = [str(c) for c in X.columns]
        bad = [
            f"{c!r} ({X[c].dtype})"
            for c in X.columns
            if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
        ]
        if bad:
            raise TypeError(
                f"{name} has non-numeric columns: {', '.join(bad[:10])}. Encode them first "
                "(deepad.data.TabularPreprocessor does this and saves the encoding with the model)."
            )
        arr = X.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = np.asarray(X)
        if arr.dtype == object or arr.dtype.kind in "USMmV":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{name} has dtype {arr.dtype} and cannot be read as numbers; encode non-numeric columns first."
                ) from None
        elif arr.dtype.kind == "c":
            raise TypeError(f"{name} has complex dtype {arr.dtype}; anomaly detectors need real numbers.")
        elif arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} has unsupported dtype {arr.dtype}.")
        arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2:
        hint = (
            " Reshape with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one row." if arr.ndim == 1 else ""
        )
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {arr.ndim}-D input of shape {arr.shape}.{hint}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape} has no rows.")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features: shape {arr.shape}.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, but this {who} was fitted with {n_features} features.")
    if feature_names is not None and columns is not None and columns != list(feature_names):
        missing = [c for c in feature_names if c not in columns]
        extra = [c for c in columns if c not in feature_names]
        detail = f"missing {missing}" if missing else ""
        detail += ("; " if detail and extra else "") + (f"unexpected {extra}" if extra else "")
        raise ValueError(f"{name}'s columns differ from those seen in fit: {detail or 'same names, different order'}.")
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} has {arr.shape[0]} rows, but this {who} needs at least {min_samples}.")
    if finite:
        check_finite(arr, name=name, columns=columns)
    return np.ascontiguousarray(arr) if contiguous else arr


def check_finite(arr: np.ndarray, *, name: str = "X", columns: list[str] | None = None) -> None:
    """Raise ``ValueError`` naming the first NaN or infinity of a 2-D float array (row, column, how many in all).

    A finite sum means every value is finite (NaN and infinity propagate); only a non-finite sum (a bad value, or
    finite values that overflow when added) needs the full test.  One pass, no boolean copy: 0.012 s against
    0.017 s for 400,000 x 30 rows (benchmarks/throughput.py, target 3).
    """
    if np.isfinite(np.add.reduce(arr, axis=None)):
        return
    finite = np.isfinite(arr)
    if finite.all():
        return
    rows, cols = np.nonzero(~finite)
    r, c = int(rows[0]), int(cols[0])
    what = "NaN" if np.isnan(arr[r, c]) else "infinity"
    col = repr(columns[c]) if columns else str(c)
    raise ValueError(
        f"{name} contains {what} (first at row {r}, column {col}; {rows.size} non-finite "
        "values in total). Impute missing values first, e.g. with "
        "deepad.data.TabularPreprocessor or sklearn.impute.SimpleImputer."
    )


def validate_labels(y: Any, n_samples: int) -> np.ndarray:
    """Weak-supervision labels: 1 = known anomaly, 0 = known normal, -1 or NaN = unlabelled."""
    raw = np.asarray(y, dtype=object).ravel()
    try:
        arr = np.asarray(y, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        r = next(i for i, v in enumerate(raw) if not _is_number(v))
        raise ValueError(
            f"y must hold 1 (anomaly), 0 (normal) or -1/NaN (unlabelled); row {r} holds {raw[r]!r}, not a number."
        ) from None
    if arr.shape[0] != n_samples:
        raise ValueError(f"y has {arr.shape[0]} entries but X has {n_samples} rows.")
    arr = np.where(np.isnan(arr), -1.0, arr)
    bad = ~np.isin(arr, (-1.0, 0.0, 1.0))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"y must hold 1 (anomaly), 0 (normal) or -1/NaN (unlabelled); row {r} holds {float(arr[r]):g}."
        )
    return arr.astype(np.int64)


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


class ParameterTypeError(TypeError, ValueError):
    """A hyper-parameter of the wrong type: both a ``TypeError`` and a ``ValueError`` (as scikit-learn's
    ``InvalidParameterError``), so callers catching either get it."""


def check_int_param(value: Any, name: str, low: int = 1, *, allowed: str | None = None) -> int:
    """A hyper-parameter that must be an integer ``>= low`` (``bool`` is not an integer here), as an ``int``.

    The one integer check of the detectors.  The error names the parameter
    and the accepted values, ``allowed`` (default ``"an integer >= low"``;
    e.g. ``"a positive integer"``): ``ValueError`` below ``low``,
    :class:`ParameterTypeError` (a ``TypeError`` and a ``ValueError``) for a
    value that is not an integer at all.
    """
    what = allowed or f"an integer >= {low}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ParameterTypeError(f"{name} must be {what}, got {value!r}.")
    if value < low:
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return int(value)


def check_loaded_number(obj: Any, name: str) -> float:
    """``obj.<name>`` as a float; ``ValueError`` naming it unless it is a finite real number (not a bool)."""
    value = getattr(obj, name, None)
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not np.isfinite(value)
    ):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def check_loaded_scores(obj: Any, name: str) -> int:
    """Length of ``obj.<name>``; ``ValueError`` naming it unless it is a non-empty 1-D float array without NaN."""
    value = getattr(obj, name, None)
    if not (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and value.size > 0
        and np.issubdtype(value.dtype, np.floating)
        and not np.isnan(value).any()
    ):
        shape = getattr(value, "shape", type(value).__name__)
        raise ValueError(f"{name} must be a non-empty 1-D array of scores without NaN, got {shape}.")
    return int(value.size)


def resolve_seed(random_state: Any) -> int:
    """Turn ``random_state`` into one integer seed without touching global RNG state.

    ``None`` draws fresh entropy from the OS (a new, independent stream), an
    int is used as is, and a NumPy ``Generator``/``RandomState`` is asked for
    one integer (so it advances, as scikit-learn does).
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, (bool, np.bool_)):
        raise TypeError("random_state must be None, an int or a NumPy random generator, not a bool.")
    if isinstance(random_state, numbers.Integral):
        if random_state < 0:
            raise ValueError(f"random_state must be non-negative, got {random_state}.")
        return int(random_state) % (2**32)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**32 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise TypeError(
        f"random_state must be None, an int or a NumPy random generator, got {type(random_state).__name__}."
    )


# --------------------------------------------------------------------------- contract
class BaseDetector(BaseEstimator):
    """Base class of every deepad detector.

    Thresholding.  After ``fit``, ``threshold_`` is the ``1 - contamination``
    quantile of ``decision_scores_`` and ``labels_`` flags the training rows
    above it (PyOD's rule), so ``labels_.mean() == contamination`` up to
    ties and rounding to whole rows.  ``decision_scores_`` are the training
    rows scored as new rows would be: in-sample for most detectors,
    *leave-one-out* (each row without itself, as PyOD's KNN reports them)
    for detectors that memorise their rows -- for those
    ``decision_function(X_train)`` differs, each row finding itself.
    :meth:`set_threshold` changes it later without retraining -- by
    contamination, by a target false-positive rate on clean calibration
    scores, by extreme-value (POT) fitting, or to a fixed value.

    Probabilities.  :meth:`predict_proba` returns ``[1 - q, q]`` where
    ``q = 1 - p`` and ``p`` is the *conformal p-value* of the score against
    the reference scores (the training scores, or those from
    :meth:`calibrate` on clean data).  On exchangeable normal data those
    p-values are uniform, so ``q`` is a calibrated "how unusual" probability,
    not a min-max-stretched score.
    """

    #: Fewest rows ``fit`` accepts.  Subclasses raise it where the model needs more.
    _min_samples_fit: int = 2
    #: Whether ``fit`` can use labels (weak supervision).
    _uses_labels: bool = False

    # ----------------------------------------------------------------- hooks
    def _fit(self, X: np.ndarray, y: np.ndarray | None, seed: int, **fit_params) -> None:  # pragma: no cover
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    #: Whether :meth:`_training_reference_scores` scores the training rows itself, without the in-sample
    #: ``decision_scores_`` (leave-one-out detectors, pipelines): ``fit`` then skips the in-sample pass.
    _reference_needs_in_sample: bool = True
    #: What the training scores are, in the words of the threshold rule ("leave-one-out training scores").
    _training_scores_kind: str = "in-sample training scores"
    #: Whether :meth:`_score` reads its rows in batches into buffers of its own, so the rows it is given may be
    #: column-major (the layout :class:`~deepad.data.TabularPreprocessor` encodes in): the scores are the same
    #: and the row-major copy of the whole matrix is saved.  Set by the detectors whose scoring does this.
    _scores_any_layout: bool = False
    #: Whether :meth:`_score` tests its rows for NaN and infinity itself while it reads them (raising
    #: :func:`check_finite`'s error), so :meth:`decision_function` given a NumPy array skips that separate pass
    #: over it.  A DataFrame is still tested while it is converted, so its error names the column by its name.
    _checks_finite: bool = False

    def _training_reference_scores(self, X: np.ndarray) -> np.ndarray:
        """Scores of the training rows as *new* data would see them: ``decision_scores_``, ``threshold_`` and ``labels_``.

        For most detectors this is the in-sample score (``decision_scores_``
        as :meth:`_score` gives it, set before this is called).  Detectors
        that memorise their training rows (kNN, LOF, ECOD, HBOS, DEFAULT)
        override it with leave-one-out scores -- a training row is its own
        nearest neighbour, so its in-sample score is biased low and a
        threshold built on it would flag too many new rows -- and set
        ``_reference_needs_in_sample = False`` so the in-sample pass is skipped.
        """
        return self.decision_scores_

    def training_scores_kind(self) -> str:
        """What ``decision_scores_`` are, e.g. ``"leave-one-out training scores"`` (the threshold's wording)."""
        return self._training_scores_kind

    def _min_samples(self) -> int:
        return self._min_samples_fit

    # ----------------------------------------------------------------- public API
    def fit(self, X, y=None, **fit_params):
        """Learn what normal looks like from ``X`` and set ``threshold_`` from the training scores.

        ``fit_params`` go to the detector's own ``_fit``; neural detectors
        take ``callbacks`` (e.g. :class:`deepad.training.TensorBoardLogger`).

        ``y`` is used only by weakly supervised detectors (1 = anomaly,
        0 = normal, -1/NaN = unlabelled); other detectors warn that they
        ignore it rather than silently dropping the information.
        """
        contamination = _thr.validate_contamination(self.contamination)
        Xv, feature_names = self._validate_for_fit(X)
        labels = None
        if y is not None:
            if self._uses_labels:
                labels = validate_labels(y, Xv.shape[0])
            else:
                warnings.warn(
                    f"{type(self).__name__} is unsupervised and ignores y; use DeepSAD or DevNet "
                    "to learn from labelled anomalies.",
                    LabelsIgnoredWarning,
                    stacklevel=2,
                )
        self.n_features_in_ = Xv.shape[1]
        if feature_names is not None:
            self.feature_names_in_ = np.asarray(feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.seed_ = resolve_seed(getattr(self, "random_state", None))
        self._fit(Xv, labels, self.seed_, **fit_params)
        # Training scores come from the *final* model in inference mode; for a detector that memorises its rows
        # they are leave-one-out (each row scored without itself, as PyOD's KNN does), so decision_scores_,
        # threshold_ and labels_ describe the same scores and labels_.mean() is contamination (up to ties).
        if self._reference_needs_in_sample:
            self.decision_scores_ = np.asarray(self._score(Xv), dtype=np.float64)
        self.decision_scores_ = np.asarray(self._training_reference_scores(Xv), dtype=np.float64)
        self._reference_scores_ = self.decision_scores_  # one array (saved once); old models hold two
        self.threshold_ = _thr.contamination_threshold(self._reference_scores_, contamination)
        self.threshold_method_ = {
            "method": "contamination",
            "contamination": contamination,
            "scores": self.training_scores_kind(),
        }
        self._set_training_labels()
        return self

    def _validate_for_fit(self, X) -> tuple[Any, list[str] | None]:
        """Hook: the training input as ``_fit`` receives it, and its column names (``None`` for arrays).

        The default turns ``X`` into a finite float array (:func:`validate_X`).
        Detectors that accept raw tables (:class:`deepad.pipeline.TabularDetector`)
        override it together with :meth:`_validate_for_scoring`; whatever they
        return must have ``shape[0]`` rows and ``shape[1]`` columns.
        """
        feature_names = list(map(str, X.columns)) if hasattr(X, "columns") else None
        return validate_X(X, min_samples=self._min_samples(), who=type(self).__name__), feature_names

    def _validate_for_scoring(self, X, *, finite: bool = True) -> np.ndarray:
        """``X`` checked against the fitted shape and names; ``finite=False`` leaves the NaN/infinity test to
        :meth:`_score` (only :meth:`decision_function` passes it, for a detector with ``_checks_finite``)."""
        check_is_fitted(self, "decision_scores_")
        names = list(self.feature_names_in_) if hasattr(self, "feature_names_in_") else None
        return validate_X(
            X,
            n_features=self.n_features_in_,
            feature_names=names,
            who=type(self).__name__,
            contiguous=not self._scores_any_layout,
            finite=finite,
        )

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each row; higher means more anomalous.

        Inputs are checked to be finite, so a score that is not a number can
        only come from arithmetic overflowing on values far outside anything
        seen in training (e.g. 1e308 in a column whose spread is 1): such a
        row gets ``+inf``, the most anomalous score, never a NaN that every
        threshold comparison would call normal.
        """
        if self._checks_finite and isinstance(X, np.ndarray):  # _score tests the rows as it reads them
            Xv = self._validate_for_scoring(X, finite=False)
        else:
            Xv = self._validate_for_scoring(X)
        scores = np.array(self._score(Xv), dtype=np.float64)
        scores[np.isnan(scores)] = np.inf
        return scores

    def score_samples(self, X) -> np.ndarray:
        """scikit-learn's sign convention (higher = more normal): ``-decision_function(X)``."""
        return -self.decision_function(X)

    def predict(self, X) -> np.ndarray:
        """1 for rows scoring above ``threshold_`` (anomalies), 0 otherwise."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X, y).labels_

    def p_values(self, X) -> np.ndarray:
        """Conformal p-value of each row against the reference (training or calibration) scores."""
        return _thr.conformal_p_values(self.p_value_reference, self.decision_function(X))

    def predict_proba(self, X) -> np.ndarray:
        """``(n, 2)`` array: column 1 is the probability of being anomalous, ``1 - p_value``."""
        q = 1.0 - self.p_values(X)
        return np.column_stack([1.0 - q, q])

    def calibrate(self, X_clean):
        """Use scores of clean (normal-only) held-out rows as the reference for p-values and FPR thresholds.

        Training scores are in-sample and so slightly optimistic; a clean
        calibration split gives p-values with the conformal guarantee.
        """
        self.calibration_scores_ = self.decision_function(X_clean)
        return self

    @property
    def p_value_reference(self) -> np.ndarray:
        """The scores new rows are ranked against for p-values and FPR/POT thresholds.

        ``calibration_scores_`` after :meth:`calibrate`, else the training
        rows' reference scores (leave-one-out where the detector memorises).
        """
        calibration = getattr(self, "calibration_scores_", None)
        return self._training_reference() if calibration is None else calibration

    @property
    def _p_value_reference(self) -> np.ndarray:  # the old private name, kept for callers outside deepad
        return self.p_value_reference

    def set_threshold(
        self,
        *,
        contamination: float | None = None,
        fpr: float | None = None,
        pot_risk: float | None = None,
        value: float | None = None,
    ):
        """Re-threshold without retraining; give exactly one of the keyword arguments.

        * ``contamination`` -- flag that fraction of the training rows (the
          ``1 - contamination`` quantile of ``decision_scores_``);
        * ``fpr`` -- target false-positive rate on the reference scores
          (the calibration scores if :meth:`calibrate` was called);
        * ``pot_risk`` -- extreme-value (peaks-over-threshold) tail fit on the
          reference scores; needs no contamination guess;
        * ``value`` -- a threshold in score units.

        ``labels_`` is recomputed: the training rows whose ``decision_scores_``
        exceed the new threshold.
        """
        check_is_fitted(self, "decision_scores_")
        given = {
            k: v
            for k, v in dict(contamination=contamination, fpr=fpr, pot_risk=pot_risk, value=value).items()
            if v is not None
        }
        if len(given) != 1:
            raise ValueError(
                f"set_threshold takes exactly one of contamination, fpr, pot_risk, value; got {sorted(given) or 'none'}."
            )
        ((kind, arg),) = given.items()
        if kind == "contamination":
            self.threshold_ = _thr.contamination_threshold(self._training_reference(), arg)
        elif kind == "fpr":
            self.threshold_ = _thr.fpr_threshold(self.p_value_reference, arg)
        elif kind == "pot_risk":
            self.threshold_ = _thr.pot_threshold(self.p_value_reference, risk=arg)
        else:
            if not np.isfinite(arg):
                raise ValueError(f"threshold value must be finite, got {arg}.")
            self.threshold_ = float(arg)
        self.threshold_method_ = {
            "method": kind,
            kind: float(arg),
            "reference": "calibration" if hasattr(self, "calibration_scores_") else "training",
            "scores": self.training_scores_kind(),
        }
        self._set_training_labels()
        return self

    def _set_training_labels(self) -> None:
        """``labels_``: the training rows whose reference score -- the scores the threshold is taken on -- exceeds it."""
        self.labels_ = (self._training_reference() > self.threshold_).astype(np.int64)

    def _training_reference(self) -> np.ndarray:
        """The training rows' reference scores (``decision_scores_``; a separate array only in older saved models)."""
        ref = getattr(self, "_reference_scores_", None)
        return self.decision_scores_ if ref is None else ref

    # ----------------------------------------------------------------- persistence
    def _derived_state(self) -> dict:
        """Learned arrays that other state determines, each with how to rebuild it, in rebuilding order.

        :func:`deepad.persistence.save` writes such an array only when it is
        *not* what its rebuild gives (a model saved before issue 19 keeps its
        separate leave-one-out ``_reference_scores_``), and :func:`deepad.load`
        rebuilds the rest -- so the training scores are stored once, not as
        ``decision_scores_``, ``_reference_scores_`` and ``labels_``.
        """

        def reference():
            check_loaded_scores(self, "decision_scores_")  # a damaged model file fails naming the attribute
            return self.decision_scores_

        def labels():
            return (self._training_reference() > check_loaded_number(self, "threshold_")).astype(np.int64)

        return {"_reference_scores_": reference, "labels_": labels}

    def _check_loaded_state(self) -> None:
        """Raise ``ValueError`` naming the attribute if the fitted state read by :func:`deepad.load` is unusable.

        A model directory is input: a threshold that is not a finite number,
        scores of the wrong shape or a feature count of ``"six"`` would load
        and then fail on every request.  Subclasses with more state extend
        this (and call ``super()``).
        """
        _thr.validate_contamination(self.contamination)
        check_loaded_number(self, "threshold_")
        n = self.n_features_in_
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_features_in_ must be a positive integer, got {n!r}.")
        rows = check_loaded_scores(self, "decision_scores_")
        for name in ("_reference_scores_", "calibration_scores_"):
            if getattr(self, name, None) is not None:
                check_loaded_scores(self, name)
        labels = getattr(self, "labels_", None)
        if not (isinstance(labels, np.ndarray) and labels.shape == (rows,)):
            raise ValueError(
                f"labels_ must be an array of {rows} training labels, got "
                f"{getattr(labels, 'shape', type(labels).__name__)}."
            )
        if not isinstance(getattr(self, "threshold_method_", {}), dict):
            raise ValueError("threshold_method_ must be a JSON object.")

    def save(self, path) -> None:
        """Save the fitted detector to directory ``path`` (see :mod:`deepad.persistence`)."""
        _persistence.save(self, path)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _persistence.register_detector(cls)  # the classes deepad.load may construct

    #: scikit-learn < 1.6 reads the estimator type from this attribute, newer versions from the tags.
    _estimator_type = "outlier_detector"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "outlier_detector"  # sklearn.base.is_outlier_detector(detector) is True
        tags.input_tags.allow_nan = False
        return tags
