"""Scoring a table for the service: from the request's rows to the JSON answer.

Holds :func:`_score` (the model's scores, conformal p-values against the
training scores, the threshold's flags, non-finite scores flagged, id
columns echoed, notes), :func:`_explain_rows` and :func:`_can_explain` for
``?explain=`` (see :mod:`deepad.explain`), :func:`_data_error`, which turns a
:class:`~deepad.data.schema.DataValidationError` into a 422 entry naming the
row and column, and :func:`_plain` (JSON-able values).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core

from deepad.data.schema import DataValidationError
from deepad.serve.bodies import JSON_TYPES, _Limits, _table
from deepad.serve.monitoring import record
from deepad.serve.registry import LoadedModel
from deepad.serve.spec import BodyError
from deepad.stream import is_series_detector


#: JSON bodies up to this size (a few records) are scored on the event loop rather than in a pool thread
INLINE_BODY_BYTES = 4096


def _is_json(media: str) -> bool:
    return media in JSON_TYPES or media.endswith("+json")


def _score_body(body: bytes, media: str, loaded: LoadedModel, limits: _Limits, explain: str, top: int) -> bytes:
    """The JSON answer for a score request's body: records through :func:`_score_records` (which takes the fast
    path when it can), column arrays, CSV and Parquet through their table and :func:`_score`."""
    if _is_json(media) and body.lstrip()[:1] == b"[":
        fast = loaded.rows
        if fast is not None and explain == "none" and body.count(b"{") <= fast.max_rows:  # at most that many records
            return _score_records(loaded, loaded.spec.parse_records(body, max_rows=limits.max_rows), explain, top)
        return _score(loaded, loaded.spec.records_frame(body, max_rows=limits.max_rows), "records", explain, top)
    df, shape = _table(body, media, loaded, limits)
    return _score(loaded, df, shape, explain, top)


def _score(loaded: LoadedModel, df: pd.DataFrame, shape: str, explain: str = "none", top: int = 3) -> bytes:
    from deepad.data.preprocessing import ScoringReport

    model, spec = loaded.model, loaded.spec
    notes: list[str] = []
    X = None
    if len(df) == 0:
        raise BodyError([{"loc": ["body"], "msg": "no rows to score", "type": "too_short"}])
    try:
        if spec.tabular:
            report = ScoringReport()
            if shape == "file":
                _, extra = model.preprocessor.check_columns(df.columns)
                if extra:
                    notes.append(f"ignored {len(extra)} column(s) the model was not trained on: {extra[:8]}")
            scores = model.score_frame(df, report=report, warn_extra=False)
            notes.extend(report.notes())
        else:
            names = spec.feature_columns
            missing = [c for c in names if c not in df.columns]
            if missing:
                raise DataValidationError(
                    f"missing column(s) {missing}, which the model was trained on.", column=missing[0]
                )
            try:
                X = df[names].to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataValidationError(f"columns must be numbers: {exc}") from None
            scores = np.asarray(model.decision_function(X), dtype=np.float64)
            if is_series_detector(model):
                notes.append(
                    "a time-series model: the rows were scored as one series in request order, starting "
                    "afresh; for points that arrive over time use .../stream, which keeps the history."
                )
    except DataValidationError as exc:
        raise BodyError([_data_error(exc, shape)]) from None
    except (ValueError, TypeError) as exc:  # e.g. encoded values out of range
        raise BodyError([{"loc": ["body"], "msg": " ".join(str(exc).split()), "type": "value_error"}]) from None
    ids = [c for c in spec.id_columns if c in df.columns]
    id_values = {c: _id_list(df[c]) for c in ids}
    return _answer(loaded, scores, notes, id_values, explain, top, df if spec.tabular else X)


def _score_records(loaded: LoadedModel, records: list, explain: str = "none", top: int = 3) -> bytes:
    """The answer for validated JSON records: through the fast path (:mod:`deepad.serve.rows`) when the request is
    small and it can take every value, else through their table and :func:`_score` (the same scores, bit for bit)."""
    fast = loaded.rows
    if fast is not None and explain == "none" and 0 < len(records) <= fast.max_rows:
        try:
            got = fast.scores(records)
        except (ValueError, TypeError):  # e.g. values out of a network's range: the table path words the 422
            got = None
        if got is not None:
            scores, notes = got
            return _answer(loaded, scores, notes, fast.id_values(records), explain, top, None)
    return _score(loaded, loaded.spec.frame_from_records(records), "records", explain, top)


def _answer(
    loaded: LoadedModel,
    scores: np.ndarray,
    notes: list[str],
    id_values: dict[str, list],
    explain: str,
    top: int,
    data,
) -> bytes:
    """The JSON answer: scores, p-values, flags, ids and notes (and explanations of ``data``'s rows); written by
    :func:`_answer_bytes` unless explained or it cannot, else from :func:`_answer_dicts` by :func:`dumps`."""
    from deepad import thresholds as thr

    model = loaded.model
    if loaded.reference is not None:
        p = thr.conformal_p_values_sorted(loaded.reference, scores)
    else:
        p = thr.conformal_p_values(model.p_value_reference, scores)
    threshold = float(model.threshold_)
    # A score that is not a number comes from inputs far outside anything seen in training (e.g. values that
    # overflow the network's float32): flag it rather than call it normal.
    broken = ~np.isfinite(scores)
    flags = (scores > threshold) | broken
    record(loaded.name, loaded.version, scores, flags)  # rows scored / flagged and the drift window (/metrics)
    if broken.any():
        notes.append(
            f"{int(broken.sum())} row(s) got a non-finite score (values far outside the training range); "
            "their score is null and they are flagged as anomalies."
        )
    values = [s if math.isfinite(s) else None for s in scores.tolist()] if broken.any() else scores.tolist()
    head = {
        "model": loaded.name,
        "version": loaded.version,
        "threshold": threshold,
        "n": len(values),
        "n_anomalies": int(flags.sum()),
    }
    p_values, flag_list = p.tolist(), flags.tolist()
    if explain == "none":
        fast = _answer_bytes(head, values, p_values, flag_list, id_values, notes)
        if fast is not None:
            return fast
    out = _answer_dicts(head, values, p_values, flag_list, id_values, notes)
    if explain != "none":
        results = out["results"]
        rows = np.flatnonzero(flags) if explain == "anomalies" else np.arange(len(scores))
        for r in results:
            r["top_features"] = None
        out["explanation_method"] = _explain_rows(model, data, rows, top, results)
    return dumps(out)


def _id_columns(id_values: dict[str, list]) -> tuple[list, list[list]]:
    """The id columns' names and their values as JSON can carry them (see :func:`_plain_list`)."""
    names = list(id_values)
    return names, [_plain_list(id_values[c]) for c in names]


def _answer_dicts(
    head: dict, values: list, p_values: list, flags: list, id_values: dict[str, list], notes: list[str]
) -> dict:
    """The answer as a dict (``head``'s keys, ``results``, ``notes``): one dict per row, for :func:`dumps`; the
    reference for :func:`_answer_bytes`, and the route of explained answers (which add ``top_features``)."""
    results = [{"score": s, "p_value": pv, "is_anomaly": f} for s, pv, f in zip(values, p_values, flags)]
    if id_values:
        names, columns = _id_columns(id_values)
        if len(names) == 1:  # the usual case: one dict per row without zipping names each time
            name = names[0]
            for r, v in zip(results, columns[0]):
                r["ids"] = {name: v}
        else:
            for r, row in zip(results, zip(*columns)):
                r["ids"] = dict(zip(names, row))
    return {**head, "results": results, "notes": notes}


def _answer_bytes(
    head: dict, values: list, p_values: list, flags: list, id_values: dict[str, list], notes: list[str]
) -> bytes | None:
    """``dumps(_answer_dicts(...))``, the same bytes, written from JSON fragments per column (see
    :func:`_fragments`) rather than one dict per row (building those dicts alone took 30-40% of the dict
    route's time on a 1,000-row answer).

    ``None`` where pydantic-core cannot encode a value (e.g. text with a lone surrogate): the caller takes the dict
    route, whose :func:`dumps` falls back to :func:`json.dumps`.  A whole 1,000-row answer with one text id column
    (p-values included): 0.69 ms against 1.07 ms by the dict route, medians of 300 taken in turn on a busy 2-core
    machine (``PYTHONPATH=src python benchmarks/answer_bytes.py``)."""
    n, enc = len(values), pydantic_core.to_json
    try:
        results = b"[]"
        if n:
            # a row: consts[0] cols[0][i] consts[1] cols[1][i] ... cols[-1][i] consts[-1]
            consts = [b'{"score":', b',"p_value":', b',"is_anomaly":']
            cols = [_number_fragments(values), _number_fragments(p_values), _number_fragments(flags)]
            quote = b""  # the one the last column's fragments lack
            if id_values:
                names, columns = _id_columns(id_values)
                if any(len(c) != n for c in columns):  # the dict route would leave rows without ids
                    return None
                for i, (name, column) in enumerate(zip(names, columns)):
                    key = enc({name: None})[1:-5]  # b'"name":', the key as the dict route writes it
                    fragments, q = _fragments(column)
                    consts.append(quote + (b',"ids":{' if i == 0 else b",") + key + q)
                    cols.append(fragments)
                    quote = q
            consts.append(quote + (b"}}" if id_values else b"}"))
            if any(len(c) != n for c in cols):  # not one fragment per value
                return None
            inner = [cols[0]]
            for c, col in zip(consts[1:-1], cols[1:]):
                inner += [[c] * n, col]
            rows = (consts[-1] + b"," + consts[0]).join(map(b"".join, zip(*inner)))
            results = b"[" + consts[0] + rows + consts[-1] + b"]"
        top = enc(head, inf_nan_mode="null", fallback=_plain)
        tail = enc({"notes": notes}, inf_nan_mode="null", fallback=_plain)
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError):
        return None
    return top[:-1] + b',"results":' + results + b"," + tail[1:]


