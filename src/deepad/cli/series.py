"""The time-series side of ``deepad train``: a CSV/Parquet series in, a stream-ready model out.

:mod:`deepad.cli.train` dispatches here when the chosen detector scores rows as
a time series (ConformalKNN, GRUForecaster, TCNAutoEncoder, RollingZScore).
Why a separate path: a table pipeline would treat the timestamp as a
feature and the rows as exchangeable, and would set the threshold as a
quantile of in-sample scores.  A series model instead needs the rows in
time order on a regular grid, the value columns by name (so ``deepad
stream`` and ``deepad report`` read the same columns back), and -- for a
detector with a calibrated threshold of its own, like ConformalKNN's
conformal one -- that threshold kept.

The grid is made with :func:`deepad.data.series.regularize`: the step is the
median spacing of the timestamps (or ``--resample``), values are averaged
per step, gaps of at most ``--fill-limit`` steps are filled by time
interpolation, longer gaps are dropped (never invented).  What was done is
printed, and saved with the model as ``series_input_`` so ``deepad report``
regularises scoring data the same way.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import typer

from deepad.cli._common import _UserErrors, _quiet, _say, fail


def is_series_class(inner) -> bool:
    """Whether the (unfitted) detector ``inner`` scores rows as a time series."""
    from deepad.stream import is_series_detector

    return is_series_detector(inner)


def _value_columns(df: pd.DataFrame, data: str, timestamp: str, label_column: str | None, excluded: list[str]):
    missing = [c for c in excluded if c not in df.columns]
    if missing:
        fail(f"{data}: --exclude names columns it does not have: {missing}; its columns are {list(df.columns)[:20]}.")
    values = [c for c in df.columns if c not in (timestamp, label_column) and c not in excluded]
    if not values:
        fail(f"{data}: no value columns besides the timestamp {timestamp!r}; its columns are {list(df.columns)[:20]}.")
    bad = [c for c in values if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        col = bad[0]
        coerced = pd.to_numeric(df[col], errors="coerce")
        rows = np.flatnonzero(coerced.isna().to_numpy() & df[col].notna().to_numpy())
        where = f" (row {int(rows[0])}: {df[col].iloc[rows[0]]!r})" if len(rows) else ""
        fail(
            f"{data}: value column(s) {bad} are not numeric{where}; a series model reads numeric columns only. "
            f"Leave them out with --exclude {','.join(map(str, bad))}."
        )
    return values


def train_series(
    data: str,
    output: str,
    *,
    inner,
    label_column: str | None,
    excluded: list[str],
    timestamp: str | None,
    resample: str | None,
    fill_limit: int,
    contamination: float | None,
    method: str,
    fpr: float | None,
    pot_risk: float | None,
    default_rule: bool,
    fit_params: dict,
    read_options=None,
) -> None:
    """``deepad train SERIES --detector ConformalKNN|GRUForecaster|...``: fit ``inner`` on the regularised series."""
    import warnings

    from deepad.data import read_table
    from deepad.data.values import label_values
    from deepad.data.series import default_timestamp_column, series_grid
    from deepad.thresholds import apply_threshold_rule, conformal_reason

    name = type(inner).__name__
    from deepad.stream import default_threshold

    own_threshold = default_threshold(inner) == "fixed"
    if own_threshold and method == "pot":
        fail(
            f"{name} has a conformal threshold of its own (an alert is a point rarer than --contamination); "
            "--threshold pot does not apply. Use --contamination or --fpr (the same thing for it)."
        )
    if resample is not None:
        try:
            if pd.Timedelta(pd.tseries.frequencies.to_offset(resample)) <= pd.Timedelta(0):
                raise ValueError
        except (ValueError, TypeError):
            fail(f"--resample expects a positive fixed step such as 30s, 5min, 1h or 1D; got {resample!r}.")
    with _UserErrors():
        df = read_table(data, options=read_options)
    _say(f"Read {data}: {len(df):,} rows x {df.shape[1]} columns.")
    if label_column is not None and label_column not in df.columns:
        fail(f"{data} has no label column {label_column!r}; its columns are {list(df.columns)[:20]}.")
    if timestamp is not None and timestamp not in df.columns:
        fail(f"{data} has no timestamp column {timestamp!r}; its columns are {list(df.columns)[:20]}.")
    with _UserErrors(f"{data}: "):
        ts = timestamp or default_timestamp_column(df.columns)
        values = _value_columns(df, data, ts, label_column, excluded)
        labels = label_values(df[label_column], label_column) if label_column is not None else None
        prepared = series_grid(df, timestamp=ts, values=values, labels=labels, resample=resample, fill_limit=fill_limit)
    grid, y, merged = prepared.values, prepared.labels, prepared.merged
    step, imputed, dropped = prepared.info["step"], prepared.info["filled"], prepared.info["dropped"]
    _say(
        f"Series: {len(grid):,} points from {grid.index[0]} to {grid.index[-1]} on a {_step_text(step)} grid "
        f"({'given' if resample else 'the median spacing'}); value column(s): {', '.join(map(str, values))}."
    )
    if merged or imputed or dropped:
        _say(
            f"  {merged:,} rows sharing a timestamp averaged; {imputed:,} missing steps filled by interpolation "
            f"(gaps of at most {fill_limit} steps); {dropped:,} steps in longer gaps left out."
        )
    if contamination is not None or (own_threshold and fpr is not None):
        inner.set_params(contamination=float(contamination if contamination is not None else fpr))
    _say(f"Training {name} ...")
    t0 = time.perf_counter()
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = inner.fit(grid[values], **fit_params)
        if own_threshold:
            rate = float(model.contamination)
            reason = model.threshold_method_.get("reason") or conformal_reason(rate)  # a detector's own, if it has one
            model.threshold_method_ = {**model.threshold_method_, "reason": reason}
        else:
            apply_threshold_rule(model, method, fpr=fpr, pot_risk=pot_risk, default=default_rule)
    seconds = time.perf_counter() - t0
    if "verbose" in model.get_params(deep=False):
        model.set_params(verbose=False)  # progress bars were for this run only
    prepared.attach(model)
    from deepad.stream import keep_stream_history

    keep_stream_history(model, grid[values].to_numpy(dtype=np.float64))  # deepad stream starts where training stopped
    n_flag = int(model.labels_.sum())
    typer.echo(
        f"Trained {name} on {len(grid):,} points x {len(values)} value column(s) in {seconds:.1f} s; "
        f"threshold {model.threshold_:.4g} flags {n_flag:,} of {len(grid):,} training points ({n_flag / len(grid):.2%})."
    )
    _say(f"Threshold rule: {model.threshold_method_['reason']}")
    if not own_threshold:
        # deepad score / stream / report on a series alert by SPOT's adaptive threshold, not the fixed one above:
        # say so, and what it does on the training series, so the two numbers do not contradict each other.
        from deepad.stream import series_scores

        replay = series_scores(model, grid[values].to_numpy(dtype=np.float64))
        n_alarm = int(replay["alarm"].sum())
        rule = (  # LikelihoodKNN, OnlineForecaster: their streams alarm by the anomaly likelihood (issue 21)
            "the anomaly likelihood of the scores and a range check, the detector's own stream rules,"
            if callable(getattr(model, "_stream_likelihood", None))
            else "an adaptive SPOT threshold that follows the series (risk 1e-4; --risk of stream and report),"
        )
        typer.echo(
            f"Alerts: deepad score, stream and report on this series use {rule} not the fixed threshold above "
            "(deepad stream --fixed-threshold uses it); "
            f"replayed on the training series it marks {n_alarm:,} of {len(grid):,} points ({n_alarm / len(grid):.2%})."
        )
    if y is not None:
        from sklearn.metrics import roc_auc_score

        if len(np.unique(y)) == 2:
            typer.echo(
                f"Training ROC-AUC against {label_column!r}: {roc_auc_score(y, model.decision_scores_):.4f} "
                "(in-sample; labels not used for training)."
            )
        else:
            typer.echo(f"note: label column {label_column!r} has a single class; no ROC-AUC.")
    with _UserErrors():
        model.save(output)
    typer.echo(f"Saved model to {output}")
    if not _quiet():
        typer.echo(
            f"Next: deepad stream {output} --refractory 16 --rearm 64 < new_points.csv   "
            f"(or deepad report {output} SERIES.csv -o report.html)",
            err=True,
        )


def describe_series_input(info: dict) -> str:
    """One line on the series a model was trained on (``series_input_``), for ``deepad info``."""
    return (
        f"{info['points']:,} points of {', '.join(info['values'])} on a {_step_text(info['step'])} grid, "
        f"{info['start']} to {info['end']} (timestamp column {info['timestamp']!r}; {info['filled']:,} steps "
        f"filled, {info['dropped']:,} in gaps longer than {info['fill_limit']} steps left out)"
    )


def _step_text(step: str) -> str:
    td = pd.Timedelta(step)
    secs = td.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("min", 60), ("s", 1)):
        if secs >= size and secs % size == 0:
            n = int(secs // size)
            return f"{n} {unit}" + ("s" if unit in ("day", "hour") and n != 1 else "")
    return str(td)


def score_series(model, data: str, output: str, *, refractory: int = 0, rearm: int = 0, read_options=None) -> None:
    """``deepad score MODEL SERIES``: replay the series through a fresh stream; one output row per grid step.

    Columns: the timestamp, ``score``, ``p_value`` (the alert rule's own
    estimate of the probability that a normal point scores this high:
    ConformalKNN's conformal p-value, or SPOT's fitted tail; below the alert
    level -- the contamination, or SPOT's risk -- exactly where
    ``is_anomaly`` is 1), ``threshold``, ``is_anomaly`` (score above the threshold, as for
    tables) and ``alert`` (``is_anomaly`` after ``refractory`` / ``rearm``
    suppression: the alerts ``deepad stream`` would raise with those options).  A model that attributes its
    alerts (MultiSeriesKNN) adds ``columns``: on each alert, the columns that drove it as JSON
    ``{column: rarity}``, as ``deepad stream`` prints them.
    """
    from deepad.data.writers import write_frame_atomic
    from deepad.data.series import read_model_series
    from deepad.stream import series_scores

    t0 = time.perf_counter()
    with _UserErrors(f"{data}: "):
        frame, _ = read_model_series(model, data, data_name=data, read_options=read_options)
        result = series_scores(model, frame.to_numpy(dtype=np.float64), refractory=refractory, rearm=rearm)
    scores = result["score"].to_numpy()
    out = pd.DataFrame(
        {
            model.series_input_["timestamp"]: frame.index,
            "score": scores,
            "p_value": result["p_value"].to_numpy(),
            "threshold": result["threshold"].to_numpy(),
            "is_anomaly": result["alarm"].to_numpy().astype(np.int64),
            "alert": result["alert"].to_numpy().astype(np.int64),
        }
    )
    if hasattr(model, "column_scores"):  # which columns drove each alert, as deepad stream prints it (JSON text)
        import json

        from deepad.report.series import alert_columns

        rows = np.flatnonzero(out["alert"].to_numpy())
        text = np.full(len(out), "", dtype=object)
        with _UserErrors(f"{data}: "):
            text[rows] = [json.dumps(c) for c in alert_columns(model, frame.to_numpy(dtype=np.float64), rows)]
        out["columns"] = text
    with _UserErrors():
        write_frame_atomic(out, output)
    typer.echo(
        f"Scored {len(out):,} points of {data} on the model's {_step_text(model.series_input_['step'])} grid "
        f"in {time.perf_counter() - t0:.1f} s: {int(out['is_anomaly'].sum()):,} above the threshold, "
        f"{int(out['alert'].sum()):,} alerts. Wrote {output}"
    )
