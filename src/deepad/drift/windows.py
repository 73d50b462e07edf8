"""Drift over time: :func:`detect_drift` on consecutive windows of a table (file order, or by a timestamp column)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepad.drift.core import detect_drift

__all__ = ["split_windows", "drift_over_windows", "MIN_WINDOW_ROWS"]

#: windows with fewer rows are reported as skipped (too few for any test to mean much)
MIN_WINDOW_ROWS = 20


def split_windows(
    df: pd.DataFrame,
    *,
    window: int | None = None,
    time_column: str | None = None,
    every: str | None = None,
    n_windows: int = 10,
) -> tuple[list[dict], dict]:
    """``(windows, notes)``: each window is ``{"label", "rows" (positions), "start", "end"}``.

    * ``window``: consecutive blocks of ``window`` rows in file order (a
      last block under half a window joins the one before);
    * ``time_column``: rows ordered by that column, cut into periods of
      ``every`` (a pandas fixed frequency: ``1h``, ``6h``, ``1D``, ``7D``)
      or, without ``every``, the time span cut into ``n_windows`` equal
      periods.  Rows without a time are left out and counted in ``notes``;
    * neither: ``n_windows`` equal blocks in file order.
    """
    from deepad.data.values import datetime_values

    n = len(df)
    notes: dict = {}
    if window is not None and time_column is not None:
        raise ValueError("give a window size or a time column, not both.")
    if time_column is None:
        size = int(window) if window is not None else max(1, int(np.ceil(n / max(int(n_windows), 1))))
        if size < 1:
            raise ValueError(f"window must be a positive number of rows, got {window}.")
        starts = list(range(0, n, size))
        if len(starts) > 1 and n - starts[-1] < size / 2:
            starts.pop()
        bounds = starts[1:] + [n]
        out = [
            {"label": f"rows {a:,}-{b - 1:,}", "rows": np.arange(a, b), "start": a, "end": b - 1}
            for a, b in zip(starts, bounds)
        ]
        notes["by"] = f"blocks of {size:,} rows in file order"
        return out, notes
    if time_column not in df.columns:
        raise ValueError(f"no time column {time_column!r}; the columns are {[str(c) for c in df.columns][:20]}.")
    ts = datetime_values(df[time_column], time_column)
    known = ts.notna().to_numpy()
    if not known.any():
        raise ValueError(f"time column {time_column!r} has no time values.")
    if (~known).any():
        notes["rows_without_time"] = int((~known).sum())
    if every is not None:
        try:
            keys = ts.dt.floor(every)
        except (ValueError, TypeError):
            raise ValueError(f"every={every!r} is not a fixed frequency pandas knows (e.g. 1h, 6h, 1D, 7D).") from None
        notes["by"] = f"periods of {every} of {time_column!r}"
    else:
        lo, hi = ts[known].min(), ts[known].max()
        span = (hi - lo) / max(int(n_windows), 1)
        if span == pd.Timedelta(0):
            keys = pd.Series(lo, index=ts.index).where(known)
        else:
            index = ((ts - lo) / span).to_numpy(dtype=np.float64, na_value=np.nan)
            index = np.minimum(np.floor(index), int(n_windows) - 1)
            keys = pd.Series(lo + span * index, index=ts.index).where(known)
        notes["by"] = f"{int(n_windows)} equal periods of {time_column!r}"
    codes, uniques = pd.factorize(keys, sort=True)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    out = []
    for k, start in enumerate(uniques):
        rows = order[np.searchsorted(sorted_codes, k, "left") : np.searchsorted(sorted_codes, k, "right")]
        stamp = pd.Timestamp(start)
        out.append({"label": stamp.isoformat(), "rows": rows, "start": stamp.isoformat(), "end": None})
    for a, b in zip(out, out[1:]):
        a["end"] = b["start"]
    return out, notes


def drift_over_windows(model, df: pd.DataFrame, windows: list[dict], **options) -> list[dict]:
    """:func:`detect_drift` per window: ``label``, ``rows``, ``drift``, ``p_value``, ``flag_rate``, ``moved``, ``sections``.

    ``options`` go to :func:`detect_drift`.  A window under
    :data:`MIN_WINDOW_ROWS` rows is listed with ``"skipped"`` and no test.
    """
    out = []
    for w in windows:
        rows = w["rows"]
        entry = {"label": w["label"], "start": w["start"], "end": w["end"], "rows": int(len(rows))}
        if len(rows) < MIN_WINDOW_ROWS:
            out.append({**entry, "skipped": f"fewer than {MIN_WINDOW_ROWS} rows"})
            continue
        part = df.iloc[rows] if isinstance(df, pd.DataFrame) else np.asarray(df)[rows]
        r = detect_drift(model, part, **options)
        rate = r.score["flag_rate"]
        out.append(
            {
                **entry,
                "drift": r.drift,
                "p_value": r.p_value,
                "sections": dict(r.sections),
                "flag_rate": rate["new_rate"],
                "expected_flag_rate": rate["expected_rate"],
                "flag_rate_p_value": rate["p_value"],
                "moved": r.moved,
            }
        )
    return out
