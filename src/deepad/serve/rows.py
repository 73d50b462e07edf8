"""A fast path for small JSON requests: validated records straight to the encoded matrix, without a DataFrame.

Why: a single-record request spent about 80 % of its scoring time building
a one-row pandas table and running the preprocessor's per-column pandas
work on it (Series construction, dtype checks, ``pd.to_datetime``, the
``.dt`` accessors, Arrow look-ups), a fixed cost of about 10 ms per request
however few the rows.  :class:`RowEncoder` precomputes from the model's
saved preprocessor state (:class:`~deepad.data.TabularPreprocessor`:
``columns_``, ``center_``, ``scale_``) what each encoded feature needs,
and encodes the records the request models have already validated with
the same float64 arithmetic, in the same order, as
:meth:`~deepad.data.TabularPreprocessor.transform` -- so the encoded rows,
and hence the scores, are bit for bit those of the DataFrame path
(``tests/unit/test_serve_rows.py`` checks it on mixed tables with missing
values, unseen categories, offsets and every datetime feature).

It handles the common forms only and says so by returning ``None``, which
sends the request down the DataFrame path (same answer, slower): date/time
text that is not ``YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|+HH:MM|+HHMM]``
with a year in 1900-2199 (pandas reads more forms; its own parser then
decides, and names the row of an unreadable one in the 422), a number that
is not finite, and more than :attr:`RowEncoder.max_rows` rows (the pandas
path is vectorised and wins on larger requests).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from deepad.data.preprocessing import _PERIODS, MISSING, ScoringReport, _circle
from deepad.data.values import _canonical_scalar
from deepad.serve.spec import InputSpec

__all__ = ["RowEncoder", "row_encoder", "parse_iso_datetime", "sorted_reference"]

#: the rows up to which the fast path is used (above, pandas' vectorised path is faster)
FAST_ROWS = 64

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2})?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US_PER_DAY = 86_400_000_000.0


def parse_iso_datetime(text: str) -> datetime | None:
    """``text`` as an aware UTC datetime, if it has one of the plain ISO 8601 forms above; else ``None``.

    Naive text is taken as UTC and an offset is converted to UTC, as
    :func:`deepad.data.schema.parse_datetimes` does.  ``None`` means "not
    decided here" (another form, or an impossible date such as 30 February),
    never "missing".
    """
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if not 1900 <= int(year) < 2200:
        return None
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if offset and offset != "Z":
        hours, minutes = int(offset[1:3]), int(offset[-2:])
        if hours > 23 or minutes > 59:
            return None
        shift = timedelta(hours=hours, minutes=minutes)
        value = value - shift if offset[0] == "+" else value + shift
    return value


def _datetime_feature(value: datetime, feature: str) -> float:
    """The raw feature of :func:`deepad.data.preprocessing._datetime_raw` for one UTC datetime (same arithmetic)."""
    if feature == "hour":
        return value.hour + value.minute / 60.0 + value.second / 3600.0
    if feature == "dayofweek":
        return value.weekday() + (value.hour / 24.0)
    if feature == "month":
        return (value.month - 1) + (value.day - 1) / calendar.monthrange(value.year, value.month)[1]
    # unix days: pandas divides the microseconds since 1970 by one day's, both as float64
    return float((value - _EPOCH) // timedelta(microseconds=1)) / _US_PER_DAY


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str
    field: str  # the request model's field name
    start: int  # first encoded feature
    entry: dict  # the preprocessor's fitted entry (fill, indicator, features, categories, ...)
    where: dict | None = None  # categorical: level -> index in the levels
    onehot: np.ndarray | None = None  # categorical: level index (-1: unseen) -> offset in the one-hot block
    log_freq: np.ndarray | None = None  # categorical: level index (-1: unseen) -> log training frequency


class RowEncoder:
    """Encodes a few validated records of a :class:`~deepad.pipeline.TabularDetector` (or the feature rows of a
    plain detector) exactly as the DataFrame path does; see the module docstring."""

    max_rows = FAST_ROWS

    def __init__(self, model, spec: InputSpec):
        from deepad.pipeline import TabularDetector

        self.tabular = isinstance(model, TabularDetector)
        fields = {c.name: c.field for c in spec.columns}
        self.id_fields = [(c.name, c.field) for c in spec.columns if c.kind == "id"]
        if not self.tabular:
            self.feature_fields = [c.field for c in spec.columns if c.required]
            self.detector = model
            return
        prep = model.preprocessor
        self.detector = model.detector_
        self.n_features = int(prep.n_features_out_)
        self.center, self.scale = prep.center_, prep.scale_
        lookups = prep._lookups()
        columns, j = [], 0
        for entry in prep.columns_:
            name, kind = entry["name"], entry["kind"]
            col = _Column(name, kind, fields[name], j, entry)
            if kind == "datetime":
                j += sum(2 if f in _PERIODS else 1 for f in entry["features"])
            elif kind == "categorical":
                _, onehot, log_freq = lookups[name]
                where = {level: i for i, level in enumerate(entry["levels"])}
                col = _Column(name, kind, fields[name], j, entry, where, onehot, log_freq)
                j += len(entry["categories"]) + 1 + int(bool(entry["frequency"]))
            else:
                j += 1
            if kind != "categorical" and entry.get("indicator"):
                j += 1
            columns.append(col)
        if j != self.n_features:  # a layout this encoder does not know: leave it to the preprocessor
            raise ValueError(f"encoded {j} features, the preprocessor {self.n_features}")
        self.columns = columns

    # ------------------------------------------------------------------ encoding
    def encode(self, records: list, report: ScoringReport) -> np.ndarray | None:
        """The encoded float64 matrix of ``records`` (what ``preprocessor.transform`` gives their table), with
        ``report`` filled as it fills it; ``None`` if a value needs the DataFrame path."""
        if not self.tabular:
            X = np.array([[getattr(r, f) for f in self.feature_fields] for r in records], dtype=np.float64)
            return X if np.isfinite(X).all() else None
        n = len(records)
        Z = np.zeros((n, self.n_features), dtype=np.float64)
        for col in self.columns:
            values = [getattr(r, col.field) for r in records]
            j, entry = col.start, col.entry
            if col.kind in ("numeric", "boolean"):
                v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
                if np.isinf(v).any():
                    return None
                miss = np.isnan(v)
                Z[:, j] = np.where(miss, entry["fill"], v)
                j += 1
            elif col.kind == "datetime":
                parsed = [None if x is None else parse_iso_datetime(x) for x in values]
                if any(p is None and x is not None for p, x in zip(parsed, values)):
                    return None
                miss = np.array([p is None for p in parsed], dtype=bool)
                for f, fill in zip(entry["features"], entry["fill"]):
                    raw = np.array([np.nan if p is None else _datetime_feature(p, f) for p in parsed])
                    v = np.where(np.isnan(raw), fill, raw)
                    if f in _PERIODS:
                        Z[:, j], Z[:, j + 1] = _circle(v, _PERIODS[f])
                        j += 2
                    else:
                        Z[:, j] = v
                        j += 1
            else:
                text = [MISSING if x is None else _canonical_scalar(x) for x in values]
                codes = np.array([col.where.get(t, -1) for t in text], dtype=np.int64)
                Z[np.arange(n), j + col.onehot[codes]] = 1.0
                j += len(entry["categories"]) + 1
                if entry["frequency"]:
                    Z[:, j] = col.log_freq[codes]
                unseen = codes < 0
                if unseen.any():
                    report.unseen[col.name] = report.unseen.get(col.name, 0) + int(unseen.sum())
                    ex = report.unseen_examples.setdefault(col.name, [])
                    for pos in np.flatnonzero(unseen)[:50]:
                        u = text[int(pos)]
                        if len(ex) < 3 and u not in ex:
                            ex.append(u)
                continue
            if entry.get("indicator"):
                Z[:, j] = miss
            elif miss.any():
                report.unexpected_missing[col.name] = report.unexpected_missing.get(col.name, 0) + int(miss.sum())
        Z -= self.center
        Z /= self.scale
        report.rows += n
        return Z

    def scores(self, records: list) -> tuple[np.ndarray, list[str]] | None:
        """``(scores, notes)`` of ``records``, as the DataFrame path gives them; ``None``: use that path."""
        report = ScoringReport()
        Z = self.encode(records, report)
        if Z is None:
            return None
        scores = np.asarray(self.detector.decision_function(Z), dtype=np.float64)
        return scores, report.notes() if self.tabular else []

    def id_values(self, records: list) -> dict[str, list[Any]]:
        """The id columns a request sent (a column absent from every record is left out, as in its table)."""
        out = {}
        for name, f in self.id_fields:
            values = [getattr(r, f) for r in records]
            if any(v is not None for v in values):
                out[name] = values
        return out


def row_encoder(model, spec: InputSpec) -> RowEncoder | None:
    """The fast path for ``model``, or ``None`` where it has none (time-series models, whose requests are series)."""
    from deepad.stream import is_series_detector

    if is_series_detector(model) or not hasattr(model, "decision_function"):
        return None
    try:
        return RowEncoder(model, spec)
    except (KeyError, ValueError, AttributeError, TypeError):
        return None


def sorted_reference(model) -> np.ndarray | None:
    """``model.p_value_reference`` sorted, once per loaded version (``None`` if the model has none)."""
    try:
        return np.sort(np.asarray(model.p_value_reference, dtype=np.float64))
    except (AttributeError, TypeError, ValueError):
        return None
