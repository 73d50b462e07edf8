"""Assemble the HTML report: score, explain, plot, render, write atomically."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from deepad import thresholds as _thr

__all__ = ["build_report"]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _frame_sha256(X: Any) -> str:
    if isinstance(X, pd.DataFrame):
        values = pd.util.hash_pandas_object(X, index=False).to_numpy()
        header = json.dumps([str(c) for c in X.columns]).encode()
        return hashlib.sha256(header + values.tobytes()).hexdigest()
    arr = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    return hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()


def _labels(y: Any, n: int, name: str | None) -> np.ndarray:
    """0/1 with NaN for unknown; bad values raise ValueError naming the first one."""
    from deepad.data.values import label_values

    if isinstance(y, pd.Series):
        values = label_values(y, name or str(y.name))
    else:
        values = np.asarray(y, dtype=np.float64).ravel()
        bad = ~(np.isnan(values) | np.isin(values, (0.0, 1.0)))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(f"labels must be 0 (normal), 1 (anomaly) or missing; row {r} holds {values[r]!r}.")
    if values.shape[0] != n:
        raise ValueError(f"y has {values.shape[0]} labels but X has {n} rows.")
    return values


def _display(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "missing"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _write_atomic(path: Path, text: str, *, during: str | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a :class:`deepad.data.writers.AtomicOutput` part.

    Stale parts of ``path`` left by killed processes are removed first; an
    ``OSError`` (disk full, ...) is an ``OutputWriteError`` naming ``path``.
    """
    from deepad.data.writers import AtomicOutput

    with AtomicOutput(path, during=during) as part, part.writing():
        part.path.write_text(text, encoding="utf-8")


def _sample_text(model, scores: np.ndarray, in_sample: bool | None, Z: np.ndarray | None = None) -> str:
    """Whether the labelled rows' metrics are in-sample, as a sentence ("" when it cannot be told)."""
    from deepad.report.views import training_overlap

    if in_sample is None:
        share = training_overlap(model, scores, Z)
    else:
        share = 1.0 if in_sample else 0.0
    if in_sample is not None:
        how = ""
    elif Z is not None and getattr(model, "train_fingerprints_", None) is not None:
        how = " (matched by the training rows' hashes kept with the model)"
    else:
        how = " (their scores equal the model's training scores)"
    if share is None:
        return ""
    if share >= 0.99:
        return (
            "In-sample: these metrics are on the training data the model was fitted on"
            f"{how}, so they flatter it; score labelled rows it has not seen for an honest estimate."
        )
    if share >= 0.01:
        return (
            f"Partly in-sample: about {share:.0%} of the labelled rows are rows the model was fitted on{how}; "
            "those flatter the metrics."
        )
    return "Out-of-sample: the labelled rows are not rows the model was fitted on."


