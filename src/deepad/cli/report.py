"""``deepad report``: a self-contained HTML report of a model on data."""

from __future__ import annotations

import typer

from deepad.cli._common import (
    _output_directory_exists,
    _refuse_options,
    _say,
    _UserErrors,
    fail,
    model_text_columns,
    with_read_options,
)

__all__ = ["report"]


@with_read_options
def report(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(
        ..., help="Table to score and describe: .csv/.tsv, .parquet, .jsonl, .json, .npy, .npz."
    ),
    output: str = typer.Option(..., "--output", "-o", help="HTML file to write (atomically)."),
    label_column: str = typer.Option(
        None,
        "--label-column",
        "-l",
        help="Column of DATA with known labels (1/true = anomaly): adds ROC and precision-recall curves; never "
        "scored. For images: label, the labels they come with (class folders 0/1, an .npz's y).",
    ),
    top: int = typer.Option(20, "--top", min=1, help="Top anomalies listed with their attributions."),
    refractory: int = typer.Option(
        None, min=0, help="Time series: points after an alert during which alarms are suppressed (default 0)."
    ),
    rearm: int = typer.Option(
        None,
        min=0,
        help="Time series: after an alert, alerts re-arm once the score has been below "
        "the threshold for this many points (one alert per incident); 0: off (the default).",
    ),
    risk: float = typer.Option(
        None,
        help="Time series: SPOT risk of the adaptive threshold (default 1e-4); not for ConformalKNN, whose "
        "threshold is its own conformal one, nor for the likelihood detectors (LikelihoodKNN, OnlineForecaster, "
        "LikelihoodEnsemble).",
    ),
    png: str = typer.Option(None, "--png", help="Time series: also write the plot to this PNG file."),
    read_options=None,
) -> None:
    """Write a self-contained HTML report: scores, threshold, ROC/PR, training curves, top anomalies, 2-D view.

    For a time-series detector (ConformalKNN, GRUForecaster, TCNAutoEncoder, RollingZScore)
    DATA is a series with a timestamp column, replayed as a stream: the
    report plots the series with its alerts and the score with its
    adaptive (SPOT) threshold (deepad.report.series).
    """
    import warnings
    from pathlib import Path

    import deepad
    from deepad.data.readers import read_table, table_columns
    from deepad.data.writers import same_file as _same_file
    from deepad.report import build_report

    if Path(output).suffix.lower() not in (".html", ".htm"):
        fail(f"the report {output} must end in .html.")
    if _same_file(Path(data), Path(output)):
        fail(f"the report {output} is the data file {data}.")
    _output_directory_exists(output)
    from deepad.data.images import is_image_source

    series_options = {"--refractory": refractory, "--rearm": rearm, "--risk": risk, "--png": png}
    if is_image_source(data):
        from deepad.cli.images import report_images

        _refuse_options(series_options, "time-series models", f"{data} is a set of images")
        return report_images(model_dir, data, output, top, label_column)
    with _UserErrors():
        model = deepad.load(model_dir)
    from deepad.report.series import build_series_report
    from deepad.stream import is_series_detector

    if is_series_detector(model):
        from deepad.cli.stream import _alarms_by_likelihood, _risk_does_not_apply
        from deepad.stream import default_threshold

        if risk is not None and (default_threshold(model) == "fixed" or _alarms_by_likelihood(model)):
            fail(_risk_does_not_apply(model, fixed_threshold=False, command="report"))
        with _UserErrors(f"{data}: "):
            build_series_report(
                model,
                data,
                output,
                label_column=label_column,
                risk=1e-4 if risk is None else risk,
                refractory=refractory or 0,
                rearm=rearm or 0,
                png=png,
                data_name=data,
                model_name=model_dir,
            )
        typer.echo(f"Wrote {output}")
        return
    _refuse_options(series_options, "time-series models", f"{model_dir} scores table rows")
    with _UserErrors(f"{data}: "):
        names = table_columns(data, read_options)
        if label_column is not None and label_column not in names:
            fail(f"{data} has no label column {label_column!r}; its columns are {names[:20]}.")
        frame = read_table(data, options=read_options, keep_text=model_text_columns(model))
    _say(f"Read {data}: {len(frame):,} rows x {frame.shape[1]} columns.")
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        build_report(model, frame, label_column, output, top_n=top, data_name=data, model_name=model_dir)
    typer.echo(f"Wrote {output}")
