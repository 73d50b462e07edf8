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
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors (no progress bars). "
                                                            "DEEPAD_QUIET=1 in the environment does the same."),
) -> None:
    """deepad: deep anomaly detection."""
    # Per invocation (the click context), not process-wide: an in-process caller running
    # `deepad --quiet ...` and then `deepad ...` gets progress output back the second time.
    ctx.ensure_object(dict)["quiet"] = bool(quiet)


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
    model = cls(contamination=float(y_tr.mean()))
    if "random_state" in model.get_params():  # deterministic detectors have no seed
        model.set_params(random_state=seed)
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
def example(
    output: str = typer.Argument("transactions.csv", help="CSV file to write."),
    rows: int = typer.Option(5000, min=100, help="Number of transactions."),
    anomaly_rate: float = typer.Option(0.01, min=0.0, max=0.5, help="Fraction of planted frauds (label is_fraud=1)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write a realistic, fraud-like card-transaction CSV to try train/score/explain/report on.

    Mixed columns as real exports have them: an id, timestamps, amounts,
    a 3,000-level merchant id, categories, booleans, missing values; planted
    frauds are labelled in ``is_fraud``.
    """
    import os
    import tempfile
    from pathlib import Path

    from deepad.data.synthetic import write_fraud_csv

    out = Path(output)
    if out.suffix.lower() != ".csv":
        fail(f"{output}: the example is written as CSV; give a file name ending in .csv")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent if str(out.parent) else ".")
    os.close(fd)
    try:
        write_fraud_csv(tmp, n_rows=rows, anomaly_rate=anomaly_rate, seed=seed)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _say(f"Wrote {rows} transactions ({int(round(rows * anomaly_rate))} planted frauds, column is_fraud) to {out}")


@app.command()
def bench(
    data: list[str] = typer.Argument(None, help="ADBench .npz files (arrays X, y), CSV/Parquet files with a label "
                                                "column, or folders of them (not with --nab)."),
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
    nab_dir: str = typer.Option(None, "--nab", help="Numenta Anomaly Benchmark folder (combined_windows.json + "
                                                    "category folders): stream each detector over it and write "
                                                    "NAB scores (deepad.bench.nab_run) to OUT."),
    refractory: int = typer.Option(16, min=0, help="--nab: points after an alert during which alarms are suppressed."),
    rearm: int = typer.Option(64, min=0, help="--nab: after an alert, alerts re-arm once the score has been below the "
                                              "threshold for this many points (one alert per incident); 0: off."),
    images: str = typer.Option(None, "--images", help="Image benchmark instead of tables: mnist (one-class MNIST, "
                                                      "see deepad.bench.images); needs --data."),
    image_data: str = typer.Option(None, "--data", help="With --images mnist: folder with the MNIST idx files."),
    digits: str = typer.Option(None, "--digits", help="With --images mnist: normal digits to run (default 0-9)."),
) -> None:
    """Benchmark detectors on labelled data under a fixed, documented protocol (see deepad.bench.protocol).

    Each (data set, detector, setting, seed) runs in its own process; results
    are appended to OUT/results.csv as they finish, and OUT/summary.md and
    OUT/plot_<setting>.png summarise them.  With --nab DIR, each detector
    (default ConformalKNN) is streamed point by point over the NAB corpus
    and scored with NAB's three profiles, causally and with NAB's optimised
    threshold, next to null and random detectors (OUT/summary_<name>.md,
    per_file_<name>.csv, results_<name>.json).
    """
    import os

    from deepad.bench import BenchmarkError, run_benchmark

    if images:
        if data:
            fail("give either data files or --images mnist --data DIR, not both.")
        from deepad.cli_images import bench_images

        return bench_images(images, image_data, detectors, seeds, out, threads, digits)
    if nab_dir is not None:
        if data:
            fail("give either data files or --nab DIR, not both.")
        import json

        from deepad.bench.nab_run import nab_markdown, run_nab, split_specs

        for spec in ["ConformalKNN"] if detectors == "DEFAULT" else split_specs(detectors):
            name, _, raw = spec.partition(":")
            try:
                params = json.loads(raw) if raw else {}
                summary = run_nab(nab_dir, name.strip(), params, refractory=refractory, rearm=rearm, out=out,
                                  progress=not (quiet or _quiet()))
            except (ValueError, TypeError, FileNotFoundError, json.JSONDecodeError) as exc:
                fail(f"--nab {nab_dir}: {_one_line(exc)}")
            typer.echo(nab_markdown(summary))
        return
    if not data:
        fail("give data files or folders to benchmark, or --nab DIR.")

    try:
        df = run_benchmark(data, detectors, setting=setting, seeds=seeds, out=out, labelled=labelled,
                           labelled_count=labelled_count, max_rows=max_rows, timeout=timeout, threads=threads,
                           jobs=jobs, label=label, retry_errors=retry_errors,
                           quiet=quiet or _quiet())
    except BenchmarkError as exc:
        fail(str(exc))
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    typer.echo(f"{len(df)} runs: {n_ok} ok, {len(df) - n_ok} failed.  Results: {os.path.join(out, 'results.csv')}  "
               f"Summary: {os.path.join(out, 'summary.md')}")


# --------------------------------------------------------------------------- train / score / info on real tables
def _current_context():
    """The running command's context (typer >= 0.2x vendors click as ``typer._click``; older typer uses click)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - typer built on the click package
        from click import get_current_context
    return get_current_context(silent=True)


def _quiet() -> bool:
    """``--quiet`` of this invocation (the root context's object), or DEEPAD_QUIET=1 in the user's environment."""
    import os

    ctx = _current_context()
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(isinstance(obj, dict) and obj.get("quiet")) or os.environ.get("DEEPAD_QUIET") == "1"


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
            from deepad.data.writers import OutputWriteError

            message = _one_line(exc)
            where = self.context.rstrip(": ")
            # an output that cannot be written names the output, not the input in self.context
            own = isinstance(exc, OutputWriteError) or (where and where in message)
            fail(message if own else f"{self.context}{message}")
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


def _new_detector(cls, kwargs: dict, seed: int):
    """``cls(**kwargs)`` with the CLI's seed and progress setting unless the user gave them."""
    inner = cls(**kwargs)
    inner_params = inner.get_params(deep=False)
    if "random_state" in inner_params and "random_state" not in kwargs:
        inner.set_params(random_state=seed)
    if "verbose" in inner_params and "verbose" not in kwargs:
        inner.set_params(verbose=not _quiet())
    return inner


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


def _threshold_rule(threshold, contamination, fpr, pot_risk, calibration_fraction) -> str:
    """`deepad train`'s threshold options, checked: the rule's name (contamination, fpr or pot)."""
    import math

    method = (threshold or ("fpr" if fpr is not None else "contamination")).strip().lower()
    if method not in ("contamination", "fpr", "pot"):
        fail(f"--threshold must be contamination, fpr or pot, got {threshold!r}.")
    if method != "fpr" and fpr is not None:
        fail(f"--fpr goes with --threshold fpr, not --threshold {method}.")
    if method != "pot" and pot_risk is not None:
        fail(f"--pot-risk goes with --threshold pot, not --threshold {method}.")
    if method != "contamination" and contamination is not None:
        fail(f"--contamination goes with --threshold contamination; --threshold {method} sets the threshold "
             f"without a contamination guess.")
    if fpr is not None and not 0.0 < fpr < 1.0:
        fail(f"--fpr must be in (0, 1), got {fpr}.")
    if pot_risk is not None and not 0.0 < pot_risk < 1.0:
        fail(f"--pot-risk must be in (0, 1), got {pot_risk}.")
    if not (math.isfinite(calibration_fraction) and 0.0 <= calibration_fraction < 1.0):
        fail(f"--calibration-fraction must be in [0, 1), got {calibration_fraction}.")
    return method


def _tracking_callbacks(tensorboard: str | None, cls) -> dict:
    """``fit`` keyword arguments for --tensorboard (neural detectors only)."""
    if not tensorboard:
        return {}
    from deepad.detectors._neural import NeuralDetector

    if not issubclass(cls, NeuralDetector):
        fail(f"--tensorboard logs the training losses of neural detectors; {cls.__name__} is not one.")
    try:
        import tensorboard as _tb  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        fail("--tensorboard needs the tracking extra: pip install 'deepad[tracking]'")
    from deepad.training import TensorBoardLogger

    return {"callbacks": [TensorBoardLogger(tensorboard)]}


def _calibration_split(df, y, fraction: float, seed: int):
    """``(fit rows, held-out calibration rows or None, labels of the fit rows)``; known anomalies always fit."""
    import numpy as np

    if not fraction:
        return df, None, y
    candidates = np.arange(len(df)) if y is None else np.flatnonzero(~(y == 1))
    n_cal = min(int(round(fraction * len(df))), len(candidates))
    if n_cal < 20:
        fail(f"--calibration-fraction {fraction:g} holds out {n_cal} clean rows of {len(df):,}; at least 20 are "
             f"needed for calibrated p-values. Raise it or train on more rows.")
    if len(df) - n_cal < 20:
        fail(f"--calibration-fraction {fraction:g} leaves only {len(df) - n_cal} rows to train on.")
    held = np.zeros(len(df), dtype=bool)
    held[np.random.default_rng(seed).choice(candidates, size=n_cal, replace=False)] = True
    return df[~held].reset_index(drop=True), df[held].reset_index(drop=True), None if y is None else y[~held]


def _apply_threshold_rule(model, method: str, fpr, pot_risk, *, default: bool) -> None:
    """Set the threshold by ``method`` and store the rule and its reason in ``model.threshold_method_``."""
    from deepad.report.fingerprint import threshold_reason

    calibrated = getattr(model, "calibration_scores_", None) is not None
    n_ref = len(model.calibration_scores_) if calibrated else len(model.decision_scores_)
    if method == "fpr":
        value, key = (0.01 if fpr is None else fpr), "fpr"
        model.set_threshold(fpr=value)
    elif method == "pot":
        value, key = (1e-3 if pot_risk is None else pot_risk), "pot_risk"
        model.set_threshold(pot_risk=value)
    else:
        value, key = float(model.contamination), "contamination"
        n_ref = len(model.decision_scores_)
    reference = "calibration" if calibrated and key != "contamination" else "training"
    model.threshold_method_ = {**model.threshold_method_, "reference": reference, "reference_rows": int(n_ref),
                               "reason": threshold_reason(key, value, reference=reference, n_reference=n_ref,
                                                          default=default)}


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
    fpr: float = typer.Option(None, "--fpr", help="Instead: threshold for this false-positive rate on the training scores "
                                                  "(or the --calibration-fraction rows); implies --threshold fpr "
                                                  "(default 0.01 there)."),
    threshold: str = typer.Option(None, "--threshold",
                                  help="Threshold rule: contamination (flag --contamination of the training rows; the "
                                       "default), fpr (target false-positive rate --fpr) or pot (extreme-value "
                                       "peaks-over-threshold tail fit at --pot-risk; needs no contamination guess). "
                                       "Stored with the model and shown by `deepad info`."),
    pot_risk: float = typer.Option(None, "--pot-risk", help="With --threshold pot: expected fraction of normal rows "
                                                            "above the threshold (default 0.001)."),
    calibration_fraction: float = typer.Option(0.0, "--calibration-fraction",
                                               help="Hold out this fraction of the training rows (never known "
                                                    "anomalies): fit on the rest, then p-values and fpr/pot "
                                                    "thresholds use the held-out scores (conformal calibration)."),
    tensorboard: str = typer.Option(None, "--tensorboard", help="Log a neural detector's per-epoch losses to this "
                                                                "TensorBoard directory (pip install 'deepad[tracking]')."),
    params: str = typer.Option(None, "--params", "-p", help='Detector parameters as JSON, e.g. \'{"epochs": 50}\'.'),
    scaling: str = typer.Option("standard", "--scaling", help="standard, robust, minmax or none."),
    seed: int = typer.Option(0, "--seed", help="Random seed (when the detector has random_state and --params does not set it)."),
    image_size: str = typer.Option(None, "--image-size", help="Images: resize every image to HxW (e.g. 64x64); "
                                                              "needed when the training images differ in size."),
    timestamp_column: str = typer.Option(None, "--timestamp-column",
                                         help="Time series: the timestamp column (default: one named timestamp/time/"
                                              "datetime/date/ts, else the first column)."),
    resample: str = typer.Option(None, "--resample", help="Time series: grid step, e.g. 5min or 1h (default: the "
                                                          "median spacing of the timestamps); values are averaged "
                                                          "per step."),
    fill_limit: int = typer.Option(3, "--fill-limit", min=0,
                                   help="Time series: fill gaps of at most this many steps by time interpolation; "
                                        "longer gaps are left out, never invented."),
) -> None:
    """Learn what normal rows of DATA look like and save the model (preprocessing included) to OUTPUT.

    Column kinds are inferred (numeric, categorical, boolean, datetime; unique
    id-like columns are excluded and passed through by `deepad score`); see
    the printed schema and override it with --type / --exclude.

    With a time-series detector (--detector ConformalKNN, GRUForecaster,
    TCNAutoEncoder or RollingZScore) DATA is a series instead: a timestamp
    column and numeric value columns, put on a regular grid (--resample,
    --fill-limit) and learnt in time order; then `deepad stream` and
    `deepad report` take the model.
    """
    import warnings
    from pathlib import Path

    import numpy as np

    from deepad.data import infer_schema, read_table
    from deepad.data.preprocessing import boolean_values
    from deepad.data.writers import same_file as _same_file
    from deepad.pipeline import TabularDetector

    if contamination is not None and fpr is not None:
        fail("give --contamination or --fpr, not both.")
    method = _threshold_rule(threshold, contamination, fpr, pot_risk, calibration_fraction)
    if _same_file(Path(data), Path(output)):
        fail(f"the model directory {output} is the data file {data}.")
    from deepad.data.images import is_image_source

    if is_image_source(data):  # a folder of images or MNIST idx files: the image pipeline
        from deepad.cli_images import train_images

        cls = _detector_class(detector) if detector else None
        image_cls = cls or _detector_class("ConvAutoEncoder")
        return train_images(data, output, cls=cls, kwargs=_detector_params(params, image_cls),
                            fit_params=_tracking_callbacks(tensorboard, image_cls), contamination=contamination,
                            method=method, fpr=fpr, pot_risk=pot_risk, seed=seed, image_size=image_size,
                            default_rule=threshold is None and fpr is None)
    cls = _detector_class(detector)
    kwargs = _detector_params(params, cls)
    fit_params = _tracking_callbacks(tensorboard, cls)
    from deepad.cli_series import is_series_class, train_series

    inner = _new_detector(cls, kwargs, seed)
    series_only = [o for o, v in (("--timestamp-column", timestamp_column), ("--resample", resample),
                                  ("--fill-limit", None if fill_limit == 3 else fill_limit)) if v is not None]
    if is_series_class(inner):
        table_only = [o for o, v in (("--type", types), ("--calibration-fraction", calibration_fraction or None),
                                     ("--scaling", None if scaling == "standard" else scaling),
                                     ("--image-size", image_size)) if v]
        if table_only:
            verb = "applies" if len(table_only) == 1 else "apply"
            fail(f"{', '.join(table_only)} {verb} to tables; {cls.__name__} reads a time series (it scales its "
                 f"own inputs). Use --exclude, --timestamp-column, --resample or --fill-limit.")
        return train_series(data, output, inner=inner, label_column=label_column, excluded=_split_names(exclude),
                            timestamp=timestamp_column, resample=resample, fill_limit=fill_limit,
                            contamination=contamination, method=method, fpr=fpr, pot_risk=pot_risk,
                            default_rule=threshold is None and fpr is None, fit_params=fit_params)
    if series_only:
        verb = "applies" if len(series_only) == 1 else "apply"
        fail(f"{', '.join(series_only)} {verb} to time-series detectors (ConformalKNN, GRUForecaster, "
             f"TCNAutoEncoder, RollingZScore); {cls.__name__} reads a table.")
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
    df, df_cal, y = _calibration_split(df, y, calibration_fraction, seed)
    if not _quiet():
        typer.echo("Columns:\n  " + schema.summary().replace("\n", "\n  "))
    model = TabularDetector(inner, schema=schema, scaling=None if scaling.lower() == "none" else scaling,
                            contamination=0.1 if contamination is None else contamination)
    use_labels = y is not None and cls._uses_labels
    _say(f"Training {cls.__name__}{' with weak labels' if use_labels else ''} ...")
    t0 = time.perf_counter()
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(df, np.where(np.isnan(y), -1, y) if use_labels else None, **fit_params)
        if df_cal is not None:
            model.calibrate(df_cal)
        _apply_threshold_rule(model, method, fpr, pot_risk, default=threshold is None and fpr is None)
    seconds = time.perf_counter() - t0
    if "verbose" in inner.get_params(deep=False) and "verbose" not in kwargs:  # progress bars were for this run only
        model.detector_.set_params(verbose=False)
        inner.set_params(verbose=False)
    n_flag = int(model.labels_.sum())
    typer.echo(f"Trained {cls.__name__} on {len(df):,} rows ({model.n_features_out_} encoded features) in {seconds:.1f} s; "
               f"threshold {model.threshold_:.4g} flags {n_flag:,} training rows ({n_flag / len(df):.2%}).")
    _say(f"Threshold rule: {model.threshold_method_['reason']}")
    if df_cal is not None:
        _say(f"Calibrated p-values on {len(df_cal):,} held-out rows.")
    if tensorboard:
        _say(f"TensorBoard logs in {tensorboard} (tensorboard --logdir {tensorboard}).")
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


@app.command()
@_sigterm_exits_143
def score(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(..., help="Table to score: .csv/.tsv, .parquet, .jsonl, .json, .npy or .npz."),
    output: str = typer.Option(..., "--output", "-o", help="Output file, .csv or .parquet (written atomically)."),
    batch_rows: int = typer.Option(65_536, "--batch-rows", min=1, help="Rows scored per chunk (bounds memory)."),
    engine: str = typer.Option("local", "--engine", help="local: this process. dask: Parquet in, partitions scored "
                                                         "in parallel on Dask workers, OUTPUT a directory of parts."),
    scheduler: str = typer.Option(None, "--scheduler", help="With --engine dask: scheduler address, e.g. "
                                                            "tcp://host:8786 (default: a local cluster)."),
    explain: bool = typer.Option(False, "--explain/--no-explain",
                                 help="Add a top_features column: for rows flagged as anomalies, the --top columns "
                                      "that raised the score most (empty for other rows, so the cost grows with the "
                                      "flagged rows only). Off by default to keep the output's columns stable."),
    top: int = typer.Option(3, "--top", min=1, help="With --explain: columns listed per flagged row."),
    refractory: int = typer.Option(0, min=0, help="Time series: points after an alert during which alerts are "
                                                  "suppressed (the alert column)."),
    rearm: int = typer.Option(0, min=0, help="Time series: after an alert, alerts re-arm once the score has been below "
                                             "the threshold for this many points (the alert column); 0: off."),
) -> None:
    """Score DATA with a saved model; write its id columns plus score, p_value and is_anomaly to OUTPUT.

    A model trained on a time series reads DATA as a series on its training
    grid and writes one row per step: timestamp, score, p_value, threshold,
    is_anomaly and alert (after --refractory / --rearm, as `deepad stream`).

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

    if is_image_source(data) and engine.lower() == "local":
        from deepad.cli_images import score_images

        return score_images(model_dir, data, output)
    if explain and engine.lower() != "local":
        fail("--explain works with --engine local; use `deepad explain` for chosen rows.")
    if engine.lower() == "dask":
        return _score_dask(model_dir, data, output, batch_rows, scheduler)
    if engine.lower() != "local":
        fail(f"--engine must be local or dask, got {engine!r}.")
    if scheduler:
        fail("--scheduler needs --engine dask.")
    with _UserErrors():
        output_format(output)
        model = deepad.load(model_dir)
    if getattr(model, "series_input_", None):  # trained by `deepad train` on a series: score it as one
        if explain:
            fail("--explain is for tables; a series model's report shows what it alerted on (deepad report).")
        from deepad.cli_series import score_series

        return score_series(model, data, output, refractory=refractory, rearm=rearm)
    if refractory or rearm:
        fail("--refractory and --rearm apply to models trained on a time series (deepad train ... --detector "
             "ConformalKNN); this model scores table rows independently.")
    with _UserErrors(f"{data}: "):
        summary = score_file(model, data, output, batch_size=batch_rows, progress=not _quiet(),
                             explain_top=top if explain else 0)
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"Scored {summary.rows:,} rows in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s): "
               f"{summary.flagged:,} flagged as anomalies (threshold {model.threshold_:.4g}). Wrote {output}")


def _score_dask(model_dir: str, data: str, output: str, batch_rows: int, scheduler: str | None) -> None:
    """`deepad score --engine dask`: see deepad.distributed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        fail("--engine dask needs the dask extra: pip install 'deepad[dask]'")
    from deepad.distributed import score_parquet

    with _UserErrors(f"{data}: "):
        summary = score_parquet(model_dir, data, output, scheduler=scheduler, batch_rows=batch_rows,
                                progress=not _quiet())
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"Scored {summary.rows:,} rows in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s) on "
               f"{summary.workers} Dask worker(s), {summary.partitions} partition(s): {summary.flagged:,} flagged as "
               f"anomalies. Wrote {output}/part-*.parquet")


