"""Time series in: reading, regularising (resampling + gap imputation) and windowing.

A time series here is a table with one timestamp column and one or more
numeric value columns (univariate or multivariate).  Window detectors need a
regular grid, so irregular sampling and gaps are handled explicitly:

1. :func:`read_series` parses the timestamp column, sorts by it, and
   averages rows that share a timestamp;
2. :func:`regularize` resamples to a fixed step -- by default the *median*
   spacing of the timestamps, which is robust to a few gaps and jitter --
   taking the mean of the values in each bin, then fills empty bins by
   time-weighted linear interpolation for gaps of at most ``limit`` steps.
   Longer gaps are left as NaN and, unless ``drop_long_gaps=False``,
   dropped, so a detector never sees invented data for long outages;
3. :func:`sliding_windows` cuts ``(n, d)`` arrays into ``(n_windows,
   window, d)`` windows and :func:`align_to_points` maps per-window scores
   back to one score per row (a row's score is that of the window ending at
   it; the first ``window - 1`` rows get the first full window's score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from deepad.data.readers import table_columns

__all__ = [
    "read_series",
    "regularize",
    "median_step",
    "sliding_windows",
    "align_to_points",
    "default_timestamp_column",
    "StreamClock",
    "read_model_series",
    "SeriesGrid",
    "series_grid",
]

_TIME_NAMES = ("timestamp", "time", "datetime", "date", "ts")


def read_series(
    source, *, timestamp: str | None = None, values: Sequence[str] | None = None, options=None
) -> pd.DataFrame:
    """Read a CSV/Parquet file (or take a DataFrame) into a DataFrame indexed by time.

    ``timestamp`` names the time column (default: the first column called
    timestamp/time/datetime/date/ts, else the first column); ``values`` the
    value columns (default: every other numeric column).  Rows are sorted by
    time; rows with the same timestamp are averaged.
    """
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        from deepad.data.readers import read_table

        df = read_table(source, options=options)  # CSV (any delimiter), Parquet, JSON Lines; errors name the file
    if df.shape[1] < 2:
        raise ValueError(
            f"a time series needs a timestamp column and at least one value column; got columns {list(df.columns)}."
        )
    if timestamp is None:
        timestamp = default_timestamp_column(df.columns)
    if timestamp not in df.columns:
        raise ValueError(f"timestamp column {timestamp!r} not found; columns are {list(df.columns)}.")
    try:
        times = pd.to_datetime(df[timestamp])
    except (ValueError, TypeError):
        try:
            times = pd.to_datetime(df[timestamp], format="mixed")  # e.g. ISO dates with and without times
        except (ValueError, TypeError):
            times = None
        if times is None or times.isna().any():  # name the first value that is not a date
            bad = [i for i, v in enumerate(df[timestamp]) if _not_a_date(v)]
            where = f" (row {bad[0]}: {df[timestamp].iloc[bad[0]]!r})" if bad else ""
            raise ValueError(f"timestamp column {timestamp!r} cannot be parsed as dates{where}.") from None
    if times.isna().any():
        raise ValueError(
            f"timestamp column {timestamp!r} has {int(times.isna().sum())} missing or unparseable values "
            f"(first at row {int(np.flatnonzero(times.isna().to_numpy())[0])})."
        )
    if values is None:
        values = [c for c in df.columns if c != timestamp and pd.api.types.is_numeric_dtype(df[c])]
        if not values:
            raise ValueError(f"no numeric value columns besides {timestamp!r}; columns are {list(df.columns)}.")
    else:
        values = list(values)
        missing = [c for c in values if c not in df.columns]
        if missing:
            raise ValueError(f"value columns {missing} not found; columns are {list(df.columns)}.")
        bad = [c for c in values if not pd.api.types.is_numeric_dtype(df[c])]
        if bad:
            raise TypeError(f"value columns {bad} are not numeric.")
    out = df[values].astype(np.float64)
    out.index = pd.DatetimeIndex(times, name="timestamp")
    out = out.sort_index(kind="stable")
    if out.index.has_duplicates:
        out = out.groupby(level=0).mean()
    return out


def default_timestamp_column(columns: Sequence) -> str:
    """The column taken as the timestamp when none is named: one called timestamp/time/datetime/date/ts, else the first."""
    lower = {str(c).lower(): c for c in columns}
    return next((lower[n] for n in _TIME_NAMES if n in lower), list(columns)[0])


def _not_a_date(value) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False  # reported as missing below
    try:
        return pd.isna(pd.to_datetime(value))
    except (ValueError, TypeError, OverflowError):
        return True


def median_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Median spacing of a sorted time index (robust to a few gaps and jitter)."""
    if len(index) < 2:
        raise ValueError("need at least two timestamps to infer a sampling step.")
    diffs = np.diff(np.asarray(index.values, dtype="datetime64[ns]").astype(np.int64))
    step = int(np.median(diffs[diffs > 0])) if (diffs > 0).any() else 0
    if step <= 0:
        raise ValueError("all timestamps are equal; cannot infer a sampling step.")
    return pd.Timedelta(step, unit="ns")


