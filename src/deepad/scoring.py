"""Scoring tables in chunks: one column plan and one chunked scorer for files, the CLI and the Dask workers.

:func:`column_plan` decides, once, which columns of a table a model reads
(the schema's non-excluded columns for a :class:`~deepad.pipeline.TabularDetector`,
the feature names otherwise), which are id columns echoed to the output,
and which are ignored, plus the columns the user keeps (``keep=``, ``deepad
score --keep``).  :func:`score_chunk_columns` turns one chunk into the
output columns (ids or ``row``, kept columns, ``score``, ``p_value``, ``is_anomaly``);
:func:`score_file` streams a file of any size through it into CSV or
Parquet, atomically (:class:`deepad.data.writers.TableWriter`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from deepad import thresholds as _thr
from deepad.base import BaseDetector
from deepad.data.exports import ReadOptions
from deepad.data.preprocessing import ScoringReport
from deepad.data.readers import DEFAULT_BATCH_ROWS, count_rows, iter_batches, table_columns
from deepad.data.schema import DataValidationError
from deepad.data.pipelining import WriteBehind, prefetch
from deepad.data.writers import TableWriter, output_format, same_file
from deepad.pipeline import TabularDetector

__all__ = [
    "ColumnPlan",
    "column_plan",
    "score_chunk_columns",
    "score_file",
    "score_table",
    "ScoreSummary",
    "OUTPUT_COLUMNS",
]


@dataclass
class ColumnPlan:
    """Which columns of a table a model reads, which it echoes as ids and which it ignores."""

    tabular: bool
    read: list[str] | None  # None: every column (a plain detector without feature names)
    text_columns: list[str] | None  # CSV: parse these with the preprocessor's row-level error messages
    id_columns: list[str]
    ignored: list[str]
    #: columns read as they are written (the model's categorical and id columns): never turned into numbers or dates
    keep_text: list[str] = field(default_factory=list)
    #: date columns -> day first? as in the training file (the schema's ``read`` note), for chunks that do not tell
    dayfirst: dict[str, bool] = field(default_factory=dict)
    keep: list[str] = field(default_factory=list)  # carried to the output as read, after the ids (``keep=``)

    def batches(self, source, read_options: ReadOptions | None = None, *, batch_size: int | None = None):
        """The table at ``source`` in chunks of the columns this plan reads, each read as the model expects."""
        return iter_batches(
            source,
            **({} if batch_size is None else {"batch_size": batch_size}),
            columns=self.read,
            text_columns=self.text_columns,
            options=read_options,
            keep_text=self.keep_text,
            dayfirst_columns=self.dayfirst,
        )

    def notes(self) -> list[str]:
        """What a user should be told about the plan (ignored columns, no id column)."""
        notes = []
        ignored = [c for c in self.ignored if c not in self.keep]
        if ignored:
            notes.append(
                f"ignored {len(ignored)} column(s) the model was not trained on: "
                f"{', '.join(map(repr, ignored[:8]))}{' ...' if len(ignored) > 8 else ''}."
            )
        if self.tabular and not self.id_columns:
            notes.append(
                "no id column in the data; the output has a 'row' column (0-based data row)"
                + (" next to the kept column(s)." if self.keep else " instead (or carry columns with --keep).")
            )
        return notes


#: the columns score_file writes itself; a kept column may not take one of these names
OUTPUT_COLUMNS = ("row", "score", "p_value", "is_anomaly", "top_features")


def _check_keep(keep: Sequence[str], columns: list[str], where: str) -> list[str]:
    """``keep`` without repeats; ``DataValidationError`` naming a column the table lacks, listing its columns."""
    keep = list(dict.fromkeys(str(c) for c in ([keep] if isinstance(keep, str) else keep)))
    missing = [c for c in keep if c not in columns]
    if missing:
        shown = ", ".join(map(repr, columns[:30])) + (" ..." if len(columns) > 30 else "")
        raise DataValidationError(
            f"column(s) {missing} to keep are not in {where}; its columns are: {shown}.",
            column=missing[0],
        )
    return keep


def column_plan(model, columns: Sequence[str], where: str = "the data", *, keep: Sequence[str] = ()) -> ColumnPlan:
    """The :class:`ColumnPlan` of ``model`` on a table with ``columns``; ``DataValidationError`` naming a missing one.

    ``where`` names the table in the error (``"data.csv"``).  ``keep``:
    columns to carry to the output unchanged (e.g. keys to join the scores
    back on), whether or not the model reads them; a name the table lacks
    is a ``DataValidationError`` listing the table's columns.
    """
    columns = [str(c) for c in columns]
    keep = _check_keep(keep, columns, where)
    plan = _model_plan(model, columns, where)
    keep = [c for c in keep if c not in plan.id_columns]  # ids are written anyway
    clash = [c for c in keep if c in OUTPUT_COLUMNS and (c != "row" or not plan.id_columns)]
    if clash:
        raise DataValidationError(
            f"keep column {clash[0]!r} has the name of a column the output writes itself "
            f"({', '.join(OUTPUT_COLUMNS)}); rename it in {where} to keep it.",
            column=clash[0],
        )
    plan.keep = keep
    if plan.read is not None:
        plan.read = plan.read + [c for c in keep if c not in plan.read]
    # A kept column the model does not read is read with the reader's type inference, as read_table
    # reads it, so the output joins back onto the table; one the model reads comes as the model reads it.
    return plan


def _model_plan(model, columns: list[str], where: str) -> ColumnPlan:
    if isinstance(model, TabularDetector):
        missing, extra = model.preprocessor.check_columns(columns)
        if missing:
            raise DataValidationError(
                f"{where} lacks column(s) {missing}, which the model was trained on.", column=missing[0]
            )
        schema = model.schema_
        read = [c for c in schema.names if c in columns and schema.kinds[c] != "excluded"]
        keep = [c for c in read if schema.kinds[c] in ("categorical", "id")]
        dayfirst = {
            c["name"]: "day first" in c["read"]
            for c in schema.columns
            if c["name"] in read and "first" in str(c.get("read", ""))
        }
        ids = [c for c in schema.id_columns if c in columns]
        return ColumnPlan(True, read, read, ids, list(extra), keep, dayfirst)
    names = [str(c) for c in getattr(model, "feature_names_in_", [])]
    missing = [c for c in names if c not in columns]
    if missing:
        raise DataValidationError(
            f"{where} lacks column(s) {missing}, which the model was trained on.", column=missing[0]
        )
    return ColumnPlan(False, names or None, None, [], [])


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


def score_chunk_columns(
    model,
    chunk,
    offset: int,
    *,
    tabular: bool,
    reference: np.ndarray,
    threshold: float,
    id_columns,
    report=None,
    keep=(),
    encoded: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score one chunk into output columns: the id columns (or ``row``), ``keep``, ``score``, ``p_value``, ``is_anomaly``.

    Shared by single-process file scoring and the Dask workers, so both write
    exactly the same columns from the same computation.  Errors name the
    chunk's global row range.  ``encoded``: the chunk's detector input, already made by
    :meth:`~deepad.pipeline.TabularDetector.encode_frame` (a table model's chunk read ahead).
    """
    import pyarrow as pa

    if tabular and encoded is not None:
        scores = np.asarray(model.detector_.decision_function(encoded), dtype=np.float64)
    elif tabular:
        scores = model.score_frame(chunk, row_offset=offset, report=report, warn_extra=False)
    else:
        try:
            scores = model.decision_function(_model_input(model, chunk, keep))
        except ValueError as exc:
            raise ValueError(f"rows {offset}-{offset + len(chunk) - 1}: {exc}") from None
    flags = (scores > threshold).astype(np.int8)
    cols: dict[str, Any] = {}
    if id_columns:
        for c in id_columns:
            cols[c] = pa.array(chunk[c], from_pandas=True)
    else:
        cols["row"] = pa.array(np.arange(offset, offset + len(chunk), dtype=np.int64))
    for c in keep:
        cols[c] = pa.array(chunk[c], from_pandas=True)
    cols["score"] = pa.array(scores)
    cols["p_value"] = pa.array(_thr.conformal_p_values(reference, scores))
    cols["is_anomaly"] = pa.array(flags)
    return cols, flags


