"""``deepad train``: a table, an image folder or a time series in, a saved model out."""

from __future__ import annotations

import time

import typer

from deepad.cli._common import (
    _UserErrors,
    _column_kinds,
    _detector_class,
    _detector_params,
    _new_detector,
    _option_name,
    _quiet,
    _refuse_image_detector,
    _refuse_options,
    _say,
    _split_names,
    fail,
    with_read_options,
)

__all__ = ["train", "DEFAULT_MAX_TRAIN_ROWS"]

#: rows DEFAULT trains on unless --max-train-rows says otherwise (benchmarks/large_inputs.md: fit time and memory);
#: within them its kNN members search at most LocalGlobalEnsemble.max_reference (20,000) rows (issue 17)
DEFAULT_MAX_TRAIN_ROWS = 50_000


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
        fail(
            f"--calibration-fraction {fraction:g} holds out {n_cal} clean rows of {len(df):,}; at least 20 are "
            f"needed for calibrated p-values. Raise it or train on more rows."
        )
    if len(df) - n_cal < 20:
        fail(f"--calibration-fraction {fraction:g} leaves only {len(df) - n_cal} rows to train on.")
    held = np.zeros(len(df), dtype=bool)
    held[np.random.default_rng(seed).choice(candidates, size=n_cal, replace=False)] = True
    return df[~held].reset_index(drop=True), df[held].reset_index(drop=True), None if y is None else y[~held]