def regularize(series: pd.DataFrame, *, freq=None, limit: int = 3, drop_long_gaps: bool = True) -> pd.DataFrame:
    """Resample to a regular step and fill short gaps.

    ``freq`` is a pandas offset/timedelta (default: :func:`median_step`).
    Values are averaged per bin; empty bins are filled by time interpolation
    when the gap is at most ``limit`` steps (``limit=0``: no filling).  Bins in
    longer gaps stay NaN, and are dropped when ``drop_long_gaps`` (the
    default), so the result is finite.  The returned frame has the attribute
    ``attrs["step"]`` (the step used), ``attrs["imputed"]`` (count of
    filled bins) and ``attrs["dropped"]`` (bins dropped in long gaps).
    """
    if not isinstance(series.index, pd.DatetimeIndex):
        raise TypeError("series must be indexed by timestamps (use read_series).")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}.")
    step = pd.Timedelta(freq) if freq is not None else median_step(series.index)
    origin = series.index[0]
    binned = series.resample(step, origin=origin).mean()
    empty = binned.isna().all(axis=1)
    if limit > 0:
        filled = binned.interpolate(method="time", limit=limit, limit_area="inside")
        # interpolate's limit fills the first `limit` NaNs of a longer gap; keep only gaps of length <= limit
        run_id = (~empty).cumsum()
        run_len = empty.groupby(run_id).transform("sum")
        too_long = empty & (run_len > limit)
        filled[too_long] = np.nan
    else:
        filled = binned
    imputed = int((empty & filled.notna().all(axis=1)).sum())
    dropped = 0
    if drop_long_gaps:
        n_bins = len(filled)
        filled = filled.dropna(how="any")
        dropped = n_bins - len(filled)
    filled.attrs["step"] = str(step)
    filled.attrs["imputed"] = imputed
    filled.attrs["dropped"] = dropped
    return filled


def sliding_windows(X: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """Windows ``X[i - window + 1 : i + 1]`` ending at rows ``window-1, window-1+stride, ...``; shape ``(m, window, d)``.

    A view (no copy) of ``X`` when possible.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (time, channels), got shape {X.shape}.")
    window, stride = int(window), int(stride)
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}.")
    if X.shape[0] < window:
        raise ValueError(f"X has {X.shape[0]} rows, fewer than the window length {window}.")
    view = np.lib.stride_tricks.sliding_window_view(X, window, axis=0)  # (n - w + 1, d, w)
    return view.transpose(0, 2, 1)[::stride]


def align_to_points(window_scores: np.ndarray, n: int, window: int) -> np.ndarray:
    """One score per row from stride-1 window scores: the window ending at the row; the first ``window-1`` rows
    get the first full window's score (so no row is NaN and thresholds stay well defined)."""
    s = np.asarray(window_scores, dtype=np.float64)
    if s.shape[0] != n - window + 1:
        raise ValueError(f"expected {n - window + 1} window scores for {n} rows and window {window}, got {s.shape[0]}.")
    return np.concatenate([np.full(window - 1, s[0]), s])


class StreamClock:
    """Checks the timestamps of streamed rows against the grid a model was trained on (``series_input_``).

    Why: ``deepad stream`` scores rows as they arrive, one row = one step of
    the training grid.  A row that arrives out of order would be scored as if
    it came later, and missing steps squeeze time in the model's windows --
    both silently wrong, so the first is an error and the second a warning.
    """

    def __init__(self, info: dict):
        self.step = pd.Timedelta(info["step"])
        self.previous = None

    def check(self, value, line_no: int) -> str | None:
        """Raise ``ValueError`` for a row before the previous one; return a warning for a gap, else None."""
        if value is None or value == "":
            return None
        try:
            now = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"timestamp {value!r} is not a date.") from None
        if pd.isna(now):
            raise ValueError(f"timestamp {value!r} is not a date.")
        previous, self.previous = self.previous, now
        if previous is None:
            return None
        try:
            before = now < previous
        except TypeError as exc:  # one row with a time zone, the other without
            self.previous = previous
            raise ValueError(
                f"timestamp {value} cannot be compared with the previous row's ({previous}): {exc}."
            ) from None
        if before:
            self.previous = previous
            raise ValueError(
                f"timestamp {value} is before the previous row's ({previous}); rows must arrive in time order."
            )
        gap = now - previous
        if gap > 1.5 * self.step:
            steps = gap / self.step
            return (
                f"line {line_no}: {gap} since the previous row, about {steps:.0f} steps of {self.step}; "
                f"{steps - 1:.0f} missing step(s) are not filled, so the model's window spans the gap."
            )
        return None