def _model_input(model, chunk: pd.DataFrame, keep) -> pd.DataFrame:
    """The chunk without the kept columns a plain detector with feature names does not read."""
    names = getattr(model, "feature_names_in_", None)
    if not keep or names is None or isinstance(model, TabularDetector):
        return chunk
    return chunk[[str(c) for c in names]]


def score_file(
    model: BaseDetector,
    source,
    out,
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    progress: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    explain_top: int = 0,
    read_options: ReadOptions | None = None,
    keep: Sequence[str] = (),
) -> ScoreSummary:
    """Score the table at ``source`` in chunks and write ids + ``score``, ``p_value``, ``is_anomaly`` to ``out``.

    ``read_options`` says how the file is written (decimal comma, NA tokens, encoding ...; detected by default,
    see :class:`~deepad.data.exports.ReadOptions`).  A categorical column where most scored rows carry categories
    never seen in training raises one :class:`~deepad.data.preprocessing.UnseenCategoryWarning` naming it.

    ``out``'s extension picks CSV or Parquet.  The output holds the
    schema's id columns (when the data has them) or, if there are none, a
    ``row`` column (0-based data row).  ``p_value`` is the conformal
    p-value against the model's reference scores and ``is_anomaly`` is 1
    above ``model.threshold_``.  The file is written next to ``out`` and
    renamed into place when complete, so an error or interruption leaves no
    partial output; ``out`` may not be ``source``.  Memory is bounded by
    ``batch_size`` rows, not by the file size.

    ``explain_top=k > 0`` adds a ``top_features`` column (Shapley values from 8
    antithetic permutations, :data:`deepad.explain.BULK_SHAPLEY`): for rows flagged
    as anomalies, the ``k`` source columns that raised the score most
    (:func:`deepad.explain.explain`), separated by ``"; "``; empty for the
    other rows, which keeps the cost proportional to the flagged rows.

    ``keep`` names columns of the table to carry to the output (after the
    ids, before ``score``), e.g. keys to join the scores back on.  A kept
    column the model does not read has the type :func:`deepad.data.read_table`
    gives it; one it reads from a CSV (a feature or an id) is its text as
    written.  A name the table lacks raises ``DataValidationError`` listing
    its columns, and so does one that clashes with a column the output
    writes itself.
    """
    check_is_fitted(model, "decision_scores_")
    source_path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    out = Path(out)
    fmt = output_format(out)
    if source_path is not None and same_file(source_path, out):
        raise ValueError(f"the output {out} is the input data file; choose another output path.")
    if out.is_dir():
        raise ValueError(f"the output {out} is a directory; give a file name ending in .csv or .parquet.")
    where = str(source_path) if source_path is not None else "the data"
    plan = column_plan(model, table_columns(source, read_options), where, keep=keep)
    report = ScoringReport()
    summary = ScoreSummary(output=str(out), id_columns=plan.id_columns, notes=plan.notes())
    reference = model.p_value_reference
    threshold = float(model.threshold_)
    total = count_rows(source)
    bar = None
    if progress:
        from deepad.data.progress import progress_bar

        bar = progress_bar(total, "scoring", unit="row", enabled=True, unit_scale=True)
    t0 = time.perf_counter()
    # the next chunk is read and the last one written while this one is scored (deepad.data.pipelining)
    writer = WriteBehind(
        TableWriter(
            out,
            fmt,
            during=f"scoring {os.fspath(source) if source_path is not None else 'the data'}",
            plain=plan.id_columns or ["row"],
        )
    )
    chunks = plan.batches(source, read_options, batch_size=batch_size)
    scored = _scored_chunks(model, chunks, plan, reference, threshold, report, explain_top)
    try:
        import pyarrow as pa

        offset = 0
        for chunk, cols, flags in scored:
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
        scored.close()  # stops the read-ahead thread, if an error left it running
        if bar is not None:
            bar.close()
    summary.rows = offset
    summary.seconds = time.perf_counter() - t0
    summary.notes.extend(report.notes())
    report.warn_unseen()
    return summary


