"""The ``deepad`` command line.

User errors (bad files, columns, values) exit with code 2 and a one-line
message; tracebacks are for bugs only.
"""

from __future__ import annotations

import sys
import time

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="deepad: deep anomaly detection. Learn what normal looks like, flag what is not.")


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors (no progress bars)."),
) -> None:
    """deepad: deep anomaly detection."""
    import os

    if quiet:
        os.environ["DEEPAD_QUIET"] = "1"


def fail(message: str) -> "typer.Exit":
    """Print a one-line user error and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command()
def demo(
    detector: str = typer.Option(None, "--detector", "-d", help="Detector class name (default: deepad.detectors.DEFAULT)."),
    top: int = typer.Option(10, help="How many of the most anomalous records to list."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train a detector on the bundled Cardiotocography data and show what it finds.

    One-class protocol: a stratified 70/30 split, the detector fits on the
    normal rows of the 70 % part, and is scored on the held-out 30 %, whose
    labels are used only to report ROC-AUC and precision.
    """
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    import deepad.detectors as D
    from deepad.data import load_cardio

    cls = D.DEFAULT if detector is None else getattr(D, detector, None)
    if cls is None:
        fail(f"unknown detector {detector!r}; choose one of: {', '.join(n for n in D.__all__ if n != 'DEFAULT')}")
    X, y = load_cardio()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    model = cls(contamination=float(y_tr.mean()), random_state=seed)
    typer.echo(f"Cardiotocography (bundled, ADBench 6_cardio): {X.shape[0]} records x {X.shape[1]} features, "
               f"{int(y.sum())} pathologic ({y.mean():.1%}).")
    typer.echo(f"Training {cls.__name__} on the {int((y_tr == 0).sum())} normal records of a 70% split ...")
    t0 = time.perf_counter()
    model.fit(X_tr[y_tr == 0])
    fit_s = time.perf_counter() - t0
    # Threshold for a 5 % false-positive rate on the normal training records' scores.
    model.set_threshold(fpr=0.05)
    scores = model.decision_function(X_te)
    flags = model.predict(X_te)
    p = model.p_values(X_te)
    typer.echo(f"Fitted in {fit_s:.1f} s.  Scored {len(X_te)} held-out records: {int(flags.sum())} flagged as anomalies "
               f"(threshold {model.threshold_:.4g}, target false-positive rate 5%).")
    tp = int(((flags == 1) & (y_te == 1)).sum())
    typer.echo(f"Of the flagged, {tp} are truly pathologic (precision {tp / max(flags.sum(), 1):.2f}); "
               f"recall {tp / max(y_te.sum(), 1):.2f}.")
    typer.echo(f"ROC-AUC {roc_auc_score(y_te, scores):.4f}   average precision {average_precision_score(y_te, scores):.4f}")
    order = np.argsort(-scores)[:top]
    typer.echo(f"\nTop {len(order)} anomalies:")
    typer.echo(f"{'rank':>4} {'row':>5} {'score':>10} {'p-value':>8} {'label':>6}")
    for rank, i in enumerate(order, 1):
        typer.echo(f"{rank:>4} {i:>5} {scores[i]:>10.4g} {p[i]:>8.4f} {'anom' if y_te[i] else 'normal':>6}")


