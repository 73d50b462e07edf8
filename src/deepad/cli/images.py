"""The image side of the CLI: ``deepad train|score|explain|report IMAGES`` and ``deepad bench --images mnist``.

The train, score, explain and report commands dispatch here when their data
argument is an image source (:func:`deepad.data.images.is_image_source`: a
folder of PNG/JPEG, one sub-folder per class, or MNIST idx files), so the
commands work on image folders as they do on tables; ``deepad bench
--images`` comes here too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from deepad.cli._common import _UserErrors, _new_detector, _quiet, _say, fail


def _parse_size(image_size: str | None):
    if not image_size:
        return None
    parts = image_size.lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        fail(f"--image-size expects HxW or one number, e.g. 64x64 or 64; got {image_size!r}.")
    if h < 1 or w < 1:
        fail(f"--image-size must be positive, got {image_size!r}.")
    return (h, w)


def _read(data: str):
    from deepad.image_pipeline import load_image_input

    with _UserErrors(f"{data}: "):
        return load_image_input(data)


def train_images(
    data: str,
    output: str,
    *,
    cls,
    kwargs: dict,
    fit_params: dict,
    contamination,
    method: str,
    fpr,
    pot_risk,
    seed: int,
    image_size: str | None,
    default_rule: bool,
) -> None:
    """``deepad train IMAGES_DIR``: fit :class:`~deepad.image_pipeline.ImagePipeline` and save it."""
    import warnings

    from deepad.image_pipeline import ImagePipeline
    from deepad.thresholds import apply_threshold_rule

    if cls is None or not getattr(cls, "_image_input", False):
        import deepad.detectors as D

        names = D.image_detector_names()
        if cls is not None:
            fail(f"{data} holds images; {cls.__name__} is a table detector. Use one of: {', '.join(names)}.")
        cls = D.ConvAutoEncoder
    size = _parse_size(image_size)
    imgs = _read(data)
    classes = "" if imgs.labels is None else f" in {len(set(imgs.labels))} class folders"
    _say(f"Read {data}: {len(imgs.names):,} images{classes}.")
    inner = _new_detector(cls, kwargs, seed)
    model = ImagePipeline(inner, target_size=size, contamination=0.1 if contamination is None else contamination)
    _say(f"Training {cls.__name__} ...")
    t0 = time.perf_counter()
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(imgs, **fit_params)
        apply_threshold_rule(model, method, fpr=fpr, pot_risk=pot_risk, default=default_rule)
    if "verbose" in inner.get_params(deep=False) and "verbose" not in kwargs:
        model.detector_.set_params(verbose=False)
        inner.set_params(verbose=False)
    n_flag = int(model.labels_.sum())
    shape = "x".join(map(str, model.image_shape_))
    typer.echo(
        f"Trained {cls.__name__} on {len(imgs.names):,} images ({shape}, C x H x W) in "
        f"{time.perf_counter() - t0:.1f} s; threshold {model.threshold_:.4g} flags {n_flag:,} of "
        f"{len(imgs.names):,} training images ({n_flag / len(imgs.names):.2%})."
    )
    _say(f"Threshold rule: {model.threshold_method_['reason']}")
    with _UserErrors():
        model.save(output)
    typer.echo(f"Saved model to {output}")


def _load_image_model(model_dir: str):
    import deepad

    with _UserErrors():
        model = deepad.load(model_dir)
    if not getattr(model, "_image_input", False):
        fail(
            f"{model_dir} is a model for tables ({type(model).__name__}); train an image model with "
            "`deepad train IMAGES_DIR`."
        )
    return model


def score_images(model_dir: str, data: str, output: str) -> None:
    """``deepad score MODEL IMAGES``: one row per image (image, [label], score, p_value, is_anomaly)."""
    import pandas as pd

    from deepad import thresholds as _thr
    from deepad.data.writers import output_format, write_frame_atomic

    with _UserErrors():
        output_format(output)
    model = _load_image_model(model_dir)
    imgs = _read(data)
    t0 = time.perf_counter()
    with _UserErrors(f"{data}: "):
        scores = model.decision_function(imgs)
    seconds = time.perf_counter() - t0
    frame = pd.DataFrame({"image": imgs.names})
    if imgs.labels is not None:
        frame["label"] = imgs.labels
    frame["score"] = scores
    frame["p_value"] = _thr.conformal_p_values(model.p_value_reference, scores)
    frame["is_anomaly"] = (scores > model.threshold_).astype(np.int64)
    with _UserErrors():
        write_frame_atomic(frame, output)
    typer.echo(
        f"Scored {len(frame):,} images in {seconds:.1f} s: {int(frame['is_anomaly'].sum()):,} flagged as "
        f"anomalies (threshold {model.threshold_:.4g}). Wrote {output}"
    )


def explain_images(model_dir: str, data: str, rows: list[int] | None, top: int, out_dir: str | None) -> None:
    """``deepad explain MODEL IMAGES``: score, p-value and an anomaly-map PNG overlay per chosen image."""
    from deepad import thresholds as _thr
    from deepad.report.images import map_description, save_overlay

    model = _load_image_model(model_dir)
    imgs = _read(data)
    with _UserErrors(f"{data}: "):
        scores = model.decision_function(imgs)
    if rows is None:
        chosen = list(np.argsort(-scores, kind="stable")[:top])
    else:
        past = [r for r in rows if r >= len(scores)]
        if past:
            fail(f"image {past[0]} is out of range: {data} has {len(scores):,} images (0 to {len(scores) - 1:,}).")
        chosen = rows
    sub = type(imgs)(
        [imgs.images[i] for i in chosen] if isinstance(imgs.images, list) else imgs.images[chosen],
        [imgs.names[i] for i in chosen],
    )
    with _UserErrors(f"{data}: "):
        maps = model.anomaly_map(sub)
        shown = model.display_images(sub)
    p = _thr.conformal_p_values(model.p_value_reference, scores[chosen])
    folder = Path(out_dir or "anomaly-maps")
    typer.echo(f"Anomaly maps: {map_description(model.detector_)} Threshold {model.threshold_:.4g}.")
    typer.echo(f"{'index':>6}  {'score':>10}  {'p_value':>8}  anomaly  overlay")
    for k, i in enumerate(chosen):
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(str(imgs.names[i])).stem)[:60]
        png = save_overlay(
            shown[k],
            maps[k],
            folder / f"{i:05d}_{stem}.png",
            title=f"{imgs.names[i]}  score {scores[i]:.4g}  p {p[k]:.3g}",
        )
        typer.echo(
            f"{i:>6}  {scores[i]:>10.4g}  {p[k]:>8.3g}  {'yes' if scores[i] > model.threshold_ else 'no':<7}  {png}"
        )


def _image_labels(imgs, data: str, label_column: str | None):
    """The known labels (1 = anomaly) ``--label-column label`` asks for: the ones the images come with."""
    import pandas as pd

    if label_column is None:
        return None
    if label_column != "label":
        fail(
            f"{data} is a set of images, which has no column {label_column!r}: for images --label-column label "
            "uses the labels they come with (class sub-folders, an .npz's y/labels array, MNIST's labels file), "
            "the label column `deepad score` writes for them."
        )
    if imgs.labels is None:
        fail(f"{data} has no labels: give a folder with one sub-folder per class, or an .npz with a y array.")
    from deepad.data.values import label_values

    try:
        return label_values(pd.Series(imgs.labels), "label")
    except ValueError:
        classes = sorted({str(v) for v in imgs.labels})
        fail(
            f"{data}: the image labels must say normal or anomaly (0/1, true/false, yes/no; 1 = anomaly), "
            f"got the classes {classes[:10]}."
        )


def report_images(model_dir: str, data: str, output: str, top: int, label_column: str | None = None) -> None:
    from deepad.report.images import build_image_report

    model = _load_image_model(model_dir)
    imgs = _read(data)
    y = _image_labels(imgs, data, label_column)
    with _UserErrors(f"{data}: "):
        build_image_report(model, imgs, output, top_n=min(top, 24), data_name=data, model_name=model_dir, y=y)
    typer.echo(f"Wrote {output}")


def bench_images(
    benchmark: str, data: str | None, detectors: str, seeds: str, out: str, threads: int, digits: str | None
) -> None:
    """``deepad bench --images mnist --data DIR``: see :mod:`deepad.bench.images`."""
    import os

    from deepad.bench.images import IMAGE_BENCHMARKS, run_mnist_benchmark

    if benchmark.lower() not in IMAGE_BENCHMARKS:
        fail(f"--images must be one of {', '.join(IMAGE_BENCHMARKS)}, got {benchmark!r}.")
    if not data:
        fail("--images mnist needs --data: the folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.")
    digit_list = list(range(10)) if not digits else [int(d) for d in digits.split(",") if d.strip()]
    if detectors.strip().upper() == "DEFAULT":
        detectors = "ConvAutoEncoder"
    os.environ["DEEPAD_NUM_THREADS"] = str(int(threads))

    def progress(row):
        if not _quiet():
            auc = (
                f"ROC-AUC {row['roc_auc']:.4f}, fit {row['fit_seconds']:.1f} s"
                if row["status"] == "ok"
                else row["error"]
            )
            typer.echo(f"{row['detector']} digit {row['digit']} seed {row['seed']}: {auc}")

    with _UserErrors():
        df = run_mnist_benchmark(data, detectors, digits=digit_list, seeds=seeds, out=out, progress=progress)
    ok = df[df["status"] == "ok"]
    for name, sub in ok.groupby("detector"):
        typer.echo(
            f"{name}: mean ROC-AUC {sub.groupby('digit')['roc_auc'].mean().mean():.4f} over "
            f"{sub['digit'].nunique()} digits x {sub['seed'].nunique()} seeds"
        )
    typer.echo(f"Results: {Path(out) / 'results.csv'}  Summary: {Path(out) / 'RESULTS.md'}")
