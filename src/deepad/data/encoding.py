"""Column encodings of :class:`~deepad.data.TabularPreprocessor`: calendar features, rarity scaling, a reused buffer.

Kept apart from the preprocessor so that each stays readable; the
preprocessor re-exports these names.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

__all__: list[str] = []


def _rarity_scale(p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of one-hot columns with training frequencies ``p`` under ``category_encoding="rarity"``.

    The indicator is centred on ``p`` and scaled so that having the category
    puts the row ``z(p) = Phi^-1(1 - p / 2)`` units out: as far as a normal
    value with the same two-sided tail probability (p = 0.3 % -> 2.97, 5 % ->
    1.96, 40 % -> 0.84).  ``p`` is kept half a row away from 0 and 1, so a
    category never seen in training (``__other__``) is 3.7 units out at
    2,000 rows and no scale is 0.  Plain standardization, ``sqrt(p (1 - p))``,
    puts a 0.3 % category 18 units out, which makes LOF treat the rare rows
    as a cluster of their own (docs/design/explanations.md).
    """
    from scipy.special import ndtri

    p = np.clip(np.asarray(p, dtype=np.float64), 0.5 / n, 1.0 - 0.5 / n)
    z = ndtri(1.0 - p / 2.0)
    return p, (1.0 - p) / z


# --------------------------------------------------------------------------- calendar features
def _circle(values: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    angle = 2.0 * np.pi * values / period
    return np.sin(angle), np.cos(angle)


def _datetime_raw(ts: pd.Series, features: list[str]) -> dict[str, np.ndarray]:
    """Raw derived quantities (NaN where missing): hour (fractional), dayofweek, month (fractional), unix days.

    The calendar fields are integer arithmetic on the UTC epoch values (``datetime64`` floors, as pandas'
    ``.dt`` fields do), then the same float64 expressions as ``dt.hour + dt.minute / 60.0 + ...``, so the
    values equal the ``.dt`` accessor's bit for bit at a fraction of its cost (8 accessor calls per chunk).
    """
    out = {}
    naive = ts.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(ts.dt, "tz", None) is not None else ts
    values = naive.to_numpy()
    nat = np.isnat(values)
    seconds = values.astype("datetime64[s]").view(np.int64)
    days = seconds // 86_400
    of_day = seconds - days * 86_400
    hour = of_day // 3600
    for f in features:
        if f == "hour":
            v = hour + (of_day // 60) % 60 / 60.0 + of_day % 60 / 3600.0
        elif f == "dayofweek":
            v = (days + 3) % 7 + (hour / 24.0)  # 1970-01-01 was a Thursday (3; Monday is 0)
        elif f == "month":
            month = values.astype("datetime64[M]")
            first = month.astype("datetime64[D]")
            in_month = ((month + 1).astype("datetime64[D]") - first).view(np.int64)
            v = month.view(np.int64) % 12 + (values.astype("datetime64[D]") - first).view(np.int64) / in_month
        else:  # unix days
            v = pd.Series((ts - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)).to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        v = np.asarray(v, dtype=np.float64)
        if f != "unix" and nat.any():
            v[nat] = np.nan
        out[f] = v
    return out


_PERIODS = {"hour": 24.0, "dayofweek": 7.0, "month": 12.0}

_SCRATCH = threading.local()


def _scratch_matrix(n: int, d: int, slot: int = 0) -> np.ndarray:
    """A column-major float64 ``(n, d)`` matrix that this thread reuses from one call to the next.

    Why: a fresh 65,536 x 72 matrix is 37 MB, which the allocator maps anew for every chunk, and touching its
    pages cost about a fifth of the encoding (``benchmarks/throughput.py``).  The buffer grows to the largest
    chunk this thread has encoded and is kept for the next one.  ``slot``: one buffer per slot, so a thread
    encoding one chunk ahead of its consumer alternates two slots and never overwrites the chunk in use.
    """
    buffers = getattr(_SCRATCH, "matrices", None)
    if buffers is None:
        buffers = _SCRATCH.matrices = {}
    buf = buffers.get(slot)
    if buf is None or buf.shape[1] != d or buf.shape[0] < n:
        buf = buffers[slot] = np.empty((n, d), dtype=np.float64, order="F")
    return buf[:n]