def build_report(
    model,
    X,
    y=None,
    path="report.html",
    *,
    top_n: int = 20,
    top_k: int = 5,
    title: str | None = None,
    data_name: str | None = None,
    model_name: str | None = None,
    max_points: int = 5000,
    random_state: int = 0,
    in_sample: bool | None = None,
) -> Path:
    """Write a self-contained HTML report on ``model`` scoring ``X`` to ``path`` and return the path.

    Sections: summary; score histogram with the threshold; ROC and
    precision-recall curves with their AUCs (when ``y`` has both classes);
    training and validation loss (neural detectors); the ``top_n``
    highest-scoring rows with their ``top_k`` attributions
    (:func:`deepad.explain.explain`); a 2-D view (x: the score's quantile,
    y: the main principal component of the detector's latent code or of
    its input features; :func:`deepad.report.views.two_d_view`) coloured
    by score; and the model/data fingerprint (rows, columns,
    schema, detector, parameters, threshold rule and its reason, versions,
    training date, SHA-256 of the data).

    ``X`` is anything the model scores, or a path to a table (read with
    :func:`deepad.data.read_table`).  ``y``: labels (1 = anomaly, 0 =
    normal, NaN = unknown) as an array, or the *name of a column* of ``X``
    holding them (that column is then not scored).  Plots are PNGs embedded
    as base64 and there are no external assets, so the file can be mailed
    or archived as is.  It is written to a temporary file next to ``path``
    and renamed into place, so an error leaves no partial report.

    Metrics against labels say whether they are *in-sample*: computed on
    rows the model was fitted on, which flatters it.  ``in_sample=None``
    tells from the scores (:func:`deepad.report.views.training_overlap`: a
    fitted model reproduces its training scores exactly); ``True`` /
    ``False`` states it.  The ROC and precision-recall curves mark the
    operating point of the model's ``threshold_`` (its FPR and TPR, its
    precision and recall on the labelled rows).
    """
    import jinja2

    import deepad
    from deepad.explain import explain, method_description, top_feature_table
    from deepad.pipeline import TabularDetector
    from deepad.report import plots
    from deepad.report.fingerprint import model_fingerprint
    from deepad.report.views import two_d_view

    check_is_fitted(model, "decision_scores_")
    if isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)) or top_n < 1:
        raise ValueError(f"top_n must be a positive integer, got {top_n!r}.")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"the report path {path} is a directory; give a file name ending in .html.")
    tabular = isinstance(model, TabularDetector)

    # ---------------------------------------------------------------- data and labels
    data_hash_of = "the data as loaded"
    if isinstance(X, (str, os.PathLike)):
        from deepad.data import read_table

        source = Path(X)
        if source.resolve() == path.resolve():
            raise ValueError(f"the report path {path} is the data file.")
        frame = read_table(source)
        sha = _file_sha256(source)
        data_hash_of = "the file's bytes"
        data_name = data_name or str(source)
    else:
        frame = X
        sha = None
    label_name = None
    if isinstance(y, str):
        if not isinstance(frame, pd.DataFrame) or y not in frame.columns:
            cols = list(map(str, frame.columns))[:20] if isinstance(frame, pd.DataFrame) else []
            raise ValueError(f"{data_name or 'the data'} has no label column {y!r}; its columns are {cols}.")
        label_name = y
        y = frame[label_name]
        frame = frame.drop(columns=[label_name])
    if sha is None:
        sha = _frame_sha256(frame)
    if tabular:
        df = model._validate_for_scoring(frame, warn_extra=False)
        Z = model.preprocessor.transform(df)
        scores = np.asarray(model.detector_.decision_function(Z), dtype=np.float64)
        n_columns = df.shape[1]
    else:
        df = None
        Z = model._validate_for_scoring(frame)
        scores = np.asarray(model.decision_function(Z), dtype=np.float64)
        n_columns = Z.shape[1]
    n = scores.shape[0]
    labels = None if y is None else _labels(y, n, label_name)
    threshold = float(model.threshold_)
    flags = scores > threshold
    p_values = _thr.conformal_p_values(model.p_value_reference, scores)

    # ---------------------------------------------------------------- plots
    ctx: dict[str, Any] = {}
    ctx["img_hist"] = plots.png_base64(plots.score_histogram(scores, threshold, labels))
    ctx.update(
        img_roc=None,
        roc_auc=None,
        average_precision=None,
        roc_note="",
        n_labelled=0,
        n_positive=0,
        operating_text="",
        sample_text="",
    )
    if labels is None:
        ctx["roc_note"] = "No labels given (pass y= or --label-column) -- no ROC or precision-recall curve."
    else:
        known = ~np.isnan(labels)
        yk = labels[known].astype(np.int64)
        if np.unique(yk).size < 2:
            ctx["roc_note"] = (
                f"The labels have a single class ({int(known.sum()):,} labelled rows) -- "
                "ROC and precision-recall need both normal and anomalous rows."
            )
        else:
            fig, auc, ap = plots.roc_pr_curves(yk, scores[known], threshold)
            ctx.update(
                img_roc=plots.png_base64(fig),
                roc_auc=auc,
                average_precision=ap,
                n_labelled=int(known.sum()),
                n_positive=int(yk.sum()),
            )
            op = plots.operating_point(yk, scores[known], threshold)
            ctx["precision_text"] = f"{op['precision']:.3f}" if op["flagged"] else "undefined (none flagged)"
            ctx["recall_text"] = f"{op['tpr']:.3f}"
            ctx["operating_text"] = (
                f"The marked point is the model's threshold {threshold:.6g}: it flags {op['flagged']:,} of the "
                f"{int(known.sum()):,} labelled rows ({op['tp']:,} anomalies, {op['fp']:,} normal rows), "
                f"true-positive rate (recall) {op['tpr']:.3f}, false-positive rate {op['fpr']:.3f}"
                + (f", precision {op['precision']:.3f}." if op["flagged"] else "; precision is undefined.")
            )
            encoded = Z[known] if tabular and isinstance(Z, np.ndarray) and Z.shape[0] == known.size else None
            ctx["sample_text"] = _sample_text(model, scores[known], in_sample, encoded)
    inner = model.detector_ if tabular else model
    history = getattr(inner, "history_", None)
    if isinstance(history, dict) and any(k.startswith(("train_", "val_")) and v for k, v in history.items()):
        ctx["img_loss"] = plots.png_base64(plots.loss_curves(history))
        has_val = any(k.startswith("val_") and v for k, v in history.items())
        ctx["loss_note"] = f"{len(next(iter(history.values())))} epochs" + (
            "; dashed lines are the validation split used for early stopping (best weights restored)."
            if has_val
            else "; no validation split."
        )
    else:
        ctx["img_loss"] = None
        ctx["loss_note"] = (
            f"{type(inner).__name__} is not a neural detector: it has no training loss curve."
            if not hasattr(inner, "module_")
            else "No training history was recorded."
        )

    # ---------------------------------------------------------------- top anomalies and their attributions
    top_idx = np.argsort(-scores, kind="stable")[: int(top_n)]
    rows_top = df.iloc[top_idx] if tabular else Z[top_idx]
    explain_note = ""
    try:
        attributions = explain(model, rows_top, top_k=top_k, counterfactual=True)
    except ValueError:  # a bare detector that keeps no training centre: use the scored data's median
        attributions = explain(model, rows_top, top_k=top_k, reference=Z, counterfactual=True)
        explain_note = "Typical row for the attributions: the median of the scored data."
    repairs = attributions.attrs["counterfactual"]
    method = attributions.attrs["method"]
    pairs = top_feature_table(attributions, top_k)
    id_columns = [c for c in model.schema_.id_columns if c in df.columns] if tabular else []
    col_pos = {str(c): j for j, c in enumerate(attributions.columns)}
    # a DataFrame's own index names its rows (as in deepad.explain's output); else the 0-based row number
    row_labels = None
    if isinstance(frame, pd.DataFrame) and not frame.index.equals(pd.RangeIndex(len(frame))):
        row_labels = frame.index
    top = []
    for rank, (i, row_pairs) in enumerate(zip(top_idx, pairs), 1):
        i = int(i)
        attrs = []
        for column, value in row_pairs:
            raw = df.iloc[i][column] if tabular else Z[i, col_pos[column]]
            attrs.append({"column": column, "value": _display(raw), "attribution": value})
        label = "" if labels is None or np.isnan(labels[i]) else ("anomaly" if labels[i] == 1 else "normal")
        top.append(
            {
                "rank": rank,
                "row": i if row_labels is None else _display(row_labels[i]),
                "ids": [_display(df.iloc[i][c]) for c in id_columns],
                "score": float(scores[i]),
                "p_value": float(p_values[i]),
                "flagged": bool(flags[i]),
                "label": label,
                "attributions": attrs,
                "counterfactual": repairs[rank - 1]["text"],
                "score_after": repairs[rank - 1]["score_after"] if repairs[rank - 1]["repair"] else None,
            }
        )

    # ---------------------------------------------------------------- 2-D view
    rng = np.random.default_rng(random_state)
    if n > max_points:
        keep = np.union1d(rng.choice(n, size=int(max_points), replace=False), top_idx)
    else:
        keep = np.arange(n)
    fig, view_note = two_d_view(model, Z, scores, flags, keep, tabular)
    ctx["img_view"] = plots.png_base64(fig)
    ctx["view_note"] = view_note

    # ---------------------------------------------------------------- render
    fp = model_fingerprint(model)
    data_name = data_name or f"in-memory {type(frame).__name__}"
    ctx.update(
        title=title or f"deepad report: {fp['detector']} on {data_name}",
        generated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        deepad_version=deepad.__version__,
        data_name=data_name,
        model_name=model_name,
        label_name=label_name,
        n_rows=n,
        n_columns=n_columns,
        n_flagged=int(flags.sum()),
        flag_rate=float(flags.mean()),
        fp=fp,
        top=top,
        id_columns=id_columns,
        row_header="index" if row_labels is not None else "row",
        has_labels=labels is not None,
        method_text=f"{method} -- {method_description(model, method)}",
        explain_note=explain_note,
        data_sha256=sha,
        data_hash_of=data_hash_of,
        params_json=json.dumps(fp["parameters"], indent=2, sort_keys=True, default=str),
    )
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    from deepad.report.template import TEMPLATE

    html = env.from_string(TEMPLATE).render(**ctx)
    _write_atomic(path, html, during=f"reporting on {data_name}")
    return path