def read_model_series(
    model, data, *, label_column: str | None = None, data_name: str | None = None, read_options=None
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """``(values, labels)`` of series ``data`` as ``model`` reads it: its value columns, on its training grid.

    ``data`` is read with :func:`deepad.data.series.read_series` (rows sorted
    by time); a model trained by ``deepad train`` on a series
    (``series_input_``) gets its timestamp column, step and gap filling.  The
    value columns are the model's training columns when it has names, else
    every numeric column except ``label_column`` (1 = anomaly; returned
    separately, never scored).
    """
    grid = getattr(model, "series_input_", None) or {}
    ts = grid.get("timestamp")
    if ts is not None and isinstance(data, pd.DataFrame) and ts not in data.columns:
        ts = None
    elif ts is not None and not isinstance(data, pd.DataFrame):
        ts = ts if ts in table_columns(data, read_options) else None
    frame = read_series(data, timestamp=ts, options=read_options)
    if grid:
        frame = regularize(frame, freq=grid["step"], limit=int(grid["fill_limit"]))
        if label_column is not None and label_column in frame.columns:  # a step with any labelled row is labelled
            frame[label_column] = (frame[label_column] > 0).astype(np.float64)
        if len(frame) == 0:
            raise ValueError(f"{data_name or 'the data'}: no rows left on the model's {grid['step']} grid.")
    labels = None
    if label_column is not None:
        if label_column not in frame.columns:
            raise ValueError(
                f"{data_name or 'the data'} has no label column {label_column!r}; "
                f"its columns are {list(map(str, frame.columns))[:20]}."
            )
        labels = frame[label_column].to_numpy(dtype=np.float64)
        frame = frame.drop(columns=[label_column])
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        missing = [str(c) for c in names if c not in frame.columns]
        if missing:
            raise ValueError(f"{data_name or 'the data'} lacks the model's columns {missing}.")
        frame = frame[[str(c) for c in names]]
    if frame.shape[1] != model.n_features_in_:
        raise ValueError(
            f"{data_name or 'the data'} has {frame.shape[1]} value columns "
            f"({list(map(str, frame.columns))[:10]}); the model needs {model.n_features_in_}."
        )
    return frame, labels


@dataclass
class SeriesGrid:
    """A series regularised for training: the values on the grid, their labels, and what the model records.

    ``info`` is what a series model keeps as ``series_input_`` (timestamp
    column, value columns, step, gap filling, span, counts), so scoring,
    streaming and reports read new data on the same grid
    (:func:`read_model_series`, :class:`StreamClock`); :meth:`attach` stores it.
    """

    values: pd.DataFrame
    labels: np.ndarray | None
    info: dict
    merged: int

    def attach(self, model):
        """Record the grid on the fitted ``model`` (``series_input_``) and return it."""
        model.series_input_ = dict(self.info)
        return model


def series_grid(
    df: pd.DataFrame,
    *,
    timestamp: str,
    values: Sequence[str],
    labels: pd.Series | np.ndarray | None = None,
    resample=None,
    fill_limit: int = 3,
) -> SeriesGrid:
    """Read ``df``'s ``timestamp`` and ``values`` columns onto a regular grid (:func:`regularize`) for training.

    ``labels`` (1 = anomaly, aligned with ``df``'s rows) are carried to the
    grid: a step is labelled if any of its rows is.  ``ValueError`` when no
    step is left.
    """
    frame = df[[timestamp, *values]].copy()
    label = "__label__"
    if labels is not None:
        frame[label] = np.asarray(labels, dtype=np.float64)
    series = read_series(frame, timestamp=timestamp, values=[*values, *([label] if labels is not None else [])])
    grid = regularize(series, freq=resample, limit=fill_limit)
    if len(grid) == 0:
        raise ValueError(f"no rows left after resampling to {grid.attrs['step']} and dropping long gaps.")
    y = (grid.pop(label).to_numpy() > 0).astype(np.float64) if labels is not None else None
    info = {
        "timestamp": str(timestamp),
        "values": [str(v) for v in values],
        "step": grid.attrs["step"],
        "fill_limit": int(fill_limit),
        "resampled": bool(resample),
        "points": int(len(grid)),
        "start": str(grid.index[0]),
        "end": str(grid.index[-1]),
        "filled": int(grid.attrs["imputed"]),
        "dropped": int(grid.attrs["dropped"]),
    }
    return SeriesGrid(values=grid, labels=y, info=info, merged=len(df) - len(series))
