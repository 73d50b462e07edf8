"""``deepad score``: a saved model scores a table, an image folder or a series, chunk by chunk."""

from __future__ import annotations

import typer

from deepad.cli._common import (
    _output_directory_exists,
    _quiet,
    _refuse_options,
    _split_names,
    _UserErrors,
    fail,
    with_read_options,
)

__all__ = ["score"]


class _Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt (not an Exception), so every writer removes its part."""


def _sigterm_exits_143(command):
    """Decorate a command: SIGTERM cleans up like Ctrl-C (partial outputs removed), then exits 143 (128 + 15)."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            return command(*args, **kwargs)

        def terminate(signum, frame):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
            raise _Terminated

        previous = signal.signal(signal.SIGTERM, terminate)
        try:
            return command(*args, **kwargs)
        except _Terminated:
            typer.echo("error: terminated (SIGTERM); no output was written.", err=True)
            raise typer.Exit(code=143) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


@_sigterm_exits_143
@with_read_options
def score(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(..., help="Table to score: .csv/.tsv, .xlsx, .parquet, .jsonl, .json, .npy or .npz."),
    output: str = typer.Option(..., "--output", "-o", help="Output file, .csv or .parquet (written atomically)."),
    keep: list[str] = typer.Option(
        None,
        "--keep",
        "-k",
        help="Column(s) of DATA to carry to the output as read (e.g. keys to join the scores back on), "
        "after the id columns; repeat or comma-separate.",
    ),
    batch_rows: int = typer.Option(
        None, "--batch-rows", min=1, help="Tables: rows scored per chunk (bounds memory; default 65,536)."
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local: this process. dask: Parquet in, partitions scored "
        "in parallel on Dask workers, OUTPUT a directory of parts.",
    ),
    scheduler: str = typer.Option(
        None,
        "--scheduler",
        help="With --engine dask: scheduler address, e.g. tcp://host:8786 (default: a local cluster).",
    ),
    partition_rows: int = typer.Option(
        None,
        "--partition-rows",
        min=1,
        help="With --engine dask: rows per partition, one task each (whole row groups; default 500,000). "
        "See docs/scale-out.md.",
    ),
    explain: bool = typer.Option(
        False,
        "--explain/--no-explain",
        help="Add a top_features column: for rows flagged as anomalies, the --top columns "
        "that raised the score most (Shapley values, 8 permutations; empty for other rows, so the cost "
        "grows with the flagged rows only). Off by default to keep the output's columns stable.",
    ),
    top: int = typer.Option(None, "--top", min=1, help="With --explain: columns listed per flagged row (default 3)."),
    refractory: int = typer.Option(
        0, min=0, help="Time series: points after an alert during which alerts are suppressed (the alert column)."
    ),
    rearm: int = typer.Option(
        0,
        min=0,
        help="Time series: after an alert, alerts re-arm once the score has been below "
        "the threshold for this many points (the alert column); 0: off.",
    ),
    read_options=None,
) -> None:
    """Score DATA with a saved model; write its id columns (and --keep columns), score, p_value, is_anomaly to OUTPUT.

    A model trained on a time series reads DATA as a series on its training
    grid and writes one row per step: timestamp, score, p_value, threshold,
    is_anomaly and alert (after --refractory / --rearm, as `deepad stream`).
    There p_value is the alert rule's own estimate of how often a normal
    point scores this high (ConformalKNN: its conformal p-value; others: the
    SPOT tail fit), so p_value is below the alert level (the model's
    contamination, or SPOT's risk 1e-4) exactly on the rows with is_anomaly 1.
    For tables p_value is the conformal p-value against the training (or
    calibration) scores.

    Rows are read and scored in chunks, so memory does not grow with the
    file.  Row numbers in error messages count data rows from 0 (the CSV
    header is not a row).  A missing column or a value that cannot be read
    stops the run with exit code 2 and leaves no output file; so does Ctrl-C,
    or SIGTERM (exit code 143).
    """
    import deepad
    from deepad.data.writers import output_format
    from deepad.scoring import score_file

    from deepad.data.images import is_image_source

    _output_directory_exists(output)
    kept = _split_names(keep)
    if is_image_source(data) and engine.lower() == "local":
        if kept:
            fail("--keep carries table columns; image scores are written per file path.")
        from deepad.cli.images import score_images

        _refuse_options(
            {
                "--explain": explain,
                "--top": top,
                "--refractory": refractory or None,
                "--rearm": rearm or None,
                "--batch-rows": batch_rows,
            },
            "tables and series",
            f"{data} is a set of images; for anomaly maps use deepad explain {model_dir} {data}",
        )
        return score_images(model_dir, data, output)
    if top is not None and not explain:
        fail("--top sets how many columns --explain lists per flagged row; add --explain (or leave --top out).")
    top, batch_given = (3 if top is None else top), batch_rows is not None
    batch_rows = 65_536 if batch_rows is None else batch_rows
    if explain and engine.lower() != "local":
        fail("--explain works with --engine local; use `deepad explain` for chosen rows.")
    if engine.lower() == "dask":
        return _score_dask(model_dir, data, output, batch_rows, scheduler, kept, partition_rows)
    if engine.lower() != "local":
        fail(f"--engine must be local or dask, got {engine!r}.")
    if scheduler:
        fail("--scheduler needs --engine dask.")
    if partition_rows is not None:
        fail("--partition-rows needs --engine dask; --batch-rows sets the chunk size of local scoring.")
    with _UserErrors():
        output_format(output)
        model = deepad.load(model_dir)
    if getattr(model, "series_input_", None):  # trained by `deepad train` on a series: score it as one
        if explain:
            fail("--explain is for tables; a series model's report shows what it alerted on (deepad report).")
        if kept:
            fail("--keep is for tables; a series model writes one row per step of its grid (timestamp, score, ...).")
        if batch_given:
            fail("--batch-rows is for tables; a series is replayed through the stream as a whole, in time order.")
        from deepad.cli.series import score_series

        return score_series(model, data, output, refractory=refractory, rearm=rearm, read_options=read_options)
    if refractory or rearm:
        fail(
            "--refractory and --rearm apply to models trained on a time series (deepad train ... --detector "
            "ConformalKNN); this model scores table rows independently."
        )
    with _UserErrors(f"{data}: "):
        summary = score_file(
            model,
            data,
            output,
            batch_size=batch_rows,
            progress=not _quiet(),
            explain_top=top if explain else 0,
            read_options=read_options,
            keep=kept,
        )
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"Scored {summary.rows:,} rows in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s): "
        f"{summary.flagged:,} flagged as anomalies (threshold {model.threshold_:.4g}). Wrote {output}"
    )


def _score_dask(
    model_dir: str,
    data: str,
    output: str,
    batch_rows: int,
    scheduler: str | None,
    keep: list[str],
    partition_rows: int | None = None,
) -> None:
    """`deepad score --engine dask`: see deepad.distributed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        fail("--engine dask needs the dask extra: pip install 'deepad[dask]'")
    from deepad.distributed import DEFAULT_PARTITION_ROWS, score_parquet

    with _UserErrors(f"{data}: "):
        summary = score_parquet(
            model_dir,
            data,
            output,
            scheduler=scheduler,
            batch_rows=batch_rows,
            progress=not _quiet(),
            keep=keep,
            partition_rows=DEFAULT_PARTITION_ROWS if partition_rows is None else partition_rows,
        )
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"Scored {summary.rows:,} rows in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s) on "
        f"{summary.workers} Dask worker(s), {summary.partitions} partition(s): {summary.flagged:,} flagged as "
        f"anomalies. Wrote {output}/part-*.parquet"
    )
