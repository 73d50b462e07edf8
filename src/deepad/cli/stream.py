"""``deepad stream``: score rows from stdin as they arrive, one JSON line per row."""

from __future__ import annotations

import sys

import typer

from deepad.cli._common import _renamed, _UserErrors, _quiet, fail

__all__ = ["stream"]


def stream(
    model_dir: str = typer.Argument(
        ...,
        help="A saved detector (deepad train / .save) or a saved stream state "
        "(--save-state), which resumes where it stopped.",
    ),
    risk: float = typer.Option(
        None,
        help="SPOT risk: target probability that a normal point raises an alarm (default 1e-4). Only for the "
        "adaptive SPOT threshold: not with --fixed-threshold, nor for ConformalKNN, whose threshold is its own "
        "conformal one (retrain with --contamination to change it), nor for LikelihoodKNN, OnlineForecaster and "
        "LikelihoodEnsemble, which alarm by the anomaly likelihood (their epsilon).",
    ),
    refractory: int = typer.Option(
        None, min=0, help="Points after an alert during which alarms are suppressed (default 0)."
    ),
    rearm: int = typer.Option(
        None,
        min=0,
        help="After an alert, alerts re-arm only once the score has been below the "
        "threshold for this many points (one alert per incident); 0: off (the default).",
    ),
    smoothing: int = typer.Option(None, min=1, help="Score = mean of the last N raw scores (default 1)."),
    fixed_threshold: bool = typer.Option(
        False, "--fixed-threshold", help="Use the model's threshold_ instead of SPOT."
    ),
    timestamp_column: str = typer.Option(
        None,
        "--timestamp-column",
        help="Field passed through as the row's id (not scored); default: the "
        "model's timestamp column (deepad train on a series), else timestamp.",
    ),
    timestamp_old: str = typer.Option(None, "--timestamp", hidden=True, help="Old name of --timestamp-column."),
    save_state: str = typer.Option(None, "--save-state", help="Directory to save the stream state to at end of input."),
    cold_start: bool = typer.Option(
        False,
        "--cold-start",
        help="Start with no history. By default a model trained on a series (deepad train SERIES) starts the "
        "stream after the end of its training series, which it keeps: give --cold-start when the input does not "
        "continue that series (another sensor, a replay from its start).",
    ),
    drift: bool = typer.Option(
        False,
        "--drift",
        help="Also watch for score drift (scores creeping up or sinking as a whole: a CUSUM on the conformal "
        'p-values); each drift event is one more line, {"event": "drift", "timestamp", "direction", "points"}.',
    ),
) -> None:
    """Score JSON Lines or CSV rows from stdin as they arrive; write one JSON line per row to stdout.

    The format is taken from the first line ({...} = JSON Lines, otherwise a
    CSV header).  Value fields are the model's training columns when it has
    names, else every numeric field except --timestamp-column.  Each output
    line is {"timestamp", "score", "threshold", "alarm", "alert"}; score is
    null until the model has a full window of history.  A model that
    attributes its alerts (MultiSeriesKNN) adds "columns" to an alert's
    line: the columns that drove it, {column: rarity}, most anomalous first.  Line numbers in error
    messages count input lines from 1 (a CSV header is line 1).

    MODEL_DIR is a time-series model (deepad train SERIES --detector
    ConformalKNN, ...) or a bare detector fitted on numeric arrays; a model
    trained on a table scores rows independently: use `deepad score` or
    `deepad serve` for it.  A model trained on a series keeps the end of it,
    and the stream starts there (full windows, a warm state): the input is
    taken to continue the training series; --cold-start if it does not.  A
    saved stream state resumes with the settings it was saved with, so
    --risk, --refractory, --rearm, --smoothing, --fixed-threshold and
    --cold-start do not apply to it.
    """
    import csv
    import json
    import os

    import deepad
    from deepad.stream import StreamScorer, default_threshold

    timestamp = _renamed(timestamp_column, timestamp_old, "--timestamp-column", "--timestamp")
    settings = {"--risk": risk, "--refractory": refractory, "--rearm": rearm, "--smoothing": smoothing}
    given = [flag for flag, v in settings.items() if v is not None] + (["--fixed-threshold"] if fixed_threshold else [])
    given += ["--drift"] if drift else []
    given += ["--cold-start"] if cold_start else []
    with _UserErrors():
        if os.path.exists(os.path.join(model_dir, "stream.json")):
            if given:
                fail(
                    f"{model_dir} is a saved stream state: it resumes with the settings it was saved with, so "
                    f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply. To change them, start a "
                    f"new stream from its model: deepad stream {os.path.join(model_dir, 'detector')} {' '.join(given)} ..."
                )
            scorer = StreamScorer.load(model_dir)
        else:
            model = deepad.load(model_dir)
            _check_streamable(model, model_dir)
            method = default_threshold(model, fixed_threshold)
            if risk is not None and (method == "fixed" or _alarms_by_likelihood(model)):
                fail(_risk_does_not_apply(model, fixed_threshold))
            scorer = StreamScorer(
                model,
                threshold=method,
                risk=1e-4 if risk is None else risk,
                refractory=refractory or 0,
                rearm=rearm or 0,
                smoothing=smoothing or 1,
                drift=drift,
                history=None if cold_start else "auto",
            )
            if not cold_start and getattr(model, "series_input_", None) and not _quiet():
                if scorer.n_primed:
                    typer.echo(f"Stream continues the training series (its last {scorer.n_primed:,} points).", err=True)
                else:  # saved before models kept the end of their training series
                    typer.echo(
                        f"note: {model_dir} does not keep the end of its training series (saved by an older deepad); "
                        "the stream starts cold, and its first windows may raise false alerts. Retrain to fix.",
                        err=True,
                    )
    names = getattr(scorer.detector, "feature_names_in_", None)
    names = [str(n) for n in names] if names is not None else None
    grid = getattr(scorer.detector, "series_input_", None)  # trained by `deepad train` on a series: check its clock
    clock = None
    if grid:
        from deepad.data.series import StreamClock

        clock = StreamClock(grid)
    timestamp = timestamp or (grid or {}).get("timestamp") or "timestamp"
    first = sys.stdin.readline()
    if not first:
        return
    is_json = first.lstrip().startswith("{")
    header = None if is_json else next(csv.reader([first]))
    if header is not None and names is not None and [c for c in names if c not in header]:
        fail(
            f"line 1: the CSV header lacks the model's value column(s) {[c for c in names if c not in header]}; "
            f"it has {header[:20]}, the model reads {names}."
        )

    def values(record: dict, line_no: int) -> list[float]:
        keys = names or [k for k in record if k != timestamp]
        missing = [k for k in keys if k not in record]
        if missing:
            fail(f"line {line_no}: missing field(s) {missing}; the model's value columns are {keys}.")
        row = []
        for k in keys:  # name the field and its value: one bad sensor in a wide row is otherwise hard to find
            v = record[k]
            try:
                x = float(v)
            except (TypeError, ValueError):
                what = "empty" if v is None or str(v).strip() == "" else repr(v)
                fail(f"line {line_no}: non-numeric value in field {k!r} ({what}); every value column needs a number.")
            if x != x or x in (float("inf"), float("-inf")):
                fail(
                    f"line {line_no}: field {k!r} is {v!r}; a stream needs a finite value in every column "
                    "(fill gaps before streaming, e.g. deepad.data.series.regularize)."
                )
            row.append(x)
        if len(row) != scorer.n_features:
            fail(f"line {line_no}: {len(row)} values, the model needs {scorer.n_features}.")
        return row

    # line_no: the 1-based number of `line` in the input (a CSV header is line 1, its first row line 2)
    line_no, line = (1, first) if is_json else (2, sys.stdin.readline())
    while line:
        if line.strip():
            try:
                record = json.loads(line) if is_json else dict(zip(header, next(csv.reader([line]))))
            except json.JSONDecodeError as exc:
                fail(f"line {line_no}: invalid JSON ({exc.msg}).")
            with _UserErrors(f"line {line_no}: "):
                if clock is not None:
                    gap = clock.check(record.get(timestamp), line_no)
                    if gap and not _quiet():
                        typer.echo(f"warning: {gap}", err=True)
                u = scorer.update(values(record, line_no))
            (out,) = u.records([record.get(timestamp)])
            sys.stdout.write(json.dumps(out) + "\n")
            for event in u.drift_events or ():
                event = {"event": "drift", "timestamp": record.get(timestamp), **event}
                event.pop("index")
                sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()
        line_no, line = line_no + 1, sys.stdin.readline()
    if save_state:
        with _UserErrors():
            scorer.save(save_state)
        if not _quiet():
            typer.echo(
                f"Stream state saved to {save_state} ({scorer.n_seen} points, {scorer.n_alerts} alerts, "
                f"{1e3 * scorer.latency_per_point_s:.3f} ms/point).",
                err=True,
            )