def score_table(
    model: BaseDetector,
    X,
    *,
    keep: Sequence[str] = (),
    explain_top: int = 0,
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> pd.DataFrame:
    """Score an in-memory table into a DataFrame: what :func:`score_file` writes, indexed like ``X``.

    The columns are those of :func:`score_file` (the id columns, else
    ``row``; the ``keep`` columns; ``score``, ``p_value``, ``is_anomaly``;
    ``top_features`` with ``explain_top``), and the index is ``X``'s index
    when ``X`` is a DataFrame (a ``RangeIndex`` otherwise), so the result
    joins back onto ``X`` (``X.join(score_table(model, X))``).  The
    estimator methods keep scikit-learn's contract instead:
    ``decision_function``/``predict`` return NumPy arrays in ``X``'s row order.
    Rows are scored ``batch_size`` at a time, as files are.
    """

    from deepad.data.readers import to_frame

    check_is_fitted(model, "decision_scores_")
    frame = to_frame(X)
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(frame))
    plan = column_plan(model, list(frame.columns), "X", keep=keep)
    reference, threshold = model.p_value_reference, float(model.threshold_)
    report, parts = ScoringReport(), []
    chunks = iter_batches(frame, batch_size=batch_size, columns=plan.read)
    for _, cols, _ in _scored_chunks(model, chunks, plan, reference, threshold, report, explain_top):
        parts.append(pd.DataFrame({k: v.to_pandas() for k, v in cols.items()}))
    out = pd.concat(parts, ignore_index=True)
    out.index = index
    return out


