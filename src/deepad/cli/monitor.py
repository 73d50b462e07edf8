"""``deepad monitor``: has the data moved away from what the model learned?  A JSON or HTML drift report."""

from __future__ import annotations

import typer

from deepad.cli._common import (
    _output_directory_exists,
    _quiet,
    _refuse_options,
    _UserErrors,
    fail,
    model_text_columns,
    with_read_options,
)

__all__ = ["monitor"]


@with_read_options
def monitor(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(..., help="Recent rows to test: .csv/.tsv, .xlsx, .parquet, .jsonl, .json, .npy, .npz."),
    output: str = typer.Option(
        None, "--output", "-o", help="Report file: .json, or .html (a page with plots); default: JSON on stdout."
    ),
    window: int = typer.Option(
        None, "--window", min=1, help="Also test consecutive windows of this many rows (file order): drift over time."
    ),
    time_column: str = typer.Option(
        None, "--time-column", help="Also test windows by this timestamp column of DATA (see --every)."
    ),
    every: str = typer.Option(
        None,
        "--every",
        help="With --time-column: window length, a fixed frequency like 1h, 6h, 1D, 7D "
        "(default: the time span in 10 equal periods).",
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of the drift verdict, in (0, 1)."),
    correction: str = typer.Option(
        "holm", "--correction", help="Multiple-testing correction of the per-feature tests: holm or bh."
    ),
    max_rows: int = typer.Option(
        500, "--mmd-rows", min=10, help="Rows per side of the multivariate test (MMD's cost grows as the square)."
    ),
    multivariate: str = typer.Option(
        None,
        "--multivariate",
        help="The joint test: c2st (a classifier two-sample test; the default), mmd (kernel MMD, permutations), "
        "both, or none.",
    ),
    weights: str = typer.Option(
        None,
        "--weights",
        help="Weighted Bonferroni over the sections, FEATURES,MULTIVARIATE,SCORE (e.g. 0.5,0.2,0.3); "
        "default: equal weights.",
    ),
    numeric_test: str = typer.Option(
        None,
        "--numeric-test",
        help="Test of each numeric column: ks+lepage (the default: twice the smaller p-value of the two), ks (any "
        "change of its distribution), lepage (location and scale, a rank test), or ks+mood.",
    ),
    tail_quantiles: str = typer.Option(
        None,
        "--tail-quantiles",
        help="Reference score quantiles, comma-separated in (0, 1) (e.g. 0.9,0.99): the score section also tests "
        "for an excess of new rows above each; default: none.",
    ),
    score_in_verdict: bool = typer.Option(
        None,
        "--score-in-verdict/--no-score-in-verdict",
        help="Count the score section in the verdict; default: only when the model's reference scores are held out "
        "of training (trained with --calibration-fraction, or recalibrated). Training scores as the reference "
        "raise false alarms.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the MMD subsample and permutations."),
    read_options=None,
) -> None:
    """Test DATA (no labels needed) for drift against the data the model learned from; exit 0 either way.

    Per feature column (numeric: KS and Lepage, or the test --numeric-test names;
    categorical, boolean: chi-squared; datetime: KS of hour, weekday,
    month; missing rate: Fisher), jointly (C2ST on the encoded features) and
    on the model's own scores (score distribution and flag rate against the
    reference scores; with --tail-quantiles, an excess of rows above those
    quantiles of the reference scores). The report's
    top level is "drift": true/false and "p_value". The HTML page adds a
    drift-over-time plot over windows of DATA (--window, --time-column; 10
    blocks in file order by default), the per-feature table and the flag-rate
    chart. See docs/drift.md.
    """
    import json
    import sys
    import warnings
    from pathlib import Path

    import numpy as np

    import deepad
    from deepad.data.readers import read_table
    from deepad.data.writers import same_file as _same_file
    from deepad.drift import (
        CORRECTIONS,
        DEFAULT_MULTIVARIATE,
        DEFAULT_NUMERIC_TEST,
        MULTIVARIATE,
        check_numeric_test,
        check_tail_quantiles,
        detect_drift,
    )
    from deepad.drift.core import json_safe
    from deepad.drift.windows import drift_over_windows, split_windows

    kind = None if output is None else Path(output).suffix.lower()
    if kind not in (None, ".json", ".html", ".htm"):
        fail(f"the report {output} must end in .json or .html.")
    if output is not None:
        if _same_file(Path(data), Path(output)):
            fail(f"the report {output} is the data file {data}.")
        _output_directory_exists(output)
    if window is not None and time_column is not None:
        fail("give --window or --time-column, not both.")
    _refuse_options({"--every": every if time_column is None else None}, "--time-column", "none was given")
    if not 0.0 < alpha < 1.0:
        fail(f"--alpha must be in (0, 1), got {alpha}.")
    if correction.lower() not in CORRECTIONS:  # the library's lists: one rule in one place
        fail(f"--correction must be {' or '.join(CORRECTIONS)}, got {correction!r}.")
    multivariate = DEFAULT_MULTIVARIATE if multivariate is None else multivariate
    numeric_test = DEFAULT_NUMERIC_TEST if numeric_test is None else numeric_test
    if multivariate.lower() not in (*MULTIVARIATE, "none"):
        fail(f"--multivariate must be {', '.join(MULTIVARIATE)} or none, got {multivariate!r}.")
    joint = False if multivariate.lower() == "none" else multivariate.lower()
    section_weights = None
    if weights is not None:
        try:
            values = [float(v) for v in weights.split(",")]
        except ValueError:
            values = []
        if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
            fail(f"--weights takes three non-negative numbers FEATURES,MULTIVARIATE,SCORE, got {weights!r}.")
        section_weights = dict(zip(("features", "multivariate", "score"), values))
    with _UserErrors():  # the library's own checks, the option named in the message
        numeric = check_numeric_test(numeric_test, what="--numeric-test")
        tails = (
            () if tail_quantiles is None else check_tail_quantiles(tail_quantiles.split(","), what="--tail-quantiles")
        )
    with _UserErrors():
        model = deepad.load(model_dir)
    from deepad.stream import is_series_detector

    if is_series_detector(model) or getattr(model, "_image_input", False):
        fail(f"{model_dir} holds a {type(model).__name__}; deepad monitor tests table models.")
    tabular = hasattr(model, "preprocessor_state_")
    if time_column is not None and not tabular:
        fail(f"--time-column applies to models trained on tables; {model_dir} was fitted on arrays (use --window).")
    with _UserErrors(f"{data}: "):
        frame = read_table(data, options=read_options, keep_text=model_text_columns(model))
        if time_column is not None and time_column not in frame.columns:
            fail(f"{data} has no time column {time_column!r}; its columns are {[str(c) for c in frame.columns][:20]}.")
        X = frame if tabular else frame.to_numpy(dtype=np.float64)
    if not _quiet():  # on stderr: stdout may be the JSON report
        typer.echo(f"Read {data}: {len(frame):,} rows x {frame.shape[1]} columns.", err=True)
    options = dict(alpha=alpha, correction=correction.lower(), max_rows=max_rows, random_state=seed)
    options.update(multivariate=joint, weights=section_weights, numeric_test=numeric, tail_quantiles=tails)
    options.update(score_in_verdict=score_in_verdict)
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # extra and unseen: the report says what it ignores
        report = detect_drift(model, X, **options)
        document = report.to_dict()
        if "score" in report.unavailable and not _quiet():
            typer.echo(f"Score section: {report.unavailable['score']}.", err=True)
        want_windows = window is not None or time_column is not None or kind in (".html", ".htm")
        if want_windows:
            parts, notes = split_windows(frame, window=window, time_column=time_column, every=every)
            # windows cut by a time column the model uses: its hour/weekday/month move by construction
            features = set(model.schema_.feature_columns) if tabular else set()
            ignored = [time_column] if time_column in features else []
            document["windows"] = drift_over_windows(model, X, parts, **options, ignore=ignored)
            if ignored:
                document["windows_ignore"] = ignored
            document["windows_by"] = notes.pop("by")
            document.update({f"windows_{k}": v for k, v in notes.items()})
        document = json_safe(document)
    if output is None:
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
        return
    with _UserErrors():
        if kind == ".json":
            from deepad.data.writers import AtomicOutput

            with AtomicOutput(Path(output), during="writing the drift report") as part, part.writing():
                part.path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        else:
            from deepad.report.drift import write_drift_html

            write_drift_html(
                output,
                document,
                reference=np.asarray(model.p_value_reference, dtype=np.float64),
                scores=report.scores,
                model_name=model_dir,
                data_name=data,
            )
    typer.echo(report.summary())
    typer.echo(f"Wrote {output}")
