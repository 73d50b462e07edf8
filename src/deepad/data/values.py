"""Reading one column's values as the kind the schema gives it (number, boolean, datetime, category), with errors
that name the column and the first bad rows: the parsing half of :mod:`deepad.data.preprocessing`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from deepad.data.schema import (
    FALSE_STRINGS,
    TRUE_STRINGS,
    DataValidationError,
    describe_bad_rows,
    parse_datetimes,
    parse_numbers,
)

__all__ = ["numeric_values", "boolean_values", "label_values", "datetime_values", "category_values", "MISSING"]

#: the category a missing value of a categorical column becomes
MISSING = "__missing__"


def _wrong_type(name: str, s: pd.Series, expected: str, row_offset: int) -> DataValidationError:
    nonnull = s.notna().to_numpy()
    detail, rows = describe_bad_rows(s, nonnull, row_offset=row_offset, limit=3)
    return DataValidationError(
        f"column {name!r} holds {s.dtype} values where training had {expected}: {detail}.", column=name, rows=rows
    )


def _unparseable(name: str, s: pd.Series, bad: np.ndarray, expected: str, row_offset: int) -> DataValidationError:
    detail, rows = describe_bad_rows(s, bad, row_offset=row_offset)
    return DataValidationError(
        f"column {name!r}: {int(bad.sum())} value(s) cannot be read as {expected}: {detail}.", column=name, rows=rows
    )


def _text_to_float(s: pd.Series, name: str, row_offset: int) -> np.ndarray:
    values = parse_numbers(s)
    bad = np.isnan(values) & s.notna().to_numpy()
    if bad.any():
        raise _unparseable(name, s, bad, "numbers", row_offset)
    return values


def numeric_values(s: pd.Series, name: str, row_offset: int = 0) -> np.ndarray:
    """float64 with NaN for missing; bad values raise :class:`DataValidationError`."""
    if s.isna().all():
        return np.full(len(s), np.nan)
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_timedelta64_dtype(s.dtype):
        values = s.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_datetime64_any_dtype(s.dtype):
        raise _wrong_type(name, s, "numbers", row_offset)
    else:
        values = _text_to_float(s, name, row_offset)
    inf = np.isinf(values)
    if inf.any():
        raise _unparseable(name, s, inf, "finite numbers (infinity found)", row_offset)
    return values


#: what a boolean feature column accepts, as its error says
_BOOLEAN_RULE = ("true/false (training had a boolean; numbers must be 0 or 1)", "true/false")
#: what a label column accepts (deepad train/tune/report --label-column), as its error says
_LABEL_RULE = (
    "labels (numbers must be 1 = anomaly or 0 = normal; blank = unknown)",
    "labels (1/true = anomaly, 0/false = normal, blank = unknown)",
)


def label_values(s: pd.Series, name: str, row_offset: int = 0) -> np.ndarray:
    """A label column as 1.0 (anomaly) / 0.0 (normal) / NaN (unknown): :func:`boolean_values` with the labels'
    wording in its error (a label column is not a boolean feature that training had)."""
    return boolean_values(s, name, row_offset, _rule=_LABEL_RULE)


def boolean_values(s: pd.Series, name: str, row_offset: int = 0, *, _rule=_BOOLEAN_RULE) -> np.ndarray:
    """0.0 / 1.0 with NaN for missing; anything else raises."""
    if s.isna().all():
        return np.full(len(s), np.nan)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isnan(values) & (values != 0) & (values != 1)
        if bad.any():
            raise _unparseable(name, s, bad, _rule[0], row_offset)
        return values
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        raise _wrong_type(name, s, "true/false values", row_offset)
    true_set, false_set = TRUE_STRINGS | {"1", True, 1}, FALSE_STRINGS | {"0", False, 0}
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        # Text (e.g. a CSV column): each distinct value read once -- a true/false column holds a handful -- then
        # spread by its codes (the same test as below, without a Python call per row).
        codes, uniques = pd.factorize(s)
        lowered = [v.strip().lower() for v in uniques.tolist()]
        level = [1.0 if v in true_set else 0.0 if v in false_set else np.nan for v in lowered]
        values = np.array(level + [np.nan])[codes]  # code -1 (missing) takes the last entry, NaN
        bad = (codes >= 0) & np.isnan(values)
    else:
        text = s.astype(object).where(s.notna(), None)
        lowered = text.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
        values = np.full(len(s), np.nan)
        is_true = lowered.isin(true_set).to_numpy()
        is_false = lowered.isin(false_set).to_numpy()
        values[is_true] = 1.0
        values[is_false] = 0.0
        bad = s.notna().to_numpy() & ~is_true & ~is_false
    if bad.any():
        raise _unparseable(name, s, bad, _rule[1], row_offset)
    return values


def datetime_values(s: pd.Series, name: str, row_offset: int = 0) -> pd.Series:
    """UTC ``datetime64`` with NaT for missing; numbers or unparseable text raise."""
    if s.isna().all():
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        raise DataValidationError(
            f"{_wrong_type(name, s, 'dates/times', row_offset)} Convert epoch numbers first, e.g. "
            f"pd.to_datetime(df[{name!r}], unit='s').",
            column=name,
        )
    try:
        parsed = parse_datetimes(s)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataValidationError(f"column {name!r} cannot be read as dates/times: {exc}", column=name) from None
    bad = parsed.isna().to_numpy() & s.notna().to_numpy()
    if bad.any():
        raise _unparseable(name, s, bad, "dates/times (ISO 8601, e.g. 2024-05-01 13:45:00)", row_offset)
    return parsed


def category_values(s: pd.Series) -> pd.Series:
    """Canonical text of each value (``"5"`` for 5 and 5.0), :data:`MISSING` for missing values."""
    missing = s.isna().to_numpy()
    if pd.api.types.is_string_dtype(s.dtype) and not s.dtype == object:
        out = s.astype(object)
    elif pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype):
        out = s.astype(object).map(str)
    elif pd.api.types.is_float_dtype(s.dtype):
        out = s.map(_canonical_scalar)
    else:
        out = s.astype(object).map(_canonical_scalar)
    out = out.astype(object)
    out[missing] = MISSING
    return out


def _canonical_scalar(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return None
        return str(int(v)) if float(v).is_integer() and abs(v) < 2**63 else repr(float(v))
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v)