@with_read_options
def train(
    data: str = typer.Argument(..., help="Training table: .csv/.tsv, .xlsx, .parquet, .jsonl, .json, .npy or .npz."),
    output: str = typer.Option(..., "--output", "-o", help="Model directory to write (replaced atomically)."),
    detector: str = typer.Option(
        None, "--detector", "-d", help="Detector class name (default: deepad.detectors.DEFAULT)."
    ),
    label_column: str = typer.Option(
        None,
        "--label-column",
        "-l",
        help="Label column (1/true = anomaly, 0/false = normal, blank = unknown): never a feature; used to report "
        "ROC-AUC on the training data, or as weak labels by detectors that learn from them (BoostedDetector, "
        "DeepSAD, DevNet), which then report precision at the alert budget on held-out labelled rows.",
    ),
    label_holdout: float = typer.Option(
        None,
        "--label-holdout",
        min=0.0,
        max=0.9,
        help="With weak labels: hold out this share of the labelled rows (stratified; default 0.2), fit on the "
        "rest, print precision / recall / AUC-PR at the alert budget on them, then refit on all rows. 0: skip.",
    ),
    exclude: list[str] = typer.Option(
        None, "--exclude", "-x", help="Column(s) to leave out; repeat or comma-separate."
    ),
    types: list[str] = typer.Option(
        None,
        "--type",
        "-t",
        help="Declare a column's kind, COLUMN=KIND (numeric, categorical, boolean, "
        "datetime, id, excluded); repeatable.",
    ),
    contamination: float = typer.Option(
        None, "--contamination", "-c", help="Flag this fraction of the training rows (default 0.1)."
    ),
    fpr: float = typer.Option(
        None,
        "--fpr",
        help="Instead: threshold for this false-positive rate on the training scores "
        "(or the --calibration-fraction rows); implies --threshold fpr "
        "(default 0.01 there).",
    ),
    threshold: str = typer.Option(
        None,
        "--threshold",
        help="Threshold rule: contamination (flag --contamination of the training rows; the "
        "default), fpr (target false-positive rate --fpr) or pot (extreme-value "
        "peaks-over-threshold tail fit at --pot-risk; needs no contamination guess). "
        "Stored with the model and shown by `deepad info`.",
    ),
    pot_risk: float = typer.Option(
        None,
        "--pot-risk",
        help="With --threshold pot: expected fraction of normal rows above the threshold (default 0.001).",
    ),
    calibration_fraction: float = typer.Option(
        0.0,
        "--calibration-fraction",
        help="Hold out this fraction of the training rows (never known "
        "anomalies): fit on the rest, then p-values and fpr/pot "
        "thresholds use the held-out scores (conformal calibration).",
    ),
    max_train_rows: int = typer.Option(
        None,
        "--max-train-rows",
        min=0,
        help="Train on a uniform random sample (--seed) of at most this many rows; the note and the model "
        "metadata say so. DEFAULT samples 50,000 rows of a larger table unless given (its kNN members then "
        "search 20,000 of them: max_reference); 0: all rows.",
    ),
    tensorboard: str = typer.Option(
        None,
        "--tensorboard",
        help="Log a neural detector's per-epoch losses to this TensorBoard directory (pip install 'deepad[tracking]').",
    ),
    params: str = typer.Option(None, "--params", "-p", help="Detector parameters as JSON, e.g. '{\"epochs\": 50}'."),
    scaling: str = typer.Option("standard", "--scaling", help="standard, robust, minmax or none."),
    category_encoding: str = typer.Option(
        "rarity",
        "--category-encoding",
        help="Tables: 'rarity' scales each category's one-hot column so a rare category lies as far out as a "
        "normal value with the same tail probability; 'onehot' keeps 0/1 (what models before issue 19 used).",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Random seed (when the detector has random_state and --params does not set it)."
    ),
    image_size: str = typer.Option(
        None,
        "--image-size",
        help="Images: resize every image to HxW (e.g. 64x64); needed when the training images differ in size.",
    ),
    timestamp_column: str = typer.Option(
        None,
        "--timestamp-column",
        help="Time series: the timestamp column (default: one named timestamp/time/"
        "datetime/date/ts, else the first column).",
    ),
    resample: str = typer.Option(
        None,
        "--resample",
        help="Time series: grid step, e.g. 5min or 1h (default: the "
        "median spacing of the timestamps); values are averaged "
        "per step.",
    ),
    fill_limit: int = typer.Option(
        3,
        "--fill-limit",
        min=0,
        help="Time series: fill gaps of at most this many steps by time interpolation; "
        "longer gaps are left out, never invented.",
    ),
    warm_start: str = typer.Option(
        None,
        "--warm-start",
        help="Train the table model in this directory again on DATA: its schema, detector, preprocessing and "
        "threshold rule; neural detectors continue from its weights, others refit (said). Its version history "
        "continues in OUTPUT.",
    ),
    retain: int = typer.Option(
        None, "--retain", min=1, help="Train on the last N rows of DATA only (a retention window of recent rows)."
    ),
    read_options=None,
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
    from deepad.data.values import label_values
    from deepad.data.writers import same_file as _same_file
    from deepad.pipeline import TabularDetector
    from deepad.thresholds import apply_threshold_rule, threshold_rule

    if contamination is not None and fpr is not None:
        fail("give --contamination or --fpr, not both.")
    with _UserErrors():
        method = threshold_rule(
            threshold,
            contamination=contamination,
            fpr=fpr,
            pot_risk=pot_risk,
            calibration_fraction=calibration_fraction,
            flag=_option_name,
        )
    if _same_file(Path(data), Path(output)):
        fail(f"the model directory {output} is the data file {data}.")
    if warm_start is not None:  # issue 20: a saved model trained again on recent rows (deepad.drift.refit)
        from deepad.cli._refit import train_from_model

        given = {"--detector": detector, "--label-column": label_column, "--exclude": exclude or None}
        given.update(
            {"--type": types or None, "--contamination": contamination, "--fpr": fpr, "--threshold": threshold}
        )
        given.update({"--pot-risk": pot_risk, "--max-train-rows": max_train_rows})
        given.update({"--scaling": None if scaling == "standard" else scaling, "--image-size": image_size})
        given.update({"--category-encoding": None if category_encoding == "rarity" else category_encoding})
        given.update({"--timestamp-column": timestamp_column, "--resample": resample})
        _refuse_options(given, "a new model", f"--warm-start takes them from {warm_start} (--params may change it)")
        return train_from_model(
            data, output, warm_start, retain=retain, params=params, calibration_fraction=calibration_fraction,
            tensorboard=tensorboard, read_options=read_options, split=_calibration_split, callbacks=_tracking_callbacks,
        )  # fmt: skip
    from deepad.data.images import is_image_source

    if is_image_source(data):  # a folder of images or MNIST idx files: the image pipeline
        from deepad.cli.images import train_images

        _refuse_options(
            {
                "--label-column": label_column,
                "--exclude": exclude or None,
                "--type": types or None,
                "--calibration-fraction": calibration_fraction or None,
                "--scaling": None if scaling == "standard" else scaling,
                "--category-encoding": None if category_encoding == "rarity" else category_encoding,
                "--timestamp-column": timestamp_column,
                "--resample": resample,
                "--fill-limit": None if fill_limit == 3 else fill_limit,
                "--retain": retain,
            },
            "tables and series",
            f"{data} is a set of images (scaled to [0, 1] and learnt as they are)",
        )
        cls = _detector_class(detector) if detector else None
        image_cls = cls or _detector_class("ConvAutoEncoder")
        return train_images(
            data,
            output,
            cls=cls,
            kwargs=_detector_params(params, image_cls),
            fit_params=_tracking_callbacks(tensorboard, image_cls),
            contamination=contamination,
            method=method,
            fpr=fpr,
            pot_risk=pot_risk,
            seed=seed,
            image_size=image_size,
            default_rule=threshold is None and fpr is None,
        )
    cls = _detector_class(detector)
    _refuse_image_detector(cls, data)
    kwargs = _detector_params(params, cls)
    fit_params = _tracking_callbacks(tensorboard, cls)
    from deepad.cli.series import is_series_class, train_series

    inner = _new_detector(cls, kwargs, seed)
    series_only = [
        o
        for o, v in (
            ("--timestamp-column", timestamp_column),
            ("--resample", resample),
            ("--fill-limit", None if fill_limit == 3 else fill_limit),
        )
        if v is not None
    ]
    if is_series_class(inner):
        table_only = [
            o
            for o, v in (
                ("--type", types),
                ("--calibration-fraction", calibration_fraction or None),
                ("--scaling", None if scaling == "standard" else scaling),
                ("--category-encoding", None if category_encoding == "rarity" else category_encoding),
                ("--image-size", image_size),
                ("--retain", retain),
            )
            if v
        ]
        if table_only:
            verb = "applies" if len(table_only) == 1 else "apply"
            fail(
                f"{', '.join(table_only)} {verb} to tables; {cls.__name__} reads a time series (it scales its "
                f"own inputs). Use --exclude, --timestamp-column, --resample or --fill-limit."
            )
        return train_series(
            data,
            output,
            inner=inner,
            label_column=label_column,
            excluded=_split_names(exclude),
            timestamp=timestamp_column,
            resample=resample,
            fill_limit=fill_limit,
            contamination=contamination,
            method=method,
            fpr=fpr,
            pot_risk=pot_risk,
            default_rule=threshold is None and fpr is None,
            fit_params=fit_params,
            read_options=read_options,
        )
    if series_only:
        verb = "applies" if len(series_only) == 1 else "apply"
        fail(
            f"{', '.join(series_only)} {verb} to time-series detectors (ConformalKNN, GRUForecaster, "
            f"TCNAutoEncoder, RollingZScore); {cls.__name__} reads a table."
        )
    type_map = _column_kinds(types)
    excluded = _split_names(exclude)
    keep = [c for c, k in type_map.items() if k in ("categorical", "id")]
    with _UserErrors():
        df = read_table(data, options=read_options, keep_text=keep)
    if retain is not None and retain < len(df):  # issue 20: a retention window of the most recent rows
        df = df.iloc[-retain:].reset_index(drop=True)
    how = df.attrs.get("deepad_read") or {}
    read_notes = "; ".join(f"{c}: {h}" for c, h in list(how.items())[:8]) + (" ..." if len(how) > 8 else "")
    _say(f"Read {data}: {len(df):,} rows x {df.shape[1]} columns{f' ({read_notes})' if how else ''}.")
    y = None
    if label_column is not None:
        if label_column not in df.columns:
            fail(f"{data} has no label column {label_column!r}; its columns are {list(df.columns)[:20]}.")
        with _UserErrors(f"{data}: label "):
            y = label_values(df[label_column], label_column)
    with _UserErrors(f"{data}: "):
        schema = infer_schema(
            df, exclude=[c for c in excluded if c != label_column], types=type_map, label=label_column
        )
    df, df_cal, y = _calibration_split(df, y, calibration_fraction, seed)
    if not _quiet():
        typer.echo("Columns:\n  " + schema.summary().replace("\n", "\n  "))
    for col in schema.columns:
        if col["kind"] == "id" and col["name"] not in type_map and not _quiet():
            typer.echo(f"note: column {col['name']!r} excluded as an id: {col['reason']}.", err=True)
    limit = max_train_rows
    if limit is None and cls is _detector_class(None):  # fit time n x max_reference, and the rows held in memory
        limit = DEFAULT_MAX_TRAIN_ROWS
    model = TabularDetector(
        inner,
        schema=schema,
        scaling=None if scaling.lower() == "none" else scaling,
        category_encoding=category_encoding,
        contamination=0.1 if contamination is None else contamination,
        max_train_rows=limit or None,
        random_state=seed,
    )
    use_labels = y is not None and cls._uses_labels
    if label_holdout is not None and not use_labels:
        fail(
            "--label-holdout measures what weak labels bought; it needs --label-column and a detector that learns "
            f"from labels (BoostedDetector, DeepSAD, DevNet), not {cls.__name__}"
            + ("" if y is None else " (which trains without labels: the ROC-AUC it prints is already out of sample)")
            + "."
        )
    from deepad.cli import _holdout

    if use_labels and (problem := _holdout.check_weak_labels(y, label_column, data)):
        fail(problem)
    from deepad.data.progress import show_progress

    def fit(m, rows, labels) -> None:
        with _UserErrors(f"{data}: "), warnings.catch_warnings(), show_progress(not _quiet()):
            warnings.simplefilter("ignore", UserWarning)
            m.fit(rows, np.where(np.isnan(labels), -1, labels) if use_labels else None, **fit_params)
            if df_cal is not None:
                m.calibrate(df_cal)
            apply_threshold_rule(m, method, fpr=fpr, pot_risk=pot_risk, default=threshold is None and fpr is None)

    holdout = None
    fraction = _holdout.DEFAULT_LABEL_HOLDOUT if label_holdout is None else float(label_holdout)
    if use_labels and fraction > 0:
        held, why = _holdout.holdout_mask(y, fraction, seed)
        if held is None:
            typer.echo(f"note: {why}.", err=True)
        else:
            from sklearn.base import clone

            _say(
                f"Training {cls.__name__} with weak labels on {int((~held).sum()):,} rows, holding out {int(held.sum()):,} ..."
            )
            probe = clone(model)
            fit(probe, df[~held].reset_index(drop=True), y[~held])
            rows = df[held].reset_index(drop=True)
            with _UserErrors(f"{data}: "):
                scores, flagged = probe.decision_function(rows), probe.predict(rows)
            holdout = _holdout.holdout_figures(y[held], scores, flagged, fraction, seed)
            typer.echo("What the labels bought: " + _holdout.describe_holdout(holdout) + ".")
            _say(f"Refitting on all {len(df):,} rows ...")
    if holdout is None:
        _say(f"Training {cls.__name__}{' with weak labels' if use_labels else ''} ...")
    t0 = time.perf_counter()
    fit(model, df, y)
    seconds = time.perf_counter() - t0
    if holdout is not None:
        model.label_holdout_ = holdout
    if "verbose" in inner.get_params(deep=False) and "verbose" not in kwargs:  # progress bars were for this run only
        model.detector_.set_params(verbose=False)
        inner.set_params(verbose=False)
    n_flag, n_fit = int(model.labels_.sum()), len(model.labels_)
    if model.train_sample_:
        why = "--max-train-rows" if max_train_rows else "DEFAULT's cap; --max-train-rows 0 trains on all"
        typer.echo(
            f"note: trained on a uniform random sample of {n_fit:,} of {len(df):,} rows (seed {seed}; {why}); "
            f"the training scores and the threshold are the sample's. Saved with the model (train_sample_)."
        )
    typer.echo(
        f"Trained {cls.__name__}{' (refitted on all rows)' if holdout is not None else ''} on {n_fit:,} rows ({model.n_features_out_} encoded features) in {seconds:.1f} s; "
        f"threshold {model.threshold_:.4g} flags {n_flag:,} of {n_fit:,} training rows ({n_flag / n_fit:.2%})."
    )
    _say(f"Threshold rule: {model.threshold_method_['reason']}")
    if df_cal is not None:
        _say(f"Calibrated p-values on {len(df_cal):,} held-out rows.")
    else:
        _say(
            "Not calibrated: `deepad monitor` reports the score and flag-rate drift tests but leaves them out of its "
            "verdict (against training scores they raise false alarms; docs/drift.md). Use --calibration-fraction "
            "0.2, or `deepad recalibrate` on clean rows later."
        )
    if tensorboard:
        _say(f"TensorBoard logs in {tensorboard} (tensorboard --logdir {tensorboard}).")
    if y is not None:
        from sklearn.metrics import average_precision_score, roc_auc_score

        if model.train_sample_:
            y = y[model.sample_index]
        known = ~np.isnan(y)
        if known.any() and len(np.unique(y[known])) == 2:
            auc = roc_auc_score(y[known], model.decision_scores_[known])
            ap = average_precision_score(y[known], model.decision_scores_[known])
            how = "labels used as weak supervision" if use_labels else "labels not used for training"
            typer.echo(
                f"Training ROC-AUC against {label_column!r}: {auc:.4f} (average precision {ap:.4f}; "
                f"on the {model.training_scores_kind()}, {how})."
            )
        else:
            typer.echo(f"note: label column {label_column!r} has a single class; no ROC-AUC.")
    with _UserErrors():
        model.save(output)
    typer.echo(f"Saved model to {output}")