_NUMBERS_OR_NONE = {int, bool, float, type(None)}


def _number_fragments(values: list) -> list[bytes]:
    """Numbers, booleans and nulls as JSON, one fragment each: the list encoded once and split on its commas (no
    such value holds one)."""
    return pydantic_core.to_json(values, inf_nan_mode="null")[1:-1].split(b",")


def _fragments(column: list) -> tuple[list[bytes], bytes]:
    """``column``'s values as JSON, one fragment each, and the quote each fragment lacks at both ends.

    Numbers, booleans and nulls: one list encoded and split on its commas (none holds one).  Text alone: one
    list, split between its items on ``","`` (inside a JSON string every quote is escaped, so that never occurs
    there), each without its quotes (``b'"'``).  Anything else: one value at a time."""
    enc = pydantic_core.to_json
    kinds = set(map(type, column))
    if kinds == {str}:
        return enc(column)[2:-2].split(b'","'), b'"'
    if kinds <= _NUMBERS_OR_NONE:
        return _number_fragments(column), b""
    return [enc(v, inf_nan_mode="null", fallback=_plain) for v in column], b""


def dumps(out: dict) -> bytes:
    """``out`` as JSON bytes: pydantic-core's encoder (Rust; about 5x :func:`json.dumps` on a 1,000-row answer,
    the same values: floats written shortest-round-trip), non-finite floats as null; :func:`json.dumps` where it
    cannot encode a value (e.g. text with a lone surrogate, which JSON can only carry escaped)."""
    try:
        return pydantic_core.to_json(out, inf_nan_mode="null", fallback=_plain)
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError):
        return json.dumps(out, allow_nan=False, default=_plain).encode()


