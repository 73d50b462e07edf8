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

:func:`score_file` scores a file of any size in chunks and writes the id
columns plus ``score``, ``p_value`` and ``is_anomaly`` to CSV or Parquet,
atomically.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from deepad import thresholds as _thr
from deepad.base import BaseDetector
from deepad.data.preprocessing import ScoringReport, TabularPreprocessor
from deepad.data.readers import DEFAULT_BATCH_ROWS, count_rows, iter_batches, table_columns, to_frame
from deepad.data.schema import DataValidationError, Schema
from deepad.data.writers import AtomicOutput, OutputWriteError

__all__ = ["TabularDetector", "ExtraColumnsWarning", "score_file", "ScoreSummary", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class ExtraColumnsWarning(UserWarning):
    """A scored table has columns the model was not trained on; they are ignored."""


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
    exclude, types, scaling, max_categories, min_category_count, datetime_features:
        see :class:`~deepad.data.TabularPreprocessor`.
    contamination:
        fraction of training rows above the threshold (PyOD's rule).

    At scoring time a column of the schema that is missing, or a value
    that cannot be read as its column's kind, raises
    :class:`~deepad.data.DataValidationError` (a ``ValueError``) naming the
    column and rows.  Columns the schema does not know are ignored with an
    :class:`ExtraColumnsWarning`; categories unseen in training score as
    ``__other__``.
    """

    def __init__(self, detector: BaseDetector | None = None, *, schema: Mapping | None = None, exclude=(),
                 types: Mapping[str, str] | None = None, scaling: str | None = "standard", max_categories: int = 20,
                 min_category_count: int = 5, datetime_features=("hour", "dayofweek", "month"),
                 contamination: float = 0.1):
        self.detector = detector
        self.schema = schema
        self.exclude = exclude
        self.types = types
        self.scaling = scaling
        self.max_categories = max_categories
        self.min_category_count = min_category_count
        self.datetime_features = datetime_features
        self.contamination = contamination

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
        return TabularPreprocessor(schema=self.schema, exclude=self.exclude, types=self.types, scaling=self.scaling,
                                   max_categories=self.max_categories, min_category_count=self.min_category_count,
                                   datetime_features=self.datetime_features)

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
            raise ValueError(f"preprocessor_state_ encodes {prep.n_features_out_} features but detector_ takes "
                             f"{self.detector_.n_features_in_}.")

    # ------------------------------------------------------------------ BaseDetector hooks
    def _validate_for_fit(self, X):
        df = to_frame(X)
        if df.shape[1] == 0:
            raise ValueError("X has no columns.")
        if len(df) < self._min_samples():
            raise ValueError(f"X has {len(df)} rows, but this {type(self).__name__} needs at least "
                             f"{self._min_samples()}." if len(df) else "X is empty: the table has no rows.")
        return df, list(df.columns)

    def _fit(self, X: pd.DataFrame, y, seed: int, **fit_params) -> None:
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
        # When the model was trained (UTC), for `deepad info` and reports.
        self.fitted_at_ = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def _training_reference_scores(self, X) -> np.ndarray:
        # The wrapped detector's reference (leave-one-out for kNN-type detectors).
        return np.asarray(self.detector_._reference_scores_, dtype=np.float64)

    def _validate_for_scoring(self, X, *, warn_extra: bool = True) -> pd.DataFrame:
        check_is_fitted(self, "decision_scores_")
        df = to_frame(X)
        missing, extra = self.preprocessor.check_columns(df.columns)
        if missing:
            raise DataValidationError(f"missing column(s) {missing}, which the model was trained on.",
                                      column=missing[0])
        if extra and warn_extra:
            warnings.warn(f"ignoring {len(extra)} column(s) the model was not trained on: {extra[:10]}",
                          ExtraColumnsWarning, stacklevel=3)
        if len(df) == 0:
            raise ValueError("X is empty: the table has no rows.")
        return df

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        return self.detector_.decision_function(self.preprocessor.transform(X))

    def score_frame(self, X, *, row_offset: int = 0, report: ScoringReport | None = None,
                    warn_extra: bool = True) -> np.ndarray:
        """``decision_function`` with chunk-aware error messages (``row_offset``) and a :class:`ScoringReport`."""
        df = self._validate_for_scoring(X, warn_extra=warn_extra)
        Z = self.preprocessor.transform(df, row_offset=row_offset, report=report)
        return np.asarray(self.detector_.decision_function(Z), dtype=np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags


# --------------------------------------------------------------------------- chunked scoring to a file
@dataclass
class ScoreSummary:
    rows: int = 0
    flagged: int = 0
    seconds: float = 0.0
    output: str = ""
    id_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def output_format(path: str | os.PathLike) -> str:
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the output must end in {', '.join(OUTPUT_FORMATS)} (CSV or Parquet).")
    return fmt


def write_frame_atomic(frame: pd.DataFrame, path: str | os.PathLike, *, during: str | None = None) -> Path:
    """Write ``frame`` to ``path`` (CSV or Parquet by suffix) aside, then rename: never a half-written file.

    See :class:`deepad.data.writers.AtomicOutput`: stale parts of ``path``
    left by killed processes are removed first, and an ``OSError`` while
    writing is an :class:`~deepad.data.writers.OutputWriteError` naming
    ``path`` (and ``during``, e.g. ``"scoring data.csv"``).
    """
    out = Path(path)
    fmt = output_format(out)
    with AtomicOutput(out, during=during) as part, part.writing():
        frame.to_csv(part.path, index=False) if fmt == "csv" else frame.to_parquet(part.path, index=False)
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


class _Writer:
    """CSV or Parquet, chunk by chunk, into a temporary file that replaces ``out`` only when complete.

    The temporary file is a :class:`~deepad.data.writers.AtomicOutput` part
    (stale parts of ``out`` left by killed processes are removed first).
    ``make_parent=False`` (Dask output parts, inside the run's own part
    directory) neither creates the directory nor touches it before the
    first write: if a failed run's directory was removed while a task still
    ran, that task fails instead of leaving files.  An ``OSError`` while
    writing is an :class:`~deepad.data.writers.OutputWriteError` naming
    ``out`` (and ``during``).
    """

    def __init__(self, out: Path, fmt: str, *, make_parent: bool = True, during: str | None = None):
        self.out, self.fmt = out, fmt
        if make_parent:
            self.part: AtomicOutput | None = AtomicOutput(out, during=during)
            self.tmp = self.part.path
        else:
            self.part = None
            self.tmp = out.with_name(f".{out.name}.tmp")
        self.during = during
        self.writer = None
        self.schema = None

    def _error(self, exc: OSError) -> OutputWriteError:
        return self.part.error(exc) if self.part is not None else OutputWriteError.of(self.out, exc, self.during)

    def write(self, table) -> None:
        import pyarrow as pa

        try:
            if self.writer is None:
                # A column that is all-null in the first chunk would fix its type to null; use text then.
                fields = [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in table.schema]
                self.schema = pa.schema(fields)
                if self.fmt == "csv":
                    import pyarrow.csv as pcsv

                    self.writer = pcsv.CSVWriter(str(self.tmp), self.schema)
                else:
                    import pyarrow.parquet as pq

                    self.writer = pq.ParquetWriter(str(self.tmp), self.schema)
            self.writer.write_table(table.cast(self.schema))
        except OSError as exc:
            raise self._error(exc) from exc

    def commit(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
            if self.part is not None:
                self.part.commit()
            else:
                os.chmod(self.tmp, 0o644)
                os.replace(self.tmp, self.out)
        except OSError as exc:
            raise self._error(exc) from exc

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:  # noqa: BLE001 - already failing; the temporary file goes regardless
            pass
        if self.part is not None:
            self.part.abort()
            return
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:  # its directory is already gone
            pass


def score_chunk_columns(model, chunk, offset: int, *, tabular: bool, reference: np.ndarray, threshold: float,
                        id_columns, report=None) -> tuple[dict[str, Any], np.ndarray]:
    """Score one chunk of rows into output columns: the id columns (or ``row``), ``score``, ``p_value``, ``is_anomaly``.

    Shared by single-process file scoring and the Dask workers, so both write
    exactly the same columns from the same computation.  Errors name the
    chunk's global row range.
    """
    import pyarrow as pa

    if tabular:
        scores = model.score_frame(chunk, row_offset=offset, report=report, warn_extra=False)
    else:
        try:
            scores = model.decision_function(chunk)
        except ValueError as exc:
            raise ValueError(f"rows {offset}-{offset + len(chunk) - 1}: {exc}") from None
    flags = (scores > threshold).astype(np.int8)
    cols: dict[str, Any] = {}
    if id_columns:
        for c in id_columns:
            cols[c] = pa.array(chunk[c], from_pandas=True)
    else:
        cols["row"] = pa.array(np.arange(offset, offset + len(chunk), dtype=np.int64))
    cols["score"] = pa.array(scores)
    cols["p_value"] = pa.array(_thr.conformal_p_values(reference, scores))
    cols["is_anomaly"] = pa.array(flags)
    return cols, flags


def score_file(model: BaseDetector, source, out, *, batch_size: int = DEFAULT_BATCH_ROWS,
               progress: bool = False, on_chunk: Callable[[int], None] | None = None,
               explain_top: int = 0) -> ScoreSummary:
    """Score the table at ``source`` in chunks and write ids + ``score``, ``p_value``, ``is_anomaly`` to ``out``.

    ``out``'s extension picks CSV or Parquet.  The output holds the
    schema's id columns (when the data has them) or, if there are none, a
    ``row`` column (0-based data row).  ``p_value`` is the conformal
    p-value against the model's reference scores and ``is_anomaly`` is 1
    above ``model.threshold_``.  The file is written next to ``out`` and
    renamed into place when complete, so an error or interruption leaves no
    partial output; ``out`` may not be ``source``.  Memory is bounded by
    ``batch_size`` rows, not by the file size.

    ``explain_top=k > 0`` adds a ``top_features`` column: for rows flagged
    as anomalies, the ``k`` source columns that raised the score most
    (:func:`deepad.explain.explain`), separated by ``"; "``; empty for the
    other rows, which keeps the cost proportional to the flagged rows.
    """
    check_is_fitted(model, "decision_scores_")
    source_path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    out = Path(out)
    fmt = output_format(out)
    if source_path is not None and _same_file(source_path, out):
        raise ValueError(f"the output {out} is the input data file; choose another output path.")
    if out.is_dir():
        raise ValueError(f"the output {out} is a directory; give a file name ending in .csv or .parquet.")
    columns = table_columns(source)
    tabular = isinstance(model, TabularDetector)
    extra: list[str] = []
    if tabular:
        missing, extra = model.preprocessor.check_columns(columns)
        if missing:
            where = f"{source_path} lacks" if source_path is not None else "the data lacks"
            raise DataValidationError(f"{where} column(s) {missing}, which the model was trained on.",
                                      column=missing[0])
        schema = model.schema_
        id_columns = [c for c in schema.id_columns if c in columns]
        read = [c for c in schema.names if c in columns and (schema.kinds[c] != "excluded")]
        text_columns = read  # CSV: parse with the preprocessor's row-level error messages
    else:
        names = list(getattr(model, "feature_names_in_", []))
        id_columns, read, text_columns = [], (names or None), None
        if names:
            missing = [c for c in names if c not in columns]
            if missing:
                raise DataValidationError(f"{source_path or 'the data'} lacks column(s) {missing}, "
                                          "which the model was trained on.", column=missing[0])
    report = ScoringReport()
    summary = ScoreSummary(output=str(out), id_columns=id_columns)
    if extra:
        summary.notes.append(f"ignored {len(extra)} column(s) the model was not trained on: "
                             f"{', '.join(map(repr, extra[:8]))}{' ...' if len(extra) > 8 else ''}.")
    if tabular and not id_columns:
        summary.notes.append("no id column in the data; the output has a 'row' column (0-based data row) instead.")
    reference = model._p_value_reference
    threshold = float(model.threshold_)
    total = count_rows(source)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="row", unit_scale=True, desc="scoring", leave=False, dynamic_ncols=True)
    t0 = time.perf_counter()
    writer = _Writer(out, fmt, during=f"scoring {os.fspath(source) if source_path is not None else 'the data'}")
    try:
        import pyarrow as pa

        offset = 0
        for chunk in iter_batches(source, batch_size=batch_size, columns=read, text_columns=text_columns):
            cols, flags = score_chunk_columns(model, chunk, offset, tabular=tabular, reference=reference,
                                              threshold=threshold, id_columns=id_columns, report=report)
            if explain_top:
                cols["top_features"] = pa.array(_top_features_of_flagged(model, chunk, flags, explain_top),
                                                type=pa.string())
            writer.write(pa.table(cols))
            offset += len(chunk)
            summary.flagged += int(flags.sum())
            if bar is not None:
                bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk(offset)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    summary.rows = offset
    summary.seconds = time.perf_counter() - t0
    summary.notes.extend(report.notes())
    return summary


def _top_features_of_flagged(model, chunk: pd.DataFrame, flags: np.ndarray, k: int) -> list[str | None]:
    """``score_file(explain_top=k)``: top source columns of the flagged rows of a chunk, ``None`` for the rest."""
    from deepad.explain import explain, top_features

    out: list[str | None] = [None] * len(chunk)
    rows = np.flatnonzero(flags)
    if rows.size:
        attributions = explain(model, chunk.iloc[rows], top_k=k)
        for r, text in zip(rows, top_features(attributions, k, values=False)):
            out[int(r)] = text
    return out
