"""``deepad info``: what a saved model is, from its metadata alone (never its weights)."""

from __future__ import annotations

import typer

from deepad.cli._common import _UserErrors

__all__ = ["info"]

_PIPELINES = {
    "deepad.pipeline.TabularDetector": "on a table (deepad.pipeline.TabularDetector)",
    "deepad.image_pipeline.ImagePipeline": "on images (deepad.image_pipeline.ImagePipeline)",
}


#: deepad.data.schema.KINDS, the order Schema.summary lists them in (importing deepad.data would import
#: scikit-learn: 2.4 s of the 5 s `deepad info` took; tests/integration/test_cli_large.py checks they agree)
_KINDS = ("numeric", "categorical", "boolean", "datetime", "id", "excluded")


def _columns(state, model_dir: str) -> str:
    """``Schema.summary()`` of the saved schema, read from the JSON: one line per kind."""
    from deepad.cli._common import fail

    try:
        columns = [(str(c["name"]), str(c["kind"])) for c in state["schema"]["columns"]]
    except (KeyError, TypeError):
        fail(f"{model_dir}: preprocessor_state_ has no readable schema; the model file is damaged.")
    lines = []
    for kind in _KINDS:
        names = [n for n, k in columns if k == kind]
        if names:
            shown = ", ".join(names[:12]) + (f", ... (+{len(names) - 12})" if len(names) > 12 else "")
            lines.append(f"{kind} ({len(names)}): {shown}")
    return "\n".join(lines)


def info(model_dir: str = typer.Argument(..., help="Model directory.")) -> None:
    """Describe a saved model: detector, parameters, columns, threshold and versions.

    Reads only the model's metadata (model.json and the array headers), so it
    is instant however large the model; `deepad score` checks the weights.
    """
    import json
    from types import SimpleNamespace

    from deepad.persistence.summary import read_summary
    from deepad.thresholds import describe_threshold

    with _UserErrors():
        summary = read_summary(model_dir)
    attrs = summary.attributes
    pipeline = summary.class_path in _PIPELINES and summary.inner is not None
    inner = summary.inner if pipeline else summary
    typer.echo(f"Model:      {model_dir}")
    kind = f"{inner.class_name} {_PIPELINES[summary.class_path]}" if pipeline else summary.class_name
    typer.echo(f"Detector:   {kind}")
    params = {k: v for k, v in inner.params.items() if not (pipeline and k == "contamination")}
    typer.echo(f"Parameters: {json.dumps(params, default=str)}")  # the pipeline's contamination is its threshold's
    n_train = summary.training_rows
    if summary.class_path == "deepad.pipeline.TabularDetector":
        typer.echo(
            f"Trained on: {n_train:,} rows, {attrs.get('n_features_in_')} columns -> "
            f"{attrs.get('n_features_out_')} encoded features"
        )
        typer.echo("Columns:\n  " + _columns(attrs.get("preprocessor_state_"), model_dir).replace("\n", "\n  "))
    elif attrs.get("image_shape_") is not None:
        shape = "x".join(map(str, attrs["image_shape_"]))
        typer.echo(f"Trained on: {n_train:,} images of {shape} (C x H x W)")
    elif attrs.get("series_input_"):
        from deepad.cli.series import describe_series_input

        typer.echo(f"Trained on: {describe_series_input(attrs['series_input_'])}")
    else:
        typer.echo(f"Trained on: {n_train:,} rows x {attrs.get('n_features_in_')} features")
    sample = attrs.get("train_sample_")
    if isinstance(sample, dict) and {"rows", "of", "seed"} <= set(sample):
        typer.echo(
            f"Sampled:    a uniform random sample of {sample['rows']:,} of {sample['of']:,} rows (seed "
            f"{sample['seed']}); the training scores and the threshold are the sample's"
        )
    holdout = attrs.get("label_holdout_")
    if isinstance(holdout, dict) and "precision" in holdout:
        from deepad.cli._holdout import describe_holdout

        typer.echo(f"Labels:     {describe_holdout(holdout)}; then refitted on all rows")
    method_info = attrs.get("threshold_method_") if isinstance(attrs.get("threshold_method_"), dict) else {}
    shown = ("method", "reason", "flagged", "training_rows", "scores")
    method = ", ".join(f"{k}={v}" for k, v in method_info.items() if k not in shown)
    typer.echo(
        f"Threshold:  {float(attrs['threshold_']):.6g} ({method or method_info.get('method')}); "
        f"flags {summary.flagged:,} of {n_train:,} training rows ({summary.flagged / max(n_train, 1):.2%})"
    )
    described = SimpleNamespace(threshold_method_=method_info, contamination=summary.params.get("contamination"))
    typer.echo(f"Rule:       {describe_threshold(described)}")
    if summary.calibration_rows is not None:
        typer.echo(f"Calibrated: p-values against {summary.calibration_rows:,} held-out rows")
    if attrs.get("fitted_at_"):
        typer.echo(f"Trained at: {attrs['fitted_at_']}")
    if summary.versions:
        typer.echo("Saved with: " + ", ".join(f"{k} {v}" for k, v in summary.versions.items()))
    versions = attrs.get("version_history_")
    if isinstance(versions, list) and versions:
        typer.echo("History:")
        for entry in versions:
            typer.echo("  " + _describe_version(entry))


def _describe_version(entry) -> str:
    """One line per entry of ``version_history_`` (deepad.drift: recalibrate, warm-start, refit)."""
    if not isinstance(entry, dict):
        return str(entry)
    head = f"v{entry.get('version', '?')} {entry.get('action', '?')}"
    if entry.get("at"):
        head += f" at {entry['at']}"
    parts = []
    if entry.get("rows") is not None:
        parts.append(f"{int(entry['rows']):,} rows")
    if entry.get("retain") is not None:
        parts.append(f"retain {entry['retain']:,}")
    if isinstance(entry.get("threshold"), (int, float)):
        before = entry.get("threshold_before")
        moved = f"{before:.6g} -> " if isinstance(before, (int, float)) else ""
        parts.append(f"threshold {moved}{entry['threshold']:.6g}")
    if entry.get("fpr") is not None:
        parts.append(f"fpr {entry['fpr']:g}")
    if entry.get("rule"):
        parts.append(f"rule {entry['rule']}")
    if entry.get("note"):
        parts.append(f"note: {entry['note']}")
    return head + (": " + ", ".join(parts) if parts else "")