def _check_streamable(model, model_dir: str) -> None:
    """Exit 2 for a model that scores table rows or images: a stream needs a time-series model (or bare arrays)."""
    from deepad.image_pipeline import ImagePipeline
    from deepad.pipeline import TabularDetector

    if isinstance(model, (TabularDetector, ImagePipeline)):
        what = "images" if isinstance(model, ImagePipeline) else "table rows"
        fail(
            f"{model_dir} was trained on {what} ({type(model.detector_).__name__} in a {type(model).__name__}), "
            "which it scores independently of each other; deepad stream needs a time-series model: train one with "
            "deepad train SERIES.csv --detector ConformalKNN (or GRUForecaster, TCNAutoEncoder, RollingZScore) -o "
            f"MODEL. To score {what} with this model use deepad score (files) or deepad serve (HTTP)."
        )


def _alarms_by_likelihood(model) -> bool:
    """True for a detector whose streams alarm by the anomaly likelihood (LikelihoodKNN, OnlineForecaster,
    LikelihoodEnsemble: issue 21), where SPOT and its ``--risk`` are not used."""
    from deepad.detectors.series_ensemble import LikelihoodEnsemble

    return callable(getattr(model, "_stream_likelihood", None)) or isinstance(model, LikelihoodEnsemble)


def _risk_does_not_apply(model, fixed_threshold: bool, command: str = "stream") -> str:
    if fixed_threshold:
        return (
            "--risk sets the adaptive SPOT threshold; with --fixed-threshold the model's threshold_ is used instead. "
            "Give one of them."
        )
    if _alarms_by_likelihood(model):
        eps = getattr(model, "epsilon", None)
        level = f" ({eps:g})" if isinstance(eps, (int, float)) else ""
        params = (
            "'{\"epsilon\": ...}'"
            if eps is not None
            else '\'{"knn_params": {"epsilon": ...}, "forecaster_params": {"epsilon": ...}}\''
        )
        return (
            f"--risk does not apply to {type(model).__name__}: its stream alarms by the anomaly likelihood (an alert "
            f"when the recent scores' tail probability falls below epsilon{level}) and a range check, not by SPOT. "
            f"To change the false-alarm rate, retrain with deepad train ... --detector {type(model).__name__} "
            f"--params {params}"
            + ("; to use the model's fixed threshold_ instead, give --fixed-threshold." if command == "stream" else ".")
        )
    rate = getattr(model, "contamination", None)
    level = f" ({rate:g})" if isinstance(rate, (int, float)) else ""
    return (
        f"--risk does not apply to {type(model).__name__}: it keeps its own conformal threshold (an alert is a point "
        f"rarer than its contamination{level}), not SPOT's. To change the false-alarm rate, retrain with "
        f"deepad train ... --detector {type(model).__name__} --contamination RATE."
    )
