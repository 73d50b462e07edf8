"""``deepad recalibrate MODEL_DIR CLEAN_DATA``: re-set a saved model's threshold on rows the user declares clean."""

from __future__ import annotations

import typer

from deepad.cli._common import _say, _UserErrors, fail, model_text_columns, with_read_options

__all__ = ["recalibrate_cmd"]


@with_read_options
def recalibrate_cmd(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(
        ..., help="Recent rows declared normal: .csv/.tsv, .xlsx, .parquet, .jsonl, .json, .npy, .npz."
    ),
    output: str = typer.Option(
        None, "--output", "-o", help="Model directory to write (default: MODEL_DIR, replaced atomically)."
    ),
    fpr: float = typer.Option(
        None, "--fpr", help="Target false-positive rate in (0, 1); default: the rate the model was set to."
    ),
    note: str = typer.Option(None, "--note", help="Why these rows are clean; kept in the version history."),
    read_options=None,
) -> None:
    """Make CLEAN_DATA the model's calibration set and re-set its threshold (conformal, deepad.drift.recalibrate).

    After drift, the flag rate on normal rows is no longer the rate the model
    was set to. Scoring recent rows you declare normal and taking the
    conformal quantile of their scores restores the guarantee: on new rows
    like them, the chance of a false alarm is at most --fpr (and at least
    --fpr - 1/(n+1)). The detector is not retrained (`deepad train
    --warm-start` does that). The step is appended to the model's version
    history, which `deepad info` lists.
    """
    import warnings
    from pathlib import Path

    import numpy as np

    import deepad
    from deepad.drift import history, recalibrate
    from deepad.stream import is_series_detector

    if fpr is not None and not 0.0 < fpr < 1.0:
        fail(f"--fpr must be in (0, 1), got {fpr}.")
    with _UserErrors():
        model = deepad.load(model_dir)
    if is_series_detector(model) or getattr(model, "_image_input", False):
        fail(f"{model_dir} holds a {type(model).__name__}; deepad recalibrate takes table models.")
    tabular = hasattr(model, "preprocessor_state_")
    from deepad.data.readers import read_table

    with _UserErrors(f"{data}: "):
        frame = read_table(data, options=read_options, keep_text=model_text_columns(model))
    _say(f"Read {data}: {len(frame):,} rows x {frame.shape[1]} columns.")
    if tabular:
        missing = [c for c in model.schema_.feature_columns if c not in frame.columns]
        if missing:
            fail(
                f"{data} has no column {missing[0]!r} that the model {model_dir} uses; its columns are "
                f"{[str(c) for c in frame.columns][:20]}."
            )
        X = frame
    else:
        with _UserErrors(f"{data}: "):
            X = frame.to_numpy(dtype=np.float64)
    before = float(model.threshold_)
    target = Path(output) if output is not None else Path(model_dir)
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unseen categories score as the model always scores them
        recalibrate(model, X, fpr=fpr, note=note)
    with _UserErrors():
        model.save(target)
    entry = history(model)[-1]
    typer.echo(
        f"Recalibrated {model_dir} on {entry['rows']:,} clean rows: threshold {before:.6g} -> "
        f"{float(model.threshold_):.6g} at a false-positive rate of {entry['fpr']:g} (version {entry['version']}); "
        f"saved to {target}."
    )
