"""Detectors on raw tables: preprocessing + any deepad detector, saved and loaded as one model.

:class:`TabularDetector` takes a pandas DataFrame / pyarrow Table / file
path with mixed column types (numbers, categories, booleans, timestamps,
ids, missing values), fits a :class:`~deepad.data.TabularPreprocessor` on
it and trains the wrapped detector on the encoded matrix.  It is itself a
deepad detector, so ``fit``, ``decision_function``, ``predict``,
``p_values``, ``set_threshold``, ``calibrate`` and ``save`` / ``deepad.load``
work as for any other::

    from deepad.pipeline import TabularDetector
    from deepad.detectors import AutoEncoder

    model = TabularDetector(AutoEncoder(epochs=30), exclude=["customer"], contamination=0.01)
    model.fit(transactions)                 # DataFrame with mixed types
    model.decision_function(new_transactions)
    model.save("fraud-model/")              # JSON + safetensors, no pickle

The threshold, training scores and p-value reference are the pipeline's
own (its ``contamination``); the wrapped detector's ``contamination`` is
not used.  The wrapped detector is saved in the sub-directory
``detector_/`` of the model directory.

Scoring files of any size in chunks is :func:`deepad.scoring.score_file`.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from deepad.base import BaseDetector, check_int_param
from deepad.data.preprocessing import ScoringReport, TabularPreprocessor
from deepad.data.readers import to_frame
from deepad.data.reference import build_reference
from deepad.data.schema import DataValidationError, Schema

__all__ = ["TabularDetector", "ExtraColumnsWarning"]


class ExtraColumnsWarning(UserWarning):
    """A scored table has columns the model was not trained on; they are ignored."""


#: training rows whose hashes a model keeps (``train_fingerprints_``): 32 kB, enough to tell 1 % overlap
FINGERPRINT_ROWS = 4096


def row_fingerprints(Z: np.ndarray) -> np.ndarray:
    """One 64-bit hash per row of an encoded matrix (``int64``): equal rows, equal hashes (pandas' row hash)."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return pd.util.hash_pandas_object(pd.DataFrame(Z), index=False).to_numpy().view(np.int64)


class TabularDetector(BaseDetector):
    """A deepad detector for raw mixed-type tables: :class:`~deepad.data.TabularPreprocessor` + ``detector``.

    Why: real data arrives as tables with text categories, timestamps, ids
    and holes, and the encoding learned on the training table (medians,
    category lists, scaling) is part of the model -- scoring new data with
    a different encoding silently gives wrong scores.  Keeping both in one
    detector makes ``save``/``load`` carry the encoding along.

    Scoring rule: the wrapped detector's score of the encoded row,
    ``score(x) = detector.decision_function(preprocess(x))``.

    Parameters
    ----------
    detector:
        any unfitted deepad detector (a template; it is cloned at ``fit``).
        ``None`` uses :data:`deepad.detectors.DEFAULT`.
    schema:
        a :class:`~deepad.data.Schema` (dict) fixing column kinds; ``None``
        infers it at ``fit`` with ``exclude`` and ``types``.
    exclude, types, scaling, category_encoding, max_categories, min_category_count, datetime_features:
        see :class:`~deepad.data.TabularPreprocessor`.
    contamination:
        fraction of training rows above the threshold (PyOD's rule).
    max_train_rows:
        fit on a uniform random sample of at most this many rows (``None``:
        all rows).  For tables too large to fit whole: a detector's fit
        grows with the rows (the kNN views of DEFAULT quadratically), while
        what normal looks like is learnt from far fewer.  The sample is
        drawn with ``random_state`` and recorded in ``train_sample_``
        (``rows``, ``of``, ``seed``; ``None`` when all rows were used), the
        sampled rows' positions in ``sample_index`` (not saved);
        ``decision_scores_``, ``threshold_`` and ``labels_`` are the
        sample's.
    random_state:
        seed of that sample (the wrapped detector has its own).

    A bounded seeded sample of the training rows' values (at most 2,000
    rows, :mod:`deepad.data.reference`) is kept in ``drift_reference_``:
    the reference of :func:`deepad.drift.detect_drift`'s feature tests.
    Models saved before it load without it.

    At scoring time a column of the schema that is missing, or a value
    that cannot be read as its column's kind, raises
    :class:`~deepad.data.DataValidationError` (a ``ValueError``) naming the
    column and rows.  Columns the schema does not know are ignored with an
    :class:`ExtraColumnsWarning`; categories unseen in training score as
    ``__other__``.
    """

    #: parameters added later, with the value models saved before them behave by (deepad.persistence)
    _params_before_added = {"category_encoding": "onehot"}

    def __init__(
        self,
        detector: BaseDetector | None = None,
        *,
        schema: Mapping | None = None,
        exclude=(),
        types: Mapping[str, str] | None = None,
        scaling: str | None = "standard",
        category_encoding: str = "rarity",
        max_categories: int = 20,
        min_category_count: int = 5,
        datetime_features=("hour", "dayofweek", "month"),
        contamination: float = 0.1,
        max_train_rows: int | None = None,
        random_state=0,
    ):
        self.detector = detector
        self.schema = schema
        self.exclude = exclude
        self.types = types
        self.scaling = scaling
        self.category_encoding = category_encoding
        self.max_categories = max_categories
        self.min_category_count = min_category_count
        self.datetime_features = datetime_features
        self.contamination = contamination
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    # ------------------------------------------------------------------ the wrapped detector
    def _template(self) -> BaseDetector:
        if self.detector is None:
            from deepad.detectors import DEFAULT

            return DEFAULT()
        if not isinstance(self.detector, BaseDetector):
            raise TypeError(f"detector must be a deepad detector, got {type(self.detector).__name__}.")
        return self.detector

    @property
    def _uses_labels(self) -> bool:  # type: ignore[override]
        return bool(getattr(self._template(), "_uses_labels", False))

    def _min_samples(self) -> int:
        return self._template()._min_samples()

    # ------------------------------------------------------------------ preprocessing
    def _new_preprocessor(self) -> TabularPreprocessor:
        return TabularPreprocessor(
            schema=self.schema,
            exclude=self.exclude,
            types=self.types,
            scaling=self.scaling,
            category_encoding=self.category_encoding,
            max_categories=self.max_categories,
            min_category_count=self.min_category_count,
            datetime_features=self.datetime_features,
        )

    @property
    def preprocessor(self) -> TabularPreprocessor:
        """The fitted :class:`~deepad.data.TabularPreprocessor` (rebuilt from ``preprocessor_state_`` after loading)."""
        check_is_fitted(self, "preprocessor_state_")
        cached = self.__dict__.get("_prep")
        if cached is None or cached[0] is not self.preprocessor_state_:
            cached = (self.preprocessor_state_, TabularPreprocessor.from_state(self.preprocessor_state_))
            self.__dict__["_prep"] = cached
        return cached[1]

    @property
    def schema_(self) -> Schema:
        """The schema in use (inferred at ``fit`` unless given)."""
        return self.preprocessor.schema_

    @property
    def feature_names_out_(self) -> list[str]:
        """Names of the encoded features the wrapped detector sees."""
        return list(self.preprocessor.feature_names_out_)

    @property
    def feature_sources_(self) -> list[str]:
        """Source column of each encoded feature (for explanations)."""
        return list(self.preprocessor.feature_sources_)

    def transform(self, X, *, row_offset: int = 0, report: ScoringReport | None = None) -> np.ndarray:
        """The encoded matrix the wrapped detector scores."""
        check_is_fitted(self, "preprocessor_state_")
        return self.preprocessor.transform(X, row_offset=row_offset, report=report)

    # ------------------------------------------------------------------ persistence
    def _check_loaded_state(self) -> None:
        super()._check_loaded_state()
        if not isinstance(getattr(self, "detector_", None), BaseDetector):
            raise ValueError("detector_ must be a saved deepad detector.")
        prep = self.preprocessor  # rebuilt from preprocessor_state_: a damaged state fails here, not per request
        if prep.n_features_out_ != self.detector_.n_features_in_:
            raise ValueError(
                f"preprocessor_state_ encodes {prep.n_features_out_} features but detector_ takes "
                f"{self.detector_.n_features_in_}."
            )
        reference = getattr(self, "drift_reference_", None)  # absent in models saved before issue 20
        if reference is not None and not (
            isinstance(reference, np.ndarray) and reference.ndim == 2 and reference.shape[1] == len(prep.columns_)
        ):
            raise ValueError(
                f"drift_reference_ must be an array with one column per feature column ({len(prep.columns_)}), got "
                f"{getattr(reference, 'shape', type(reference).__name__)}."
            )

    # ------------------------------------------------------------------ BaseDetector hooks
    def _validate_for_fit(self, X):
        df = to_frame(X)
        if df.shape[1] == 0:
            raise ValueError("X has no columns.")
        if len(df) < self._min_samples():
            raise ValueError(
                f"X has {len(df)} rows, but this {type(self).__name__} needs at least {self._min_samples()}."
                if len(df)
                else "X is empty: the table has no rows."
            )
        return df, list(df.columns)

    def _sample(self, X: pd.DataFrame, y, seed: int):
        """``(X, y)``, or a seeded uniform sample of ``max_train_rows`` of their rows (in their order)."""
        self.train_sample_ = None
        self.__dict__.pop("sample_index", None)
        if self.max_train_rows is None:
            return X, y
        limit = check_int_param(self.max_train_rows, "max_train_rows", self._min_samples(), allowed=None)
        if len(X) <= limit:
            return X, y
        keep = np.sort(np.random.default_rng(seed).choice(len(X), size=limit, replace=False))
        self.train_sample_ = {"rows": int(limit), "of": int(len(X)), "seed": int(seed)}
        self.__dict__["sample_index"] = keep  # which rows (not saved): to match labels with decision_scores_
        return X.iloc[keep].reset_index(drop=True), None if y is None else y[keep]

    def _fit(self, X: pd.DataFrame, y, seed: int, **fit_params) -> None:
        X, y = self._sample(X, y, seed)
        prep = self._new_preprocessor()
        Z = prep.fit_transform(X)
        detector = clone(self._template())
        if y is not None and getattr(detector, "_uses_labels", False):
            detector.fit(Z, y, **fit_params)
        else:
            detector.fit(Z, **fit_params)
        self.detector_ = detector
        self.preprocessor_state_ = prep.to_state()
        self.__dict__["_prep"] = (self.preprocessor_state_, prep)
        self.n_features_out_ = prep.n_features_out_
        # Which rows it was fitted on, for the report's "in-sample" note: hashes of (a sample of) the encoded rows.
        fingerprints = row_fingerprints(Z)
        if fingerprints.size > FINGERPRINT_ROWS:
            fingerprints = np.random.default_rng(seed).choice(fingerprints, size=FINGERPRINT_ROWS, replace=False)
        self.train_fingerprints_ = np.sort(fingerprints)
        # The reference of deepad.drift's feature tests: a bounded seeded sample of the training rows' values.
        self.drift_reference_, self.drift_reference_info_ = build_reference(
            prep.columns_, X, Z, prep.feature_sources_, seed
        )
        # When the model was trained (UTC), for `deepad info` and reports.
        self.fitted_at_ = datetime.now(timezone.utc).isoformat(timespec="seconds")

    #: the training scores are the wrapped detector's (no second scoring pass over the training data)
    _reference_needs_in_sample = False

    def _training_reference_scores(self, X) -> np.ndarray:
        # The wrapped detector's training scores (leave-one-out for kNN-type detectors), the same array.
        return np.asarray(self.detector_.decision_scores_, dtype=np.float64)

    def training_scores_kind(self) -> str:
        return self.detector_.training_scores_kind()

    def _derived_state(self) -> dict:
        # the training scores are the wrapped detector's: saved once, in detector_/
        return {"decision_scores_": lambda: self.detector_.decision_scores_, **super()._derived_state()}

    def _validate_for_scoring(self, X, *, warn_extra: bool = True) -> pd.DataFrame:
        check_is_fitted(self, "decision_scores_")
        df = to_frame(X)
        missing, extra = self.preprocessor.check_columns(df.columns)
        if missing:
            raise DataValidationError(
                f"missing column(s) {missing}, which the model was trained on.", column=missing[0]
            )
        if extra and warn_extra:
            warnings.warn(
                f"ignoring {len(extra)} column(s) the model was not trained on: {extra[:10]}",
                ExtraColumnsWarning,
                stacklevel=3,
            )
        if len(df) == 0:
            raise ValueError("X is empty: the table has no rows.")
        return df

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        order = "F" if getattr(self.detector_, "_scores_any_layout", False) else "C"
        return self.detector_.decision_function(self.preprocessor.transform(X, order=order))

    def encode_frame(
        self, X, *, row_offset: int = 0, report: ScoringReport | None = None, warn_extra: bool = True, slot: int = 0
    ) -> np.ndarray:
        """The detector's input for table ``X``, in this thread's reused buffer ``slot`` (overwritten by the
        next call with that slot): the first half of :meth:`score_frame`, for a caller that encodes the next
        chunk while the detector scores this one (``deepad.scoring``)."""
        df = self._validate_for_scoring(X, warn_extra=warn_extra)
        order = "F" if getattr(self.detector_, "_scores_any_layout", False) else "C"
        return self.preprocessor.transform(
            df, row_offset=row_offset, report=report, order=order, scratch=True, slot=slot
        )

    def score_frame(
        self, X, *, row_offset: int = 0, report: ScoringReport | None = None, warn_extra: bool = True
    ) -> np.ndarray:
        """``decision_function`` with chunk-aware error messages (``row_offset``) and a :class:`ScoringReport`."""
        # The encoded chunk is used once, right here: it can live in the thread's reused buffer.
        Z = self.encode_frame(X, row_offset=row_offset, report=report, warn_extra=warn_extra)
        return np.asarray(self.detector_.decision_function(Z), dtype=np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags
