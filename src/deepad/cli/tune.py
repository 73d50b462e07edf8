"""``deepad tune``: an Optuna search over a detector's hyper-parameters."""

from __future__ import annotations

import time

import typer

from deepad.cli._common import (
    _column_kinds,
    _detector_class,
    _one_line,
    _quiet,
    _say,
    _split_names,
    _UserErrors,
    fail,
    with_read_options,
)

__all__ = ["tune_cmd"]


@with_read_options
def tune_cmd(
    data: str = typer.Argument(..., help="Training table: .csv/.tsv, .parquet, .jsonl, .json, .npy or .npz."),
    output: str = typer.Option(..., "--output", "-o", help="Model directory to write (the tuned, refitted model)."),
    detector: str = typer.Option(
        None, "--detector", "-d", help="Detector class name (default: DEFAULT; `deepad detectors` lists them)."
    ),
    label_column: str = typer.Option(
        None,
        "--label-column",
        "-l",
        help="Column with labels (1/true = anomaly): a stratified 30% of the labelled "
        "rows is the validation set (objective: --metric on it); never a feature. "
        "Without it: synthetic anomaly injection (see deepad.tune).",
    ),
    exclude: list[str] = typer.Option(
        None, "--exclude", "-x", help="Column(s) to leave out, as `deepad train`; repeat or comma-separate."
    ),
    types: list[str] = typer.Option(
        None,
        "--type",
        "-t",
        help="Declare a column's kind, COLUMN=KIND (numeric, categorical, boolean, "
        "datetime, id, excluded), as `deepad train`; repeatable.",
    ),
    trials: int = typer.Option(20, "--trials", "-n", min=1, help="Number of trials."),
    timeout: float = typer.Option(None, "--timeout", min=0.001, help="Stop starting trials after this many seconds."),
    metric: str = typer.Option("roc_auc", "--metric", help="roc_auc or average_precision."),
    space: str = typer.Option(
        None,
        "--space",
        help='Search space as JSON, e.g. \'{"lr": ["log", 1e-4, 1e-2]}\' '
        "(format: deepad.tune); default: the detector's default space.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (sampler, splits, detectors)."),
    read_options=None,
) -> None:
    """Search a detector's hyper-parameters with Optuna, print the best, save the model refitted on all rows."""
    import json
    import warnings
    from pathlib import Path

    import numpy as np

    from deepad.data import infer_schema, read_table
    from deepad.data.values import label_values
    from deepad.data.writers import same_file as _same_file
    from deepad.pipeline import TabularDetector

    try:
        import optuna  # noqa: F401
    except ImportError:
        fail("deepad tune needs Optuna: pip install 'deepad[tune]'")
    from deepad.tune import tune

    if _same_file(Path(data), Path(output)):
        fail(f"the model directory {output} is the data file {data}.")
    cls = _detector_class(detector)
    search_space = None
    if space:
        try:
            search_space = json.loads(space)
        except json.JSONDecodeError as exc:
            fail(f"--space is not valid JSON ({exc.msg} at character {exc.pos}): {space}")
    type_map = _column_kinds(types)
    excluded = _split_names(exclude)
    with _UserErrors():
        df = read_table(data, options=read_options)
    _say(f"Read {data}: {len(df):,} rows x {df.shape[1]} columns.")
    if label_column is not None and label_column not in df.columns:
        fail(f"{data} has no label column {label_column!r}; its columns are {list(df.columns)[:20]}.")
    # One schema for every trial and the refit, inferred on all rows as `deepad train` does.
    with _UserErrors(f"{data}: "):
        schema = infer_schema(
            df, exclude=[c for c in excluded if c != label_column], types=type_map, label=label_column
        )
    if not _quiet():
        typer.echo("Columns:\n  " + schema.summary().replace("\n", "\n  "))
    X_val = y_val = df_all = None
    if label_column is not None:
        with _UserErrors(f"{data}: label "):
            y = label_values(df[label_column], label_column)
        df = df.drop(columns=[label_column])
        df_all = df  # the final model learns from every row, as `deepad train` would
        known = np.flatnonzero(~np.isnan(y))
        if len(np.unique(y[known])) != 2:
            fail(f"label column {label_column!r} needs both normal (0) and anomalous (1) rows.")
        from sklearn.model_selection import train_test_split

        with _UserErrors(f"{data}: label "):
            _, val = train_test_split(known, test_size=0.3, stratify=y[known], random_state=seed)
        val = np.sort(val)
        X_val, y_val = df.iloc[val].reset_index(drop=True), y[val]
        df = df.drop(index=df.index[val]).reset_index(drop=True)
    template = TabularDetector(cls(), schema=schema, contamination=0.1)  # as `deepad train` builds its model
    how = "labelled validation rows" if y_val is not None else "synthetic anomaly injection"
    _say(
        f"Tuning {cls.__name__}: {trials} trials{f' (at most {timeout:g} s)' if timeout else ''}, objective "
        f"{metric} on {how} ..."
    )
    t0 = time.perf_counter()
    try:
        with _UserErrors(f"{data}: "), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = tune(
                template,
                df,
                search_space=search_space,
                X_val=X_val,
                y_val=y_val,
                n_trials=trials,
                timeout=timeout,
                random_state=seed,
                metric=metric,
                refit_on=df_all,
            )
    except typer.Exit:
        raise
    except RuntimeError as exc:  # no trial finished: every setting failed on this data
        fail(f"{data}: tuning found no working setting: {_one_line(exc)}")
    typer.echo(
        f"Best of {result.extra['n_complete']} trial(s) in {time.perf_counter() - t0:.1f} s: "
        f"{metric} {result.best_value:.4f} ({result.objective})."
    )
    typer.echo(f"Best parameters: {json.dumps(result.best_params, default=str)}")
    with _UserErrors():
        result.save(output)
    n_refit = len(df if df_all is None else df_all)
    typer.echo(f"Saved model (the best parameters refitted on all {n_refit:,} rows) to {output}")