def _explain_rows(model, data, rows: np.ndarray, top: int, results: list[dict]) -> str | None:
    """Add ``top_features`` to ``results[i]`` for ``i`` in ``rows`` of ``data`` (the table, or a plain detector's
    matrix); returns the method's name (see deepad.explain)."""
    from deepad.explain import BULK_SHAPLEY, explain, explanation_method, top_feature_table

    try:
        method = explanation_method(model)
        if not len(rows):
            return method
        sub = data.iloc[rows] if isinstance(data, pd.DataFrame) else data[rows]
        with np.errstate(all="ignore"):
            attributions = explain(model, sub, top_k=top, **BULK_SHAPLEY)
    except (ValueError, TypeError) as exc:
        raise BodyError(
            [
                {
                    "loc": ["query", "explain"],
                    "type": "value_error",
                    "msg": f"this model cannot explain its scores: {' '.join(str(exc).split())}",
                }
            ]
        ) from None
    for i, pairs in zip(rows.tolist(), top_feature_table(attributions, top)):
        results[i]["top_features"] = [{"column": c, "attribution": a if math.isfinite(a) else None} for c, a in pairs]
    return attributions.attrs.get("method", method)


_PLAIN = {str, int, bool}
_PLAIN_OR_NONE = {str, int, bool, type(None)}


def _plain_list(values: list) -> list:
    """``values`` with every value JSON can carry as it is (text, integers, booleans, None) left as it is."""
    if set(map(type, values)) <= _PLAIN_OR_NONE:
        return values
    return [v if v is None or type(v) in _PLAIN else _plain(v) for v in values]


def _id_list(s: pd.Series) -> list:
    """An id column's values as Python values, ``None`` where missing (Arrow-backed text straight from Arrow,
    which writes None for a missing value: 14 against 270 µs for 1,000 values)."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        import pyarrow as pa

        return pa.array(s.array).to_pylist()
    values = s.astype(object).tolist()
    for i in np.flatnonzero(s.isna().to_numpy()).tolist():
        values[i] = None
    return values


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    return v


def _data_error(exc: DataValidationError, shape: str) -> dict[str, Any]:
    column = getattr(exc, "column", None)
    rows = getattr(exc, "rows", None) or []
    loc: list[Any] = ["body"]
    if shape == "columns":
        loc += ["columns"] + ([column] if column else []) + rows[:1]
    else:
        loc += rows[:1] + ([column] if column else [])
    return {"loc": loc, "msg": " ".join(str(exc).split()), "type": "value_error"}


def _can_explain(model) -> bool:
    """Whether ``?explain=`` can work for ``model`` (a bare detector that keeps no training data cannot)."""
    from deepad.explain import BASELINE_METHODS, _detector_baseline, explanation_method
    from deepad.pipeline import TabularDetector

    try:
        method = explanation_method(model)
    except (ValueError, TypeError):
        return False
    if isinstance(model, TabularDetector) or method not in BASELINE_METHODS:
        return True
    return _detector_baseline(model) is not None