@app.command()
def bench(
    data: list[str] = typer.Argument(..., help="ADBench .npz files (arrays X, y), CSV/Parquet files with a label "
                                               "column, or folders of them."),
    detectors: str = typer.Option("DEFAULT", "--detectors", "-d",
                                  help='Comma-separated: deepad names (AutoEncoder, DEFAULT), class paths '
                                       '(pyod.models.iforest.IForest, xgboost.XGBClassifier), each optionally '
                                       'with JSON params: \'KNN:{"n_neighbors":10}\'.'),
    setting: str = typer.Option("oneclass", help="unsupervised, oneclass or weak (comma-separated for several)."),
    seeds: str = typer.Option("3", help="Number of seeds (3 = seeds 0,1,2) or a comma-separated list."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder (results.csv, summary.md, plots); "
                                                     "re-running with the same folder resumes."),
    timeout: float = typer.Option(3600.0, help="Seconds allowed per run; a run over it is recorded as a time-out."),
    threads: int = typer.Option(1, help="CPU threads per run (torch, BLAS/OpenMP, n_jobs)."),
    jobs: int = typer.Option(1, help="Runs in parallel."),
    max_rows: int = typer.Option(10000, help="Subsample (stratified) larger data sets to this many rows."),
    labelled: str = typer.Option(None, help="Weak setting: fractions of train anomalies labelled, e.g. 0.01,0.05."),
    labelled_count: str = typer.Option(None, help="Weak setting: numbers of train anomalies labelled, e.g. 5,10."),
    label: str = typer.Option("label", help="Label column of CSV/Parquet files (1 = anomaly)."),
    retry_errors: bool = typer.Option(False, help="Re-run runs recorded as errors or time-outs."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Benchmark detectors on labelled data under a fixed, documented protocol (see deepad.bench.protocol).

    Each (data set, detector, setting, seed) runs in its own process; results
    are appended to OUT/results.csv as they finish, and OUT/summary.md and
    OUT/plot_<setting>.png summarise them.
    """
    import os

    from deepad.bench import BenchmarkError, run_benchmark

    try:
        df = run_benchmark(data, detectors, setting=setting, seeds=seeds, out=out, labelled=labelled,
                           labelled_count=labelled_count, max_rows=max_rows, timeout=timeout, threads=threads,
                           jobs=jobs, label=label, retry_errors=retry_errors,
                           quiet=quiet or os.environ.get("DEEPAD_QUIET") == "1")
    except BenchmarkError as exc:
        fail(str(exc))
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    typer.echo(f"{len(df)} runs: {n_ok} ok, {len(df) - n_ok} failed.  Results: {os.path.join(out, 'results.csv')}  "
               f"Summary: {os.path.join(out, 'summary.md')}")


# --------------------------------------------------------------------------- train / score / info on real tables
def _quiet() -> bool:
    import os

    return os.environ.get("DEEPAD_QUIET") == "1"


def _say(message: str) -> None:
    if not _quiet():
        typer.echo(message)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if not isinstance(exc, KeyError) else f"missing {text}"


class _UserErrors:
    """Turn the errors bad input causes (files, columns, values, parameters) into ``fail()``: exit 2, one line."""

    def __init__(self, context: str = ""):
        self.context = context

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (typer.Exit, KeyboardInterrupt)):
            return False
        if isinstance(exc, (OSError, ValueError, TypeError)):
            message = _one_line(exc)
            where = self.context.rstrip(": ")
            fail(message if where and where in message else f"{self.context}{message}")
        return False


def _detector_class(name: str | None):
    import deepad.detectors as D
    from deepad.base import BaseDetector

    if name is None:
        return D.DEFAULT
    names = [n for n in D.__all__ if n != "DEFAULT" and isinstance(getattr(D, n, None), type)
             and issubclass(getattr(D, n), BaseDetector)]
    match = [n for n in names if n.lower() == name.lower()] or (["DEFAULT"] if name.upper() == "DEFAULT" else [])
    if not match:
        fail(f"unknown detector {name!r}; choose one of: {', '.join(names)}")
    return getattr(D, match[0])


def _detector_params(params: str | None, cls) -> dict:
    import json

    if not params:
        return {}
    try:
        kwargs = json.loads(params)
    except json.JSONDecodeError as exc:
        fail(f"--params is not valid JSON ({exc.msg} at character {exc.pos}): {params}")
    if not isinstance(kwargs, dict):
        fail(f"--params must be a JSON object like '{{\"epochs\": 50}}', got {params}")
    known = cls().get_params(deep=False)
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        fail(f"{cls.__name__} has no parameter(s) {unknown}; its parameters are: {', '.join(sorted(known))}")
    return kwargs


def _split_names(values: list[str] | None) -> list[str]:
    return [v.strip() for item in (values or []) for v in item.split(",") if v.strip()]


@app.command()
def train(
    data: str = typer.Argument(..., help="Training table: .csv/.tsv, .parquet, .jsonl, .json, .npy or .npz."),
    output: str = typer.Option(..., "--output", "-o", help="Model directory to write (replaced atomically)."),
    detector: str = typer.Option(None, "--detector", "-d", help="Detector class name (default: deepad.detectors.DEFAULT)."),
    label_column: str = typer.Option(None, "--label-column", "-l",
                                     help="Label column (1/true = anomaly): never a feature; used to report ROC-AUC "
                                          "on the training data, or as weak labels by detectors that learn from them."),
    exclude: list[str] = typer.Option(None, "--exclude", "-x", help="Column(s) to leave out; repeat or comma-separate."),
    types: list[str] = typer.Option(None, "--type", "-t",
                                    help="Declare a column's kind, COLUMN=KIND (numeric, categorical, boolean, "
                                         "datetime, id, excluded); repeatable."),
    contamination: float = typer.Option(None, "--contamination", "-c",
                                        help="Flag this fraction of the training rows (default 0.1)."),
    fpr: float = typer.Option(None, "--fpr", help="Instead: threshold for this false-positive rate on the training scores."),
    params: str = typer.Option(None, "--params", "-p", help='Detector parameters as JSON, e.g. \'{"epochs": 50}\'.'),
    scaling: str = typer.Option("standard", "--scaling", help="standard, robust, minmax or none."),
    seed: int = typer.Option(0, "--seed", help="Random seed (when the detector has random_state and --params does not set it)."),
) -> None:
    """Learn what normal rows of DATA look like and save the model (preprocessing included) to OUTPUT.

    Column kinds are inferred (numeric, categorical, boolean, datetime; unique
    id-like columns are excluded and passed through by `deepad score`); see
    the printed schema and override it with --type / --exclude.
    """
    import warnings
    from pathlib import Path

    import numpy as np

    from deepad.data import infer_schema, read_table
    from deepad.data.preprocessing import boolean_values
    from deepad.pipeline import TabularDetector, _same_file

    if contamination is not None and fpr is not None:
        fail("give --contamination or --fpr, not both.")
    if _same_file(Path(data), Path(output)):
        fail(f"the model directory {output} is the data file {data}.")
    cls = _detector_class(detector)
    kwargs = _detector_params(params, cls)
    type_map = {}
    for item in _split_names(types):
        col, sep, kind = item.partition("=")
        if not sep or not col or not kind:
            fail(f"--type expects COLUMN=KIND, got {item!r}.")
        type_map[col.strip()] = kind.strip()
    excluded = _split_names(exclude)
    with _UserErrors():
        df = read_table(data)
    _say(f"Read {data}: {len(df):,} rows x {df.shape[1]} columns.")
    y = None
    if label_column is not None:
        if label_column not in df.columns:
            fail(f"{data} has no label column {label_column!r}; its columns are {list(df.columns)[:20]}.")
        with _UserErrors(f"{data}: label "):
            y = boolean_values(df[label_column], label_column)
    with _UserErrors(f"{data}: "):
        schema = infer_schema(df, exclude=[c for c in excluded if c != label_column], types=type_map,
                              label=label_column)
    if not _quiet():
        typer.echo("Columns:\n  " + schema.summary().replace("\n", "\n  "))
    inner = cls(**kwargs)
    inner_params = inner.get_params(deep=False)
    if "random_state" in inner_params and "random_state" not in kwargs:
        inner.set_params(random_state=seed)
    if "verbose" in inner_params and "verbose" not in kwargs:
        inner.set_params(verbose=not _quiet())
    model = TabularDetector(inner, schema=schema, scaling=None if scaling.lower() == "none" else scaling,
                            contamination=0.1 if contamination is None else contamination)
    use_labels = y is not None and cls._uses_labels
    _say(f"Training {cls.__name__}{' with weak labels' if use_labels else ''} ...")
    t0 = time.perf_counter()
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(df, np.where(np.isnan(y), -1, y) if use_labels else None)
        if fpr is not None:
            model.set_threshold(fpr=fpr)
    seconds = time.perf_counter() - t0
    if "verbose" in inner_params and "verbose" not in kwargs:  # progress bars were for this run only
        model.detector_.set_params(verbose=False)
        inner.set_params(verbose=False)
    n_flag = int(model.labels_.sum())
    typer.echo(f"Trained {cls.__name__} on {len(df):,} rows ({model.n_features_out_} encoded features) in {seconds:.1f} s; "
               f"threshold {model.threshold_:.4g} flags {n_flag:,} training rows ({n_flag / len(df):.2%}).")
    if y is not None:
        from sklearn.metrics import average_precision_score, roc_auc_score

        known = ~np.isnan(y)
        if known.any() and len(np.unique(y[known])) == 2:
            auc = roc_auc_score(y[known], model.decision_scores_[known])
            ap = average_precision_score(y[known], model.decision_scores_[known])
            how = "labels used as weak supervision" if use_labels else "labels not used for training"
            typer.echo(f"Training ROC-AUC against {label_column!r}: {auc:.4f} (average precision {ap:.4f}; "
                       f"in-sample, {how}).")
        else:
            typer.echo(f"note: label column {label_column!r} has a single class; no ROC-AUC.")
    with _UserErrors():
        model.save(output)
    typer.echo(f"Saved model to {output}")


@app.command()
def score(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(..., help="Table to score: .csv/.tsv, .parquet, .jsonl, .json, .npy or .npz."),
    output: str = typer.Option(..., "--output", "-o", help="Output file, .csv or .parquet (written atomically)."),
    batch_rows: int = typer.Option(65_536, "--batch-rows", min=1, help="Rows scored per chunk (bounds memory)."),
) -> None:
    """Score DATA with a saved model; write its id columns plus score, p_value and is_anomaly to OUTPUT.

    Rows are read and scored in chunks, so memory does not grow with the
    file.  Row numbers in error messages count data rows from 0 (the CSV
    header is not a row).  A missing column or a value that cannot be read
    stops the run with exit code 2 and leaves no output file.
    """
    import deepad
    from deepad.pipeline import output_format, score_file

    with _UserErrors():
        output_format(output)
        model = deepad.load(model_dir)
    with _UserErrors(f"{data}: "):
        summary = score_file(model, data, output, batch_size=batch_rows, progress=not _quiet())
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"Scored {summary.rows:,} rows in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s): "
               f"{summary.flagged:,} flagged as anomalies (threshold {model.threshold_:.4g}). Wrote {output}")


@app.command()
def info(model_dir: str = typer.Argument(..., help="Model directory.")) -> None:
    """Describe a saved model: detector, parameters, columns, threshold and versions."""
    import json

    import deepad
    from deepad.pipeline import TabularDetector

    with _UserErrors():
        model = deepad.load(model_dir)
    inner = model.detector_ if isinstance(model, TabularDetector) else model
    typer.echo(f"Model:      {model_dir}")
    kind = f"{type(inner).__name__} on a table (deepad.pipeline.TabularDetector)" \
        if isinstance(model, TabularDetector) else type(model).__name__
    typer.echo(f"Detector:   {kind}")
    params = {k: v for k, v in inner.get_params(deep=False).items()
              if not (isinstance(model, TabularDetector) and k == "contamination")}  # the pipeline's threshold rules
    typer.echo(f"Parameters: {json.dumps(params, default=str)}")
    n_train = len(model.decision_scores_)
    if isinstance(model, TabularDetector):
        typer.echo(f"Trained on: {n_train:,} rows, {model.n_features_in_} columns -> {model.n_features_out_} "
                   f"encoded features")
        typer.echo("Columns:\n  " + model.schema_.summary().replace("\n", "\n  "))
    else:
        typer.echo(f"Trained on: {n_train:,} rows x {model.n_features_in_} features")
    method = ", ".join(f"{k}={v}" for k, v in model.threshold_method_.items() if k != "method")
    typer.echo(f"Threshold:  {model.threshold_:.6g} ({method or model.threshold_method_.get('method')}); "
               f"flags {int(model.labels_.sum()):,} training rows ({model.labels_.mean():.2%})")
    versions = getattr(model, "saved_versions_", {}) or {}
    if versions:
        typer.echo("Saved with: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
