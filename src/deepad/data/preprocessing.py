"""Turning a mixed table into the float matrix a detector learns from -- and back to column names.

:class:`TabularPreprocessor` is fitted on the training table and applied
unchanged to every table scored later.  Per column kind (see
:mod:`deepad.data.schema`):

numeric
    missing values are imputed with the training median; if the column had
    missing values in training, an indicator feature ``<col>__missing``
    (1 = was missing) is added, because *that* a value is missing is often
    the anomaly.  Then scaled (``scaling``: ``"standard"``, ``"robust"``,
    ``"minmax"`` or ``None``).
boolean
    0/1; missing -> the training majority value plus an indicator, as above.
datetime
    derived features, each encoded on a circle (``sin``/``cos``) so that
    23:59 sits next to 00:00 and Sunday next to Monday: ``hour`` (hour of
    day, with minutes as a fraction), ``dayofweek`` and ``month``.  The raw
    instant (``"unix"``, days since 1970) is *not* used by default: scored
    data always lies after the training period, so a detector would flag
    every new row as out of range.  Add it with
    ``datetime_features=("hour", "dayofweek", "month", "unix")`` when the
    scored data shares the training period.  Time-zone-aware values are
    converted to UTC; naive ones are used as they are.
categorical
    one-hot columns ``<col>=<value>`` for the ``max_categories`` most
    frequent values seen at least ``min_category_count`` times, plus
    ``<col>=__other__`` for everything else -- rarer values and values never
    seen in training.  Missing values are the category ``__missing__``.
    Columns with more than ``max_categories`` distinct values also get
    ``<col>__logfreq``, the log of the value's training frequency (values
    never seen get half a count), which keeps the information "this is a
    rare merchant" that the ``__other__`` bucket would lose.  So a column
    with a million distinct values costs ``max_categories + 2`` features.
    The one-hot columns are scaled by rarity (``category_encoding``): a row
    with a category seen in a share ``p`` of training rows lies as many
    units out as a normal value with tail probability ``p``.

At scoring time nothing is coerced silently: a missing column, a value
that cannot be read as the column's kind (``"abc"`` in a numeric column,
``"maybe"`` in a boolean one) or a value of the wrong type (numbers in a
datetime column) raises :class:`~deepad.data.DataValidationError` naming
the column and the first bad rows.  Unseen categories are not errors: they
go to ``__other__`` and are counted in an optional :class:`ScoringReport`;
when they are most of a column's scored rows (more than half, of at least
20 rows), an :class:`UnseenCategoryWarning` names the column and the share
(once per :meth:`~TabularPreprocessor.transform` call, or per
:meth:`ScoringReport.warn_unseen` over a chunked file).
Columns not in the schema are ignored.

:attr:`TabularPreprocessor.feature_sources_` maps every output feature to
its source column, so explanations can report a one-hot block, a
datetime's six features or a missing-value indicator as the one column the
user knows (:meth:`TabularPreprocessor.group_by_source`).

The fitted state is plain JSON plus a few float arrays
(:meth:`TabularPreprocessor.to_state` / :meth:`~TabularPreprocessor.from_state`),
so models are saved without pickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from deepad.data.encoding import _PERIODS, _circle, _datetime_raw, _rarity_scale, _scratch_matrix  # noqa: F401
from deepad.data.scaling import SCALERS, fit_scaler
from deepad.data.schema import (
    DataValidationError,
    Schema,
    infer_schema,
)

from deepad.data.values import (  # re-exported: the parsing of one column's values lives there
    MISSING,
    boolean_values,
    category_values,
    datetime_values,
    numeric_values,
)

__all__ = ["TabularPreprocessor", "ScoringReport", "UnseenCategoryWarning", "MISSING", "OTHER"]

OTHER = "__other__"
#: share of a scored table's rows with categories never seen in training above which a column is warned about
UNSEEN_WARN_SHARE = 0.5
_UNSEEN_WARN_MIN_ROWS = 20  # one unseen value in a one-row request is no pattern


class UnseenCategoryWarning(UserWarning):
    """Most scored rows of a categorical column carry categories never seen in training.

    Every such row scores as ``__other__``, so the column mostly says "new"
    and the scores are driven by it: usually the column is an identifier
    (declare it ``id``) or the scored table is written differently from the
    training one.
    """


def _warn_unseen(counts: Mapping[str, int], rows: int) -> None:
    import warnings

    if rows < _UNSEEN_WARN_MIN_ROWS:
        return
    for name, n in counts.items():
        if n > UNSEEN_WARN_SHARE * rows:
            warnings.warn(
                UnseenCategoryWarning(
                    f"column {name!r}: {n:,} of {rows:,} scored rows ({n / rows:.0%}) carry categories never seen "
                    f"in training, so the column mostly says 'new' and drives the scores; if it is an identifier, "
                    f"retrain with it declared as one (types={{{name!r}: 'id'}}; CLI: --type {name}=id)."
                ),
                stacklevel=3,
            )


_SCALINGS = SCALERS
_DATETIME_FEATURES = ("hour", "dayofweek", "month", "unix")
_STATE_VERSION = 1
_CATEGORY_ENCODINGS = ("rarity", "onehot")


@dataclass
class ScoringReport:
    """What happened to a scored table that was not an error, accumulated over chunks."""

    rows: int = 0
    #: column -> number of values never seen in training (scored as ``__other__``)
    unseen: dict[str, int] = field(default_factory=dict)
    #: column -> a few of those values
    unseen_examples: dict[str, list[str]] = field(default_factory=dict)
    #: column -> missing values imputed in a column that had none in training
    unexpected_missing: dict[str, int] = field(default_factory=dict)

    def warn_unseen(self) -> None:
        """One :class:`UnseenCategoryWarning` per column where most of the scored rows had unseen categories."""
        _warn_unseen(self.unseen, self.rows)

    def notes(self) -> list[str]:
        out = []
        for col, n in self.unseen.items():
            ex = ", ".join(repr(v) for v in self.unseen_examples.get(col, [])[:3])
            out.append(
                f"{n} value(s) in column {col!r} were not seen in training (e.g. {ex}); scored as category {OTHER!r}."
            )
        for col, n in self.unexpected_missing.items():
            out.append(f"{n} missing value(s) in column {col!r}, which had none in training; imputed.")
        return out


# --------------------------------------------------------------------------- scaling
# --------------------------------------------------------------------------- the preprocessor
class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Impute, encode and scale a mixed table into a float matrix (see the module docstring).

    Parameters
    ----------
    schema:
        a :class:`~deepad.data.Schema` (or its dict form); ``None`` infers it
        from the training table with ``exclude`` and ``types``.
    exclude, types:
        passed to :func:`~deepad.data.infer_schema` when ``schema`` is ``None``.
    scaling:
        ``"standard"`` (default), ``"robust"`` (median / IQR; for heavy tails),
        ``"minmax"`` or ``None``.  Applies to numeric, datetime and frequency
        features (and, with ``category_encoding="rarity"``, one-hot
        columns); missing-value indicators stay 0/1.
    category_encoding:
        ``"rarity"`` (default) centres each one-hot column on its training
        frequency ``p`` and scales it so that a row with the category lies
        ``Phi^-1(1 - p / 2)`` units out -- as far as a normal value with the
        same two-sided tail probability (0.3 % -> 2.97) -- so distance-based
        detectors (KNN, LOF, OneClassSVM) see a rare category as they see a
        tail value.  ``"onehot"`` keeps plain 0/1 indicators, as models
        saved before this option did (their saved state loads as
        ``"onehot"``).  With ``scaling=None`` nothing is scaled: 0/1.
    max_categories:
        most one-hot columns per categorical column (besides ``__other__``).
    min_category_count:
        a value needs this many training rows to get its own one-hot column.
    datetime_features:
        any of ``"hour"``, ``"dayofweek"``, ``"month"``, ``"unix"``.
    """

    def __init__(
        self,
        schema: Mapping | None = None,
        *,
        exclude=(),
        types: Mapping[str, str] | None = None,
        scaling: str | None = "standard",
        category_encoding: str = "rarity",
        max_categories: int = 20,
        min_category_count: int = 5,
        datetime_features=("hour", "dayofweek", "month"),
    ):
        self.schema = schema
        self.exclude = exclude
        self.types = types
        self.scaling = scaling
        self.category_encoding = category_encoding
        self.max_categories = max_categories
        self.min_category_count = min_category_count
        self.datetime_features = datetime_features

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        if self.scaling not in _SCALINGS:
            raise ValueError(f"scaling must be one of {_SCALINGS}, got {self.scaling!r}.")
        if self.category_encoding not in _CATEGORY_ENCODINGS:
            raise ValueError(f"category_encoding must be one of {_CATEGORY_ENCODINGS}, got {self.category_encoding!r}.")
        if not (isinstance(self.max_categories, (int, np.integer)) and self.max_categories >= 1):
            raise ValueError(f"max_categories must be a positive integer, got {self.max_categories!r}.")
        if not (isinstance(self.min_category_count, (int, np.integer)) and self.min_category_count >= 1):
            raise ValueError(f"min_category_count must be a positive integer, got {self.min_category_count!r}.")
        feats = list(self.datetime_features or ())
        bad = [f for f in feats if f not in _DATETIME_FEATURES]
        if bad or not feats:
            raise ValueError(f"datetime_features must be a non-empty subset of {_DATETIME_FEATURES}, got {feats}.")

    def fit(self, X, y=None):
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """Fit on the training table and return its transformed matrix."""
        from deepad.data.readers import to_frame

        self._check_params()
        df = to_frame(X)
        if len(df) == 0:
            raise ValueError("X is empty: the training table has no rows.")
        schema = (
            Schema.from_dict(self.schema)
            if self.schema is not None
            else infer_schema(df, exclude=self.exclude, types=self.types)
        )
        missing = [c for c in schema.feature_columns if c not in df.columns]
        if missing:
            raise DataValidationError(f"the table lacks column(s) {missing} named in the schema.", column=missing[0])
        n = len(df)
        columns: list[dict[str, Any]] = []
        for name in schema.feature_columns:
            kind = schema.kinds[name]
            s = df[name]
            entry: dict[str, Any] = {"name": name, "kind": kind}
            if kind == "numeric":
                v = numeric_values(s, name)
                entry.update(
                    fill=float(np.nanmedian(v)) if not np.isnan(v).all() else 0.0, indicator=bool(np.isnan(v).any())
                )
            elif kind == "boolean":
                v = boolean_values(s, name)
                mean = np.nanmean(v) if not np.isnan(v).all() else 0.0
                entry.update(fill=float(mean >= 0.5), indicator=bool(np.isnan(v).any()))
            elif kind == "datetime":
                ts = datetime_values(s, name)
                feats = list(self.datetime_features)
                raw = _datetime_raw(ts, feats)
                entry.update(
                    features=feats,
                    fill=[float(np.nanmedian(raw[f])) if not np.isnan(raw[f]).all() else 0.0 for f in feats],
                    indicator=bool(ts.isna().any()),
                )
            else:  # categorical
                counts = category_values(s).value_counts(sort=False)
                order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                top = [k for k, c in order if c >= self.min_category_count][: int(self.max_categories)]
                entry.update(
                    categories=top,
                    levels=[k for k, _ in order],
                    counts=[int(c) for _, c in order],
                    frequency=len(order) > int(self.max_categories),
                    n_rows=n,
                )
            columns.append(entry)
        self.schema_ = schema
        self.columns_ = columns
        self._build_layout()
        self.center_ = np.zeros(self.n_features_out_)
        self.scale_ = np.ones(self.n_features_out_)
        Z = self._encode(df, row_offset=0, report=None)
        cont = np.asarray(self.continuous_, dtype=bool)
        center, scale = fit_scaler(Z[:, cont], self.scaling)
        self.center_[cont] = center
        self.scale_[cont] = scale
        Z[:, cont] = (Z[:, cont] - center) / scale
        if self.category_encoding == "rarity" and self.scaling is not None:
            # A category seen in a share p of the rows lies z(p) = isf(p / 2) units out (see _rarity_scale).
            hot = np.asarray(self.onehot_, dtype=bool)
            self.center_[hot], self.scale_[hot] = _rarity_scale(Z[:, hot].mean(axis=0), n)
            Z[:, hot] = (Z[:, hot] - self.center_[hot]) / self.scale_[hot]
        self.n_rows_fit_ = n
        return np.ascontiguousarray(Z)

    def _build_layout(self) -> None:
        names, sources, continuous, onehot = [], [], [], []

        def add(feature: str, source: str, is_continuous: bool, is_onehot: bool = False) -> None:
            names.append(feature)
            sources.append(source)
            continuous.append(is_continuous)
            onehot.append(is_onehot)

        for col in self.columns_:
            name, kind = col["name"], col["kind"]
            if kind in ("numeric", "boolean"):
                add(name, name, kind == "numeric")
            elif kind == "datetime":
                for f in col["features"]:
                    if f in _PERIODS:
                        add(f"{name}__{f}_sin", name, True)
                        add(f"{name}__{f}_cos", name, True)
                    else:
                        add(f"{name}__{f}", name, True)
            else:
                for c in col["categories"]:
                    add(f"{name}={c}", name, False, True)
                add(f"{name}={OTHER}", name, False, True)
                if col["frequency"]:
                    add(f"{name}__logfreq", name, True)
            if col.get("indicator"):
                add(f"{name}__missing", name, False)
        self.feature_names_out_ = names
        self.feature_sources_ = sources
        self.continuous_ = continuous
        self.onehot_ = onehot
        self.n_features_out_ = len(names)
        self._lookup = None

    def _lookups(self) -> dict[str, tuple]:
        """Per categorical column: (levels as an Arrow array, level -> one-hot position, log frequencies, unseen)."""
        import pyarrow as pa

        if getattr(self, "_lookup", None) is None:
            lookup = {}
            for col in self.columns_:
                if col["kind"] == "categorical":
                    n = max(int(col["n_rows"]), 1)
                    levels = list(col["levels"])
                    k = len(col["categories"])
                    # position in the one-hot block of each level; the extra last entry (index -1) is for unseen values
                    onehot = np.full(len(levels) + 1, k, dtype=np.int64)
                    where = {v: i for i, v in enumerate(levels)}
                    for pos, c in enumerate(col["categories"]):
                        onehot[where[c]] = pos
                    log_freq = np.append(np.log(np.asarray(col["counts"], dtype=np.float64) / n), math.log(0.5 / n))
                    lookup[col["name"]] = (pa.array(levels, type=pa.string()), onehot, log_freq)
            self._lookup = lookup
        return self._lookup

    @staticmethod
    def _level_codes(s: pd.Series, levels) -> tuple[np.ndarray, Any]:
        """Index of each value in ``levels`` (-1 if unseen) and the values as an Arrow string array."""
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = None
        if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
            try:
                arr = pa.array(s, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arr = None
            if arr is not None and not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                arr = None
        if arr is None:
            arr = pa.array(category_values(s).to_numpy(dtype=object), type=pa.string())
        arr = pc.fill_null(arr.cast(pa.string()), MISSING)
        codes = pc.index_in(arr, value_set=levels)
        return np.asarray(codes.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64), arr

    # ------------------------------------------------------------------ transform
    def _encode(
        self,
        df: pd.DataFrame,
        *,
        row_offset: int,
        report: ScoringReport | None,
        warn_unseen: bool = False,
        scale: bool = False,
        scratch: bool = False,
        slot: int = 0,
    ) -> np.ndarray:
        """The feature matrix of ``df`` (column-major); ``scale=True`` applies ``(z - center_) / scale_`` as it fills.

        Scaling each column as it is written is the same float64 arithmetic as scaling the whole matrix after
        (so the same values), without two more passes over it; a one-hot block is filled with its scaled 0
        and its scaled 1 written where the category occurs.  ``scratch=True`` fills this thread's reused
        buffer (:func:`_scratch_matrix`), which the next scratch call overwrites.
        """
        n = len(df)
        # Column-major while filling column by column (contiguous writes); made row-major in transform.
        # Scaled, every column is written in full; unscaled, the one-hot blocks rely on the zeros.
        if scratch:
            Z = _scratch_matrix(n, self.n_features_out_, slot)
            if not scale:
                Z[...] = 0.0
        else:
            Z = (np.empty if scale else np.zeros)((n, self.n_features_out_), dtype=np.float64, order="F")
        center, spread = self.center_, self.scale_

        def put(j: int, v: np.ndarray) -> None:
            if scale:
                np.subtract(v, center[j], out=Z[:, j])
                np.divide(Z[:, j], spread[j], out=Z[:, j])
            else:
                Z[:, j] = v

        j = 0
        lookups = self._lookups()
        for col in self.columns_:
            name, kind = col["name"], col["kind"]
            s = df[name]
            if kind in ("numeric", "boolean"):
                v = (numeric_values if kind == "numeric" else boolean_values)(s, name, row_offset)
                miss = np.isnan(v)
                put(j, np.where(miss, col["fill"], v))
                j += 1
            elif kind == "datetime":
                ts = datetime_values(s, name, row_offset)
                miss = ts.isna().to_numpy()
                raw = _datetime_raw(ts, col["features"])
                for f, fill in zip(col["features"], col["fill"]):
                    v = np.where(np.isnan(raw[f]), fill, raw[f])
                    if f in _PERIODS:
                        sin, cos = _circle(v, _PERIODS[f])
                        put(j, sin)
                        put(j + 1, cos)
                        j += 2
                    else:
                        put(j, v)
                        j += 1
            else:
                levels, onehot, log_freq = lookups[name]
                codes, text = self._level_codes(s, levels)
                k = len(col["categories"])
                hit = j + onehot[codes]
                if scale:
                    block = slice(j, j + k + 1)
                    Z[:, block] = (0.0 - center[block]) / spread[block]
                    Z[np.arange(n), hit] = ((1.0 - center[block]) / spread[block])[onehot[codes]]
                else:
                    Z[np.arange(n), hit] = 1.0
                j += k + 1
                if col["frequency"]:
                    put(j, log_freq[codes])
                    j += 1
                unseen = codes < 0
                if warn_unseen:
                    _warn_unseen({name: int(unseen.sum())}, n)
                if report is not None:
                    if unseen.any():
                        report.unseen[name] = report.unseen.get(name, 0) + int(unseen.sum())
                        ex = report.unseen_examples.setdefault(name, [])
                        for pos in np.flatnonzero(unseen)[:50]:
                            u = text[int(pos)].as_py()
                            if len(ex) < 3 and u not in ex:
                                ex.append(u)
                miss = None
            if kind != "categorical":
                if col.get("indicator"):
                    put(j, miss)
                    j += 1
                elif report is not None and miss.any():
                    report.unexpected_missing[name] = report.unexpected_missing.get(name, 0) + int(miss.sum())
        assert j == self.n_features_out_
        return Z

    def check_columns(self, columns) -> tuple[list[str], list[str]]:
        """``(missing, extra)``: feature columns the table lacks, and table columns the schema does not know."""
        check_is_fitted(self, "columns_")
        columns = [str(c) for c in columns]
        have = set(columns)
        missing = [c["name"] for c in self.columns_ if c["name"] not in have]
        known = set(self.schema_.names)
        extra = [c for c in columns if c not in known]
        return missing, extra

    def transform(
        self,
        X,
        *,
        row_offset: int = 0,
        report: ScoringReport | None = None,
        order: str = "C",
        scratch: bool = False,
        slot: int = 0,
    ) -> np.ndarray:
        """Encode a table with the fitted state; ``row_offset`` is added to row numbers in error messages.

        ``order="F"`` returns the matrix column-major, as it is encoded, without the row-major copy (for a
        detector that reads its rows in batches, see ``BaseDetector._scores_any_layout``); same values.
        With ``order="F"``, ``scratch=True`` returns a buffer this thread reuses: the next such call with the
        same ``slot`` overwrites it, so use the matrix before encoding again (chunked scoring does).
        """
        if order not in ("C", "F"):
            raise ValueError(f"order must be 'C' or 'F', got {order!r}.")
        from deepad.data.readers import to_frame

        check_is_fitted(self, "columns_")
        df = to_frame(X)
        missing, _ = self.check_columns(df.columns)
        if missing:
            raise DataValidationError(
                f"missing column(s) {missing}, which the model was trained on.", column=missing[0]
            )
        if len(df) == 0:
            raise ValueError("X is empty: the table has no rows.")
        # Row-major output is a copy anyway, so its column-major original can always be the reused buffer.
        Z = self._encode(
            df,
            row_offset=row_offset,
            report=report,
            warn_unseen=report is None,
            scale=True,
            scratch=scratch or order == "C",
            slot=slot if scratch else 0,
        )
        if order == "C":
            Z = np.ascontiguousarray(Z)
        if report is not None:
            report.rows += len(df)
        return Z

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def group_by_source(self, values, how: str = "sum") -> pd.DataFrame:
        """Aggregate per-feature values ``(n, n_features_out)`` (e.g. reconstruction errors) per source column.

        ``how`` is ``"sum"`` or ``"max"``.  Returns a DataFrame with one column per source column.
        """
        check_is_fitted(self, "columns_")
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_features_out_:
            raise ValueError(f"values must have shape (n, {self.n_features_out_}), got {values.shape}.")
        if how not in ("sum", "max"):
            raise ValueError(f"how must be 'sum' or 'max', got {how!r}.")
        frame = pd.DataFrame(values, columns=self.feature_names_out_)
        grouped = frame.T.groupby(np.asarray(self.feature_sources_), sort=False)
        out = (grouped.sum() if how == "sum" else grouped.max()).T
        return out[[c["name"] for c in self.columns_]]

    # ------------------------------------------------------------------ persistence (no pickle)
    def to_state(self) -> dict[str, Any]:
        """The fitted state as plain JSON types (floats round-trip exactly through JSON)."""
        check_is_fitted(self, "columns_")
        params = self.get_params()
        params["schema"] = dict(params["schema"]) if params["schema"] is not None else None
        params["exclude"] = [params["exclude"]] if isinstance(params["exclude"], str) else list(params["exclude"] or ())
        params["datetime_features"] = list(params["datetime_features"])
        params["types"] = dict(params["types"]) if params["types"] is not None else None
        return {
            "version": _STATE_VERSION,
            "params": params,
            "schema": dict(self.schema_),
            "columns": self.columns_,
            "center": [float(v) for v in self.center_],
            "scale": [float(v) for v in self.scale_],
            "n_rows_fit": int(self.n_rows_fit_),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "TabularPreprocessor":
        """Rebuild a fitted preprocessor from :meth:`to_state`'s output."""
        if int(state.get("version", 0)) > _STATE_VERSION:
            raise ValueError(f"preprocessor state version {state['version']} is newer than this deepad understands.")
        params = dict(state["params"])
        params.setdefault("category_encoding", "onehot")  # saved before the option existed: plain 0/1 indicators
        if params.get("datetime_features") is not None:
            params["datetime_features"] = tuple(params["datetime_features"])
        params["exclude"] = tuple(params.get("exclude") or ())
        prep = cls(**params)
        prep.schema_ = Schema.from_dict(state["schema"])
        prep.columns_ = [dict(c) for c in state["columns"]]
        prep._build_layout()
        prep.center_ = np.asarray(state["center"], dtype=np.float64)
        prep.scale_ = np.asarray(state["scale"], dtype=np.float64)
        prep.n_rows_fit_ = int(state["n_rows_fit"])
        if prep.center_.shape != (prep.n_features_out_,) or prep.scale_.shape != (prep.n_features_out_,):
            raise ValueError("preprocessor state is inconsistent: scaling arrays do not match the features.")
        return prep
