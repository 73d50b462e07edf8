"""What each column of a table is: inferred once from the training data, saved with the model.

Kinds of column:

``numeric``
    integer or float columns, and text columns in which every value is a
    number ("numbers stored as text").  Integer codes (ZIP codes, merchant
    category codes) stay numeric unless declared ``categorical`` with
    ``types``.
``boolean``
    bool columns, and text columns holding only true/false, yes/no, t/f, y/n
    (any case).  0/1 integer columns stay numeric, which encodes them the same way.
``datetime``
    datetime columns (any time zone), and text columns in which every value
    parses as an ISO 8601 date/time.  They become derived features -- see
    :class:`~deepad.data.TabularPreprocessor`.
``categorical``
    every other text / category column.
``id``
    excluded from the features and passed through to ``deepad score``'s
    output.  A column is an id when it is (near-)unique -- every row
    distinct, or, from 50 rows on, at least 95 % of the rows distinct and
    present (a few repeated or missing ids are common in real exports) --
    and (a) it holds integers or text and its name looks like an
    identifier (``id``, ``transaction_id``, ``TransactionID``, ``uuid``,
    ``row_key`` ...), or (b) it holds text that is not numbers or dates
    (every value of a near-unique text column would be unseen at scoring
    time, so nothing can be learned from it), or (c) from 50 rows on, it
    holds fixed-pattern codes (``TX-000123``, uuids, hex hashes) with at
    least 80 % of the rows distinct.  Float columns are never ids (an
    all-distinct amount is a feature).  The schema's ``reason`` says which
    rule applied and how many values repeat.
``excluded``
    named in ``exclude`` (or the label column), or with no value at all in
    the training data.

Inference fails loudly, never guesses silently, on a text column that is
*almost* all numbers or dates (at least 90 % of its values parse): such a
column usually holds a typo, and the message names the column and the
first rows that do not parse.  Declare the column's type with ``types`` if
the mix is intended.  A text column that still *looks* numeric or temporal
(at least half its values are written like numbers or dates, e.g. in a
convention the reader did not recognise) but is read as categorical gets
a :class:`~deepad.data.exports.ReadWarning` naming it.

A :class:`Schema` is a ``dict`` (JSON-able as is), so it can be passed as
a detector parameter and saved with the model.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from deepad.data.exports import ReadWarning, looks_numeric_or_temporal

__all__ = ["Schema", "infer_schema", "KINDS", "DataValidationError", "describe_bad_rows"]

KINDS = ("numeric", "categorical", "boolean", "datetime", "id", "excluded")
FEATURE_KINDS = ("numeric", "categorical", "boolean", "datetime")
SCHEMA_FORMAT = "deepad-schema"
SCHEMA_VERSION = 1

TRUE_STRINGS = frozenset({"true", "t", "yes", "y"})
FALSE_STRINGS = frozenset({"false", "f", "no", "n"})

_ID_TOKENS = frozenset({"id", "ids", "uuid", "guid", "uid", "key", "pk"})
_ID_NAMES = frozenset({"index", "rowid", "row_id", "row_number", "unnamed: 0", "level_0"})
_ALMOST = 0.9  # share of parseable values above which a mixed column is an error, not a category
_NEAR_UNIQUE = 0.95  # share of rows with a distinct value from which an id-like column is an id
_CODE_UNIQUE = 0.8  # the same for fixed-pattern codes (TX-000123, uuids, hashes)
_NEAR_MIN_ROWS = 50  # below this, only exactly-unique columns are ids
_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class DataValidationError(ValueError):
    """Values of a column cannot be used: the message names the column and the first bad rows."""

    def __init__(self, message: str, *, column: str | None = None, rows: list[int] | None = None):
        super().__init__(message)
        self.column = column
        self.rows = rows or []


def describe_bad_rows(
    values: pd.Series, bad: np.ndarray, *, row_offset: int = 0, limit: int = 5
) -> tuple[str, list[int]]:
    """``"row 17 ('abc'), row 40 ('x') (2 of 2)"`` for the positions where ``bad`` is true."""
    idx = np.flatnonzero(bad)
    shown = idx[:limit]
    parts = []
    for i in shown:
        v = values.iloc[int(i)]
        text = repr(v if not isinstance(v, (np.generic,)) else v.item())
        if len(text) > 40:
            text = text[:37] + "..."
        parts.append(f"row {int(i) + row_offset} ({text})")
    more = f" (first {len(shown)} of {idx.size})" if idx.size > len(shown) else ""
    return ", ".join(parts) + more, [int(i) + row_offset for i in shown]


# --------------------------------------------------------------------------- the schema object
class Schema(dict):
    """Column kinds of a table, as a JSON-able ``dict``::

        {"format": "deepad-schema", "version": 1,
         "columns": [{"name": "amount", "kind": "numeric", "dtype": "float64", "reason": "..."}, ...]}

    Build one with :func:`infer_schema` (or :meth:`from_dict` / :meth:`from_json`);
    :attr:`kinds`, :attr:`feature_columns` and :attr:`id_columns` read it.
    """

    @classmethod
    def from_columns(cls, columns: list[dict[str, Any]]) -> "Schema":
        return cls({"format": SCHEMA_FORMAT, "version": SCHEMA_VERSION, "columns": [dict(c) for c in columns]})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Schema":
        """Validate a schema dict (e.g. read back from JSON) and wrap it."""
        if isinstance(data, Schema):
            return data
        if not isinstance(data, Mapping) or not isinstance(data.get("columns"), list):
            raise ValueError("a schema is a dict with a 'columns' list (see deepad.data.infer_schema).")
        if data.get("format", SCHEMA_FORMAT) != SCHEMA_FORMAT:
            raise ValueError(f"not a deepad schema: format {data.get('format')!r}.")
        if int(data.get("version", SCHEMA_VERSION)) > SCHEMA_VERSION:
            raise ValueError(f"schema version {data['version']} is newer than this deepad understands.")
        seen = set()
        for col in data["columns"]:
            if not isinstance(col, Mapping) or "name" not in col or "kind" not in col:
                raise ValueError(f"schema column entries need 'name' and 'kind', got {col!r}.")
            if col["kind"] not in KINDS:
                raise ValueError(f"column {col['name']!r} has unknown kind {col['kind']!r}; kinds are {KINDS}.")
            if col["name"] in seen:
                raise ValueError(f"column {col['name']!r} appears twice in the schema.")
            seen.add(col["name"])
        return cls.from_columns(list(data["columns"]))

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        return cls.from_dict(json.loads(text))

    def to_json(self, **kwargs) -> str:
        return json.dumps(self, **{"indent": 2, **kwargs})

    @property
    def columns(self) -> list[dict[str, Any]]:
        return self["columns"]

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def kinds(self) -> dict[str, str]:
        return {c["name"]: c["kind"] for c in self.columns}

    @property
    def feature_columns(self) -> list[str]:
        return [c["name"] for c in self.columns if c["kind"] in FEATURE_KINDS]

    @property
    def id_columns(self) -> list[str]:
        return [c["name"] for c in self.columns if c["kind"] == "id"]

    def summary(self) -> str:
        """One line per kind, e.g. ``numeric (3): amount, age, distance``."""
        lines = []
        for kind in KINDS:
            names = [c["name"] for c in self.columns if c["kind"] == kind]
            if names:
                shown = ", ".join(names[:12]) + (f", ... (+{len(names) - 12})" if len(names) > 12 else "")
                lines.append(f"{kind} ({len(names)}): {shown}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- inference
def _looks_like_id_name(name: str) -> bool:
    if name.strip().lower() in _ID_NAMES:
        return True
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    snake = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", snake)
    tokens = [t for t in re.split(r"[_\-\s.:/]+", snake.lower()) if t]
    return bool(tokens) and (
        tokens[-1] in _ID_TOKENS or tokens[0] in _ID_TOKENS and len(tokens) > 1 and tokens[0] != "key"
    )


def is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) or s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype)


def parse_numbers(values: pd.Series) -> np.ndarray:
    """Text to float64 with Arrow's parser (the one CSV reading uses); unparseable -> NaN, missing -> NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = None
    if arr is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pa.array(values.astype(object).map(lambda v: None if _isna(v) else str(v)), type=pa.string())
    try:
        return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Slow path (only when something fails): value by value, through the distinct values.
    present = values.notna().to_numpy()
    codes, uniques = pd.factorize(values[present].astype(str))
    uniques = np.asarray(uniques, dtype=object)
    # A character no float is written with (':' of a time, '/' of a date, most letters) fails without a try.
    hopeless = pc.match_substring_regex(pa.array(uniques, type=pa.string()), r"[^0-9+\-.eEiInNfFaAtTyY \t]")
    hopeless = np.asarray(hopeless.to_numpy(zero_copy_only=False), dtype=bool)
    parsed = np.full(len(uniques), np.nan)
    for i in np.flatnonzero(~hopeless):
        try:
            parsed[i] = float(pc.cast(pa.array([uniques[i]], type=pa.string()), pa.float64())[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass
    out = np.full(len(values), np.nan)
    out[present] = parsed[codes]
    return out


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists, arrays
        return False


def parse_datetimes(values: pd.Series) -> pd.Series:
    """ISO 8601 text (or datetimes) to UTC ``datetime64``; unparseable -> NaT.  Naive values are taken as UTC."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return (
            values.dt.tz_convert("UTC") if getattr(values.dt, "tz", None) is not None else values.dt.tz_localize("UTC")
        )
    text = values.astype(object).where(values.notna(), None)
    out = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    if out.isna().any() and text.notna().any():
        # Date objects (from JSON/pyarrow) and mixed representations, one by one.
        retry = out.isna() & text.notna()
        out.loc[retry] = pd.to_datetime(
            text[retry].map(lambda v: v if not isinstance(v, str) else None), errors="coerce", utc=True
        )
    return out


def _dateish(text: pd.Series) -> pd.Series:
    return text.str.contains(r"^\s*\d{4}-\d{1,2}-\d{1,2}", regex=True, na=False)


def _uniqueness(s: pd.Series, nonnull: pd.Series) -> tuple[float, int, int]:
    """``(distinct values / rows, repeated rows, missing rows)``."""
    n = len(s)
    k = int(nonnull.nunique())
    return (k / n if n else 0.0), len(nonnull) - k, n - len(nonnull)


def _fixed_pattern(text: pd.Series) -> str | None:
    """The shape shared by (almost) all values -- ``'TX-999999'``, ``'uuid'``, ``'hex hash'`` -- or ``None``."""
    sample = text.iloc[:5000].str.strip()
    if sample.str.fullmatch(_UUID).mean() >= 0.99:
        return "uuid"
    if sample.str.fullmatch(r"[0-9a-fA-F]{16,}").mean() >= 0.99 and sample.str.len().nunique() == 1:
        return "hex hash"
    shapes = sample.str.replace(r"[0-9]", "9", regex=True).str.replace(r"[A-Za-z]", "A", regex=True)
    top = shapes.value_counts()
    if not top.empty and top.iloc[0] >= 0.99 * len(sample) and "9" in top.index[0] and len(top.index[0]) >= 4:
        return repr(top.index[0])
    return None


def _id_entry(entry: dict, rule: str, s: pd.Series, nonnull: pd.Series) -> dict[str, Any]:
    share, repeated, missing = _uniqueness(s, nonnull)
    detail = f"{share:.1%} of {len(s):,} rows distinct"
    extras = [f"{repeated:,} repeated" if repeated else "", f"{missing:,} missing" if missing else ""]
    detail += "".join(f", {e}" for e in extras if e)
    return {
        **entry,
        "kind": "id",
        "reason": f"{rule} ({detail}): an identifier, nothing to learn from; excluded from the features, "
        f"passed through by deepad score (declare another kind with types / --type to override)",
    }


def _infer_one(name: str, s: pd.Series) -> dict[str, Any]:
    n = len(s)
    dtype = str(s.dtype)
    entry = {"name": name, "dtype": dtype}
    nonnull = s.dropna()
    if nonnull.empty:
        return {**entry, "kind": "excluded", "reason": "no values in the training data"}
    if s.dtype == object:  # lists, arrays, dicts (Parquet/JSON nested columns) are not one value per cell
        nested = next((v for v in nonnull.iloc[:100] if isinstance(v, (list, tuple, dict, set, np.ndarray))), None)
        if nested is not None:
            raise DataValidationError(
                f"column {name!r} holds nested values ({type(nested).__name__}s such as "
                f"{str(nested)[:40]}), not one value per row; exclude it (CLI: --exclude "
                f"{name}) or flatten it into columns.",
                column=name,
            )
    unique_per_row = len(nonnull) == n and n > 1 and nonnull.nunique() == n
    near_unique = unique_per_row or (n >= _NEAR_MIN_ROWS and _uniqueness(s, nonnull)[0] >= _NEAR_UNIQUE)
    if pd.api.types.is_bool_dtype(s.dtype):
        return {**entry, "kind": "boolean", "reason": "bool column"}
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return {**entry, "kind": "datetime", "reason": "datetime column"}
    if pd.api.types.is_timedelta64_dtype(s.dtype):
        return {**entry, "kind": "numeric", "reason": "duration (seconds)"}
    if pd.api.types.is_integer_dtype(s.dtype) and near_unique and _looks_like_id_name(name):
        return _id_entry(entry, "id-like name, distinct integers", s, nonnull)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return {**entry, "kind": "numeric", "reason": "numeric column"}
    if not is_text(s):
        raise DataValidationError(
            f"column {name!r} has type {dtype}, which deepad cannot use; exclude it or convert it.", column=name
        )
    # Text (or Python objects: dates, mixed) from here on.
    import datetime as _dt

    if any(isinstance(v, (_dt.date, _dt.datetime, pd.Timestamp)) for v in nonnull.iloc[:100]):
        return {**entry, "kind": "datetime", "reason": "date objects"}
    if near_unique and _looks_like_id_name(name):
        return _id_entry(entry, "id-like name, distinct values", s, nonnull)
    text = nonnull.astype(str)
    lowered = pd.Series(pd.unique(text.str.strip().str.lower()))
    if lowered.isin(TRUE_STRINGS | FALSE_STRINGS).all():
        return {**entry, "kind": "boolean", "reason": "true/false text"}
    numbers = parse_numbers(text)
    ok = ~np.isnan(numbers)
    if ok.all():
        return {**entry, "kind": "numeric", "reason": "numbers stored as text"}
    if ok.mean() >= _ALMOST:
        detail, rows = describe_bad_rows(s, s.notna().to_numpy() & _nan_positions(s, numbers))
        raise DataValidationError(
            f"column {name!r} looks numeric ({int(ok.sum())} of {ok.size} values are numbers) but "
            f"some values are not: {detail}. Fix them, or declare the column's type, "
            f"e.g. types={{{name!r}: 'categorical'}} (CLI: --type {name}=categorical).",
            column=name,
            rows=rows,
        )
    sample = text.iloc[:2000]
    if _dateish(sample).mean() >= _ALMOST:
        parsed = parse_datetimes(text)
        good = parsed.notna().to_numpy()
        if good.all():
            return {**entry, "kind": "datetime", "reason": "ISO 8601 date/time text"}
        if good.mean() >= _ALMOST:
            full = np.zeros(n, dtype=bool)
            full[np.flatnonzero(s.notna().to_numpy())[~good]] = True
            detail, rows = describe_bad_rows(s, full)
            raise DataValidationError(
                f"column {name!r} looks like dates/times ({int(good.sum())} of {good.size} values "
                "parse as ISO 8601) "
                f"but some values do not: {detail}. Fix them, or declare the column's type, "
                f"e.g. types={{{name!r}: 'categorical'}} (CLI: --type {name}=categorical).",
                column=name,
                rows=rows,
            )
    if near_unique:
        return _id_entry(entry, "distinct text values", s, nonnull)
    if n >= _NEAR_MIN_ROWS and _uniqueness(s, nonnull)[0] >= _CODE_UNIQUE:
        pattern = _fixed_pattern(text)
        if pattern is not None:
            return _id_entry(entry, f"fixed-pattern codes ({pattern})", s, nonnull)
    suspicious = looks_numeric_or_temporal(text)
    if suspicious is not None:
        import warnings

        kind, share, misfits = suspicious
        what = "numbers" if kind == "numeric" else "dates/times"
        examples = ", ".join(repr(v) for v in pd.unique(misfits)[:3])
        reason = (
            f"text column, although {share:.0%} of its values look like {what}"
            + (f" (not: {examples})" if examples else "")
            + "; read as categorical"
        )
        hint = (
            "--decimal/--thousands, --na-values"
            if kind == "numeric"
            else "--date-format, --dayfirst/--monthfirst, --na-values"
        )
        warnings.warn(
            ReadWarning(
                f"column {name!r} looks {kind} ({share:.0%} of its values are written like {what}"
                + (f"; not: {examples}" if examples else "")
                + f") but is read as categorical. Check how the file writes it ({hint}; decimal/thousands/"
                f"na_values/date_format/dayfirst in ReadOptions), or declare its kind "
                f"(--type {name}={'numeric' if kind == 'numeric' else 'datetime'} after fixing the values, "
                f"or --type {name}=categorical to silence this)."
            ),
            stacklevel=3,
        )
        return {**entry, "kind": "categorical", "reason": reason}
    return {**entry, "kind": "categorical", "reason": "text column"}


def _nan_positions(s: pd.Series, parsed_nonnull: np.ndarray) -> np.ndarray:
    full = np.zeros(len(s), dtype=bool)
    full[np.flatnonzero(s.notna().to_numpy())[np.isnan(parsed_nonnull)]] = True
    return full


def infer_schema(
    data: Any, *, exclude: Iterable[str] = (), types: Mapping[str, str] | None = None, label: str | None = None
) -> Schema:
    """Infer each column's kind (see the module docstring) from a training table.

    ``exclude`` lists columns to leave out of the features; ``label`` names a
    label column (also left out); ``types`` overrides the inferred kind of
    named columns (``{"mcc": "categorical", "user": "id"}``).  Naming a column
    the table lacks is an error.
    """
    from deepad.data.readers import to_frame

    df = to_frame(data)
    columns = list(df.columns)
    exclude = [exclude] if isinstance(exclude, str) else list(exclude or ())
    types = dict(types or {})
    for what, names in (("exclude", exclude), ("types", list(types)), ("label", [label] if label else [])):
        unknown = [c for c in names if c not in columns]
        if unknown:
            raise ValueError(
                f"{what} names column(s) {unknown} that the data does not have; "
                f"its columns are {columns[:30]}{' ...' if len(columns) > 30 else ''}."
            )
    for name, kind in types.items():
        if kind not in KINDS:
            raise ValueError(f"types[{name!r}] = {kind!r} is not a column kind; choose one of {KINDS}.")
    entries = []
    for name in columns:
        if name == label:
            entries.append({"name": name, "dtype": str(df[name].dtype), "kind": "excluded", "reason": "label column"})
        elif name in exclude:
            entries.append(
                {"name": name, "dtype": str(df[name].dtype), "kind": "excluded", "reason": "excluded by user"}
            )
        elif name in types:
            entries.append(
                {"name": name, "dtype": str(df[name].dtype), "kind": types[name], "reason": "declared by user"}
            )
        else:
            entries.append(_infer_one(name, df[name]))
        how = (df.attrs.get("deepad_read") or {}).get(name)
        if how and entries[-1]["kind"] in FEATURE_KINDS:  # how the training file wrote it (day/month order ...)
            entries[-1]["read"] = how
    schema = Schema.from_columns(entries)
    if not schema.feature_columns:
        raise ValueError(f"no feature columns left: {schema.summary() or 'the table has no columns'}.")
    return schema
