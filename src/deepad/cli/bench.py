"""``deepad bench``: tables (deepad.bench), the NAB corpus (--nab) and one-class MNIST (--images)."""

from __future__ import annotations

import typer

from deepad.cli._common import _one_line, _quiet, _renamed, fail

__all__ = ["bench"]


def bench(
    data: list[str] = typer.Argument(
        None,
        help="ADBench .npz files (arrays X, y), CSV/Parquet files with a label "
        "column, or folders of them (not with --nab).",
    ),
    detectors: str = typer.Option(
        "DEFAULT",
        "--detectors",
        "-d",
        help="Comma-separated: deepad names (AutoEncoder, DEFAULT), class paths "
        "(pyod.models.iforest.IForest, xgboost.XGBClassifier), each optionally "
        "with JSON params: 'KNN:{\"n_neighbors\":10}'.",
    ),
    setting: str = typer.Option("oneclass", help="unsupervised, oneclass or weak (comma-separated for several)."),
    seeds: str = typer.Option("3", help="Number of seeds (3 = seeds 0,1,2) or a comma-separated list."),
    output_dir: str = typer.Option(
        None,
        "--output-dir",
        help="Output folder (results.csv, summary.md, plots); re-running with the same folder resumes. Required.",
    ),
    out_old: str = typer.Option(None, "--out", "-o", hidden=True, help="Old name of --output-dir."),
    timeout: float = typer.Option(3600.0, help="Seconds allowed per run; a run over it is recorded as a time-out."),
    threads: int = typer.Option(1, help="CPU threads per run (torch, BLAS/OpenMP, n_jobs)."),
    jobs: int = typer.Option(1, help="Runs in parallel."),
    max_rows: int = typer.Option(10000, help="Subsample (stratified) larger data sets to this many rows."),
    labelled: str = typer.Option(None, help="Weak setting: fractions of train anomalies labelled, e.g. 0.01,0.05."),
    labelled_count: str = typer.Option(None, help="Weak setting: numbers of train anomalies labelled, e.g. 5,10."),
    label: str = typer.Option("label", help="Label column of CSV/Parquet files (1 = anomaly)."),
    retry_errors: bool = typer.Option(False, help="Re-run runs recorded as errors or time-outs."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    nab_dir: str = typer.Option(
        None,
        "--nab",
        help="Numenta Anomaly Benchmark folder (combined_windows.json + "
        "category folders): stream each detector over it and write "
        "NAB scores (deepad.bench.nab_run) to --output-dir.",
    ),
    refractory: int = typer.Option(16, min=0, help="--nab: points after an alert during which alarms are suppressed."),
    rearm: int = typer.Option(
        64,
        min=0,
        help="--nab: after an alert, alerts re-arm once the score has been below the "
        "threshold for this many points (one alert per incident); 0: off.",
    ),
    images: str = typer.Option(
        None,
        "--images",
        help="Image benchmark instead of tables: mnist (one-class MNIST, see deepad.bench.images); needs --data.",
    ),
    image_data: str = typer.Option(None, "--data", help="With --images mnist: folder with the MNIST idx files."),
    digits: str = typer.Option(None, "--digits", help="With --images mnist: normal digits to run (default 0-9)."),
) -> None:
    """Benchmark detectors on labelled data under a fixed, documented protocol (see deepad.bench.protocol).

    Each (data set, detector, setting, seed) runs in its own process; results
    are appended to OUTPUT_DIR/results.csv as they finish, and
    OUTPUT_DIR/summary.md and OUTPUT_DIR/plot_<setting>.png summarise them.
    With --nab DIR, each detector (default ConformalKNN) is streamed point
    by point over the NAB corpus and scored with NAB's three profiles,
    causally and with NAB's optimised threshold, next to null and random
    detectors (OUTPUT_DIR/summary_<name>.md, per_file_<name>.csv,
    results_<name>.json).
    """
    import os

    from deepad.bench import BenchmarkError, run_benchmark

    out = _renamed(output_dir, out_old, "--output-dir", "--out/-o")
    if out is None:
        fail("missing option --output-dir: the folder for results.csv, summary.md and the plots.")

    if images:
        if data:
            fail("give either data files or --images mnist --data DIR, not both.")
        from deepad.cli.images import bench_images

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
                summary = run_nab(
                    nab_dir,
                    name.strip(),
                    params,
                    refractory=refractory,
                    rearm=rearm,
                    out=out,
                    progress=not (quiet or _quiet()),
                )
            except (ValueError, TypeError, FileNotFoundError, json.JSONDecodeError) as exc:
                fail(f"--nab {nab_dir}: {_one_line(exc)}")
            typer.echo(nab_markdown(summary))
        return
    if not data:
        fail("give data files or folders to benchmark, or --nab DIR.")

    try:
        df = run_benchmark(
            data,
            detectors,
            setting=setting,
            seeds=seeds,
            out=out,
            labelled=labelled,
            labelled_count=labelled_count,
            max_rows=max_rows,
            timeout=timeout,
            threads=threads,
            jobs=jobs,
            label=label,
            retry_errors=retry_errors,
            quiet=quiet or _quiet(),
        )
    except BenchmarkError as exc:
        fail(str(exc))
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    typer.echo(
        f"{len(df)} runs: {n_ok} ok, {len(df) - n_ok} failed.  Results: {os.path.join(out, 'results.csv')}  "
        f"Summary: {os.path.join(out, 'summary.md')}"
    )