def _scored_chunks(model, chunks, plan: ColumnPlan, reference, threshold: float, report, explain_top: int):
    """``(chunk, output columns, flags)`` for each chunk in turn: what :func:`score_file` writes and :func:`score_table` returns.

    With ``explain_top`` the columns include ``top_features`` of the flagged rows.  A background thread reads
    (and, for a table model, encodes) the next chunk while this one is scored (:func:`~deepad.data.pipelining.prefetch`):
    with an AutoEncoder on 5M rows of the fraud table, ``deepad score``'s loop ran at 0.51-0.70x in-process
    ``decision_function`` on encoded rows, against 0.43-0.47x one chunk at a time
    (``benchmarks/throughput.py --sections 4 --models ae``; two runs each, 2 cores).
    """
    import pyarrow as pa

    def staged():  # (offset, chunk, its encoded input or None), one chunk ahead of the scoring below
        start = 0
        for i, chunk in enumerate(chunks):
            encoded = None
            if plan.tabular:  # two reused buffers, alternating: the chunk being scored keeps its own
                encoded = model.encode_frame(chunk, row_offset=start, report=report, warn_extra=False, slot=i % 2)
            yield start, chunk, encoded
            start += len(chunk)

    ahead = prefetch(staged())
    try:
        for offset, chunk, encoded in ahead:
            cols, flags = score_chunk_columns(
                model,
                chunk,
                offset,
                tabular=plan.tabular,
                reference=reference,
                threshold=threshold,
                id_columns=plan.id_columns,
                report=report,
                keep=plan.keep,
                encoded=encoded,
            )
            if explain_top:
                cols["top_features"] = pa.array(
                    _top_features_of_flagged(model, _model_input(model, chunk, plan.keep), flags, explain_top),
                    type=pa.string(),
                )
            yield chunk, cols, flags
    finally:
        ahead.close()


def _top_features_of_flagged(model, chunk: pd.DataFrame, flags: np.ndarray, k: int) -> list[str | None]:
    """``score_file(explain_top=k)``: top source columns of the flagged rows of a chunk, ``None`` for the rest."""
    from deepad.explain import BULK_SHAPLEY, explain, top_features

    out: list[str | None] = [None] * len(chunk)
    rows = np.flatnonzero(flags)
    if rows.size:
        attributions = explain(model, chunk.iloc[rows], top_k=k, **BULK_SHAPLEY)
        for r, text in zip(rows, top_features(attributions, k, values=False)):
            out[int(r)] = text
    return out
