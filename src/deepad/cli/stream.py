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
    risk: float = typer.Option(1e-4, help="SPOT risk: target probability that a normal point raises an alarm."),
    refractory: int = typer.Option(0, min=0, help="Points after an alert during which alarms are suppressed."),
    rearm: int = typer.Option(
        0,
        min=0,
        help="After an alert, alerts re-arm only once the score has been below the "
        "threshold for this many points (one alert per incident); 0: off.",
    ),
    smoothing: int = typer.Option(1, min=1, help="Score = mean of the last N raw scores."),
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
) -> None:
    """Score JSON Lines or CSV rows from stdin as they arrive; write one JSON line per row to stdout.

    The format is taken from the first line ({...} = JSON Lines, otherwise a
    CSV header).  Value fields are the model's training columns when it has
    names, else every numeric field except --timestamp-column.  Each output
    line is {"timestamp", "score", "threshold", "alarm", "alert"}; score is
    null until the model has a full window of history.
    """
    import csv
    import json
    import os

    import deepad
    from deepad.stream import StreamScorer, default_threshold

    timestamp = _renamed(timestamp_column, timestamp_old, "--timestamp-column", "--timestamp")
    with _UserErrors():
        if os.path.exists(os.path.join(model_dir, "stream.json")):
            scorer = StreamScorer.load(model_dir)
        else:
            model = deepad.load(model_dir)
            scorer = StreamScorer(
                model,
                threshold=default_threshold(model, fixed_threshold),
                risk=risk,
                refractory=refractory,
                rearm=rearm,
                smoothing=smoothing,
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

    def values(record: dict, line_no: int) -> list[float]:
        keys = names or [k for k in record if k != timestamp]
        try:
            row = [float(record[k]) for k in keys]
        except KeyError as exc:
            fail(f"line {line_no}: missing field {exc}.")
        except (TypeError, ValueError):
            fail(f"line {line_no}: non-numeric value in {keys}.")
        if len(row) != scorer.n_features:
            fail(f"line {line_no}: {len(row)} values, the model needs {scorer.n_features}.")
        return row

    line_no, line = 1, first if is_json else sys.stdin.readline()
    while line:
        line_no += 1
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
            sys.stdout.flush()
        line = sys.stdin.readline()
    if save_state:
        with _UserErrors():
            scorer.save(save_state)
        if not _quiet():
            typer.echo(
                f"Stream state saved to {save_state} ({scorer.n_seen} points, {scorer.n_alerts} alerts, "
                f"{1e3 * scorer.latency_per_point_s:.3f} ms/point).",
                err=True,
            )