@app.command()
def serve(
    models: str = typer.Argument(..., help="A model directory, or a directory whose sub-directories are models."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on. Beyond loopback an API key "
                                                         "(--api-key-env) or --insecure is required."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (each loads the models)."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Name of the environment variable holding the API "
                                                                "key clients must send as X-API-Key."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback --host without an API key."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", min=0.001, help="Largest request body (413 above)."),
    reload_interval: float = typer.Option(2.0, "--reload-interval", min=0.0,
                                          help="Seconds between checks for a new model version (0: off)."),
    max_rows: int = typer.Option(100_000, "--max-rows", min=1,
                                 help="Most rows per request (JSON, CSV, Parquet, streams); 413 above."),
    max_decompressed_mb: float = typer.Option(256.0, "--max-decompressed-mb", min=0.001,
                                              help="Largest decoded size of a Parquet body, checked from its "
                                                   "metadata before reading (413 above)."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.001,
                                       help="Seconds to receive a request body (408 after)."),
    header_timeout: float = typer.Option(30.0, "--header-timeout", min=0.001,
                                         help="Seconds to receive a request head (the connection is closed after)."),
    keep_alive_timeout: float = typer.Option(5.0, "--keep-alive-timeout", min=0.001,
                                             help="Seconds an idle keep-alive connection stays open."),
) -> None:
    """Serve saved models over HTTP (FastAPI/Uvicorn): POST /v1/score, GET /v1/model, /healthz, /readyz.

    See docs/serving.md.  Needs the serve extra: pip install 'deepad[serve]'.
    """
    try:
        from deepad.serve.app import ServeConfig, serve as run_server
    except ImportError:
        fail("deepad serve needs the serve extra: pip install 'deepad[serve]'")
    cfg = ServeConfig(models=models, host=host, port=port, workers=workers, api_key_env=api_key_env,
                      insecure=insecure, max_body_bytes=int(max_body_mb * 1024 * 1024),
                      reload_interval=reload_interval, log_level="warning" if _quiet() else "info",
                      max_rows=max_rows, max_decompressed_bytes=int(max_decompressed_mb * 1024 * 1024),
                      body_timeout=body_timeout, header_timeout=header_timeout,
                      keep_alive_timeout=keep_alive_timeout)
    with _UserErrors():
        run_server(cfg)


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
    elif getattr(model, "_image_input", False):
        typer.echo(f"Trained on: {n_train:,} images of {'x'.join(map(str, model.image_shape_))} (C x H x W)")
    elif getattr(model, "series_input_", None):
        from deepad.cli_series import describe_series_input

        typer.echo(f"Trained on: {describe_series_input(model.series_input_)}")
    else:
        typer.echo(f"Trained on: {n_train:,} rows x {model.n_features_in_} features")
    method = ", ".join(f"{k}={v}" for k, v in model.threshold_method_.items() if k not in ("method", "reason"))
    typer.echo(f"Threshold:  {model.threshold_:.6g} ({method or model.threshold_method_.get('method')}); "
               f"flags {int(model.labels_.sum()):,} training rows ({model.labels_.mean():.2%})")
    from deepad.report.fingerprint import describe_threshold

    typer.echo(f"Rule:       {describe_threshold(model)}")
    if getattr(model, "calibration_scores_", None) is not None:
        typer.echo(f"Calibrated: p-values against {len(model.calibration_scores_):,} held-out rows")
    if getattr(model, "fitted_at_", None):
        typer.echo(f"Trained at: {model.fitted_at_}")
    versions = getattr(model, "saved_versions_", {}) or {}
    if versions:
        typer.echo("Saved with: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


def _parse_rows(text: str) -> list[int]:
    """``"0,5,17"`` or ``"10-20,33"`` -> row numbers (0-based, in the given order, duplicates dropped)."""
    rows: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if sep else [int(part)]
        except ValueError:
            fail(f"--rows expects 0-based row numbers or ranges like 0,5,17 or 10-20; got {part!r}.")
        if sep and int(hi) < int(lo):
            fail(f"--rows range {part!r} ends before it starts.")
        if (int(lo) if sep else int(part)) < 0:
            fail(f"--rows must be non-negative row numbers, got {part!r}.")
        rows.extend(r for r in span if r not in rows)
    if not rows:
        fail("--rows is empty; give row numbers like 0,5,17.")
    return rows


def _read_rows(model, data: str, wanted: list[int]):
    """The wanted data rows of DATA (in the given order), read chunk by chunk; exit 2 naming a row past the end."""
    import pandas as pd

    from deepad.data.readers import iter_batches, table_columns
    from deepad.scoring import column_plan

    with _UserErrors(f"{data}: "):
        plan = column_plan(model, table_columns(data), data)
        need, last, found, offset = set(wanted), max(wanted), {}, 0
        for chunk in iter_batches(data, columns=plan.read, text_columns=plan.text_columns):
            for r in need.intersection(range(offset, offset + len(chunk))):
                found[r] = chunk.iloc[[r - offset]]
            offset += len(chunk)
            if offset > last:
                break
    absent = [r for r in wanted if r not in found]
    if absent:
        fail(f"row {absent[0]} is out of range: {data} has {offset:,} data rows (0 to {offset - 1:,}).")
    return pd.concat([found[r] for r in wanted]).set_axis(wanted, axis=0)


@app.command("explain")
def explain_rows(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(..., help="Table holding the rows: .csv/.tsv, .parquet, .jsonl, .json, .npy or .npz."),
    rows: str = typer.Option(None, "--rows", "-r", help="0-based data rows (as in `deepad score`'s row column and "
                                                        "error messages): 0,5,17 or ranges like 10-20. For images: "
                                                        "image numbers (default: the --top highest-scoring)."),
    output_dir: str = typer.Option(None, "--output-dir", "-o", help="Images: folder for the anomaly-map PNG "
                                                                   "overlays (default ./anomaly-maps)."),
    top: int = typer.Option(5, "--top", min=1, help="Contributing columns shown per row."),
    method: str = typer.Option("auto", "--method", help="auto, reconstruction, integrated_gradients, tail or "
                                                        "occlusion (see deepad.explain)."),
) -> None:
    """Show why rows of DATA score as they do: score, p-value, flag and the columns that raised the score most."""
    import warnings

    import numpy as np

    import deepad
    from deepad import thresholds
    from deepad.explain import METHOD_DESCRIPTIONS, explain, top_feature_table
    from deepad.pipeline import TabularDetector

    from deepad.data.images import is_image_source

    if is_image_source(data):
        from deepad.cli_images import explain_images

        return explain_images(model_dir, data, _parse_rows(rows) if rows else None, top, output_dir)
    if rows is None:
        fail("--rows is required for tables: give 0-based row numbers like 0,5,17.")
    wanted = _parse_rows(rows)
    with _UserErrors():
        model = deepad.load(model_dir)
    frame = _read_rows(model, data, wanted)
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scores = model.decision_function(frame)
        attributions = explain(model, frame, top_k=top, method=method)
    p = thresholds.conformal_p_values(model.p_value_reference, scores)
    tabular = isinstance(model, TabularDetector)
    ids = [c for c in model.schema_.id_columns if c in frame.columns] if tabular else []
    how = attributions.attrs["method"]
    typer.echo(f"Attributions: {how} ({METHOD_DESCRIPTIONS[how]}); positive values raised the score. "
               f"Threshold {model.threshold_:.4g}.")
    header = ["row", *ids, "score", "p_value", "anomaly", "rank", "column", "value", "attribution"]
    lines = []
    pos = {str(c): j for j, c in enumerate(attributions.columns)}
    for k, (r, pairs) in enumerate(zip(wanted, top_feature_table(attributions, top))):
        for rank, (column, value) in enumerate(pairs, 1):
            raw = frame.iloc[k][column] if tabular else frame.iloc[k, pos[column]]
            shown = "missing" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw)
            first = rank == 1
            lines.append([str(r) if first else "", *[str(frame.iloc[k][c]) if first else "" for c in ids],
                          f"{scores[k]:.4g}" if first else "", f"{p[k]:.4g}" if first else "",
                          ("yes" if scores[k] > model.threshold_ else "no") if first else "", str(rank), column,
                          shown[:30], f"{value:+.4g}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {"row", "score", "p_value", "rank", "attribution"}
    fmt = lambda cells: "  ".join(c.rjust(w) if h in right else c.ljust(w)  # noqa: E731
                                  for c, w, h in zip(cells, widths, header)).rstrip()
    typer.echo(fmt(header))
    for line in lines:
        typer.echo(fmt(line))


@app.command("report")
def report(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(..., help="Table to score and describe: .csv/.tsv, .parquet, .jsonl, .json, .npy, .npz."),
    output: str = typer.Option(..., "--output", "-o", help="HTML file to write (atomically)."),
    label_column: str = typer.Option(None, "--label-column", "-l",
                                     help="Column of DATA with known labels (1/true = anomaly): adds ROC and "
                                          "precision-recall curves; never scored."),
    top: int = typer.Option(20, "--top", min=1, help="Top anomalies listed with their attributions."),
    refractory: int = typer.Option(0, min=0, help="Time series: points after an alert during which alarms are suppressed."),
    rearm: int = typer.Option(0, min=0, help="Time series: after an alert, alerts re-arm once the score has been below "
                                             "the threshold for this many points (one alert per incident); 0: off."),
    risk: float = typer.Option(1e-4, help="Time series: SPOT risk of the adaptive threshold."),
    png: str = typer.Option(None, "--png", help="Time series: also write the plot to this PNG file."),
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
    from deepad.data.images import is_image_source

    if is_image_source(data):
        from deepad.cli_images import report_images

        return report_images(model_dir, data, output, top)
    with _UserErrors():
        model = deepad.load(model_dir)
    from deepad.report.series import build_series_report, is_series_detector

    if is_series_detector(model):
        with _UserErrors(f"{data}: "):
            build_series_report(model, data, output, label_column=label_column, risk=risk, refractory=refractory,
                                rearm=rearm, png=png, data_name=data, model_name=model_dir)
        typer.echo(f"Wrote {output}")
        return
    with _UserErrors(f"{data}: "):
        if label_column is not None and label_column not in table_columns(data):
            fail(f"{data} has no label column {label_column!r}; its columns are {table_columns(data)[:20]}.")
        frame = read_table(data)
    _say(f"Read {data}: {len(frame):,} rows x {frame.shape[1]} columns.")
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        build_report(model, frame, label_column, output, top_n=top, data_name=data, model_name=model_dir)
    typer.echo(f"Wrote {output}")


@app.command()
def stream(
    model_dir: str = typer.Argument(..., help="A saved detector (deepad train / .save) or a saved stream state "
                                              "(--save-state), which resumes where it stopped."),
    risk: float = typer.Option(1e-4, help="SPOT risk: target probability that a normal point raises an alarm."),
    refractory: int = typer.Option(0, min=0, help="Points after an alert during which alarms are suppressed."),
    rearm: int = typer.Option(0, min=0, help="After an alert, alerts re-arm only once the score has been below the "
                                             "threshold for this many points (one alert per incident); 0: off."),
    smoothing: int = typer.Option(1, min=1, help="Score = mean of the last N raw scores."),
    fixed_threshold: bool = typer.Option(False, "--fixed-threshold", help="Use the model's threshold_ instead of SPOT."),
    timestamp: str = typer.Option(None, help="Field passed through as the row's id (not scored); default: the model's "
                                             "timestamp column (deepad train on a series), else timestamp."),
    save_state: str = typer.Option(None, "--save-state", help="Directory to save the stream state to at end of input."),
) -> None:
    """Score JSON Lines or CSV rows from stdin as they arrive; write one JSON line per row to stdout.

    The format is taken from the first line ({...} = JSON Lines, otherwise a
    CSV header).  Value fields are the model's training columns when it has
    names, else every numeric field except --timestamp.  Each output line is
    {"timestamp", "score", "threshold", "alarm", "alert"}; score is null until
    the model has a full window of history.
    """
    import csv
    import json
    import os

    import numpy as np

    import deepad
    from deepad.stream import StreamScorer, default_threshold

    with _UserErrors():
        if os.path.exists(os.path.join(model_dir, "stream.json")):
            scorer = StreamScorer.load(model_dir)
        else:
            model = deepad.load(model_dir)
            scorer = StreamScorer(model, threshold=default_threshold(model, fixed_threshold), risk=risk,
                                  refractory=refractory, rearm=rearm, smoothing=smoothing)
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
            score_ = float(u.scores[0])
            out = {"timestamp": record.get(timestamp),
                   "score": score_ if np.isfinite(score_) else None,
                   "threshold": float(u.thresholds[0]) if np.isfinite(u.thresholds[0]) else None,
                   "alarm": bool(u.alarms[0]), "alert": bool(u.alerts[0])}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
        line = sys.stdin.readline()
    if save_state:
        with _UserErrors():
            scorer.save(save_state)
        if not _quiet():
            typer.echo(f"Stream state saved to {save_state} ({scorer.n_seen} points, {scorer.n_alerts} alerts, "
             f"{1e3 * scorer.latency_per_point_s:.3f} ms/point).", err=True)


@app.command("tune")
def tune_cmd(
    data: str = typer.Argument(..., help="Training table: .csv/.tsv, .parquet, .jsonl, .json, .npy or .npz."),
    output: str = typer.Option(..., "--output", "-o", help="Model directory to write (the tuned, refitted model)."),
    detector: str = typer.Option(None, "--detector", "-d", help="Detector class name (default: DEFAULT)."),
    label_column: str = typer.Option(None, "--label-column", "-l",
                                     help="Column with labels (1/true = anomaly): a stratified 30% of the labelled "
                                          "rows is the validation set (objective: --metric on it); never a feature. "
                                          "Without it: synthetic anomaly injection (see deepad.tune)."),
    trials: int = typer.Option(20, "--trials", "-n", min=1, help="Number of trials."),
    timeout: float = typer.Option(None, "--timeout", min=0.001, help="Stop starting trials after this many seconds."),
    metric: str = typer.Option("roc_auc", "--metric", help="roc_auc or average_precision."),
    space: str = typer.Option(None, "--space", help='Search space as JSON, e.g. \'{"lr": ["log", 1e-4, 1e-2]}\' '
                                                    "(format: deepad.tune); default: the detector's default space."),
    seed: int = typer.Option(0, "--seed", help="Random seed (sampler, splits, detectors)."),
) -> None:
    """Search a detector's hyper-parameters with Optuna, print the best, save the model refitted on all rows."""
    import json
    import warnings
    from pathlib import Path

    import numpy as np

    from deepad.data import read_table
    from deepad.data.preprocessing import boolean_values
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
    with _UserErrors():
        df = read_table(data)
    _say(f"Read {data}: {len(df):,} rows x {df.shape[1]} columns.")
    X_val = y_val = df_all = None
    if label_column is not None:
        if label_column not in df.columns:
            fail(f"{data} has no label column {label_column!r}; its columns are {list(df.columns)[:20]}.")
        with _UserErrors(f"{data}: label "):
            y = boolean_values(df[label_column], label_column)
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
    template = TabularDetector(cls(), contamination=0.1)  # as `deepad train` builds its model
    how = "labelled validation rows" if y_val is not None else "synthetic anomaly injection"
    _say(f"Tuning {cls.__name__}: {trials} trials{f' (at most {timeout:g} s)' if timeout else ''}, objective "
         f"{metric} on {how} ...")
    t0 = time.perf_counter()
    try:
        with _UserErrors(f"{data}: "), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = tune(template, df, search_space=search_space, X_val=X_val, y_val=y_val, n_trials=trials,
                          timeout=timeout, random_state=seed, metric=metric, refit_on=df_all)
    except typer.Exit:
        raise
    except RuntimeError as exc:  # no trial finished: every setting failed on this data
        fail(f"{data}: tuning found no working setting: {_one_line(exc)}")
    typer.echo(f"Best of {result.extra['n_complete']} trial(s) in {time.perf_counter() - t0:.1f} s: "
               f"{metric} {result.best_value:.4f} ({result.objective}).")
    typer.echo(f"Best parameters: {json.dumps(result.best_params, default=str)}")
    with _UserErrors():
        result.save(output)
    n_refit = len(df if df_all is None else df_all)
    typer.echo(f"Saved model (the best parameters refitted on all {n_refit:,} rows) to {output}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
