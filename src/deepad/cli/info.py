"""``deepad info``: what a saved model is."""

from __future__ import annotations

import typer

from deepad.cli._common import _UserErrors

__all__ = ["info"]


def info(model_dir: str = typer.Argument(..., help="Model directory.")) -> None:
    """Describe a saved model: detector, parameters, columns, threshold and versions."""
    import json

    import deepad
    from deepad.pipeline import TabularDetector

    with _UserErrors():
        model = deepad.load(model_dir)
    inner = model.detector_ if isinstance(model, TabularDetector) else model
    typer.echo(f"Model:      {model_dir}")
    kind = (
        f"{type(inner).__name__} on a table (deepad.pipeline.TabularDetector)"
        if isinstance(model, TabularDetector)
        else type(model).__name__
    )
    typer.echo(f"Detector:   {kind}")
    params = {
        k: v
        for k, v in inner.get_params(deep=False).items()
        if not (isinstance(model, TabularDetector) and k == "contamination")
    }  # the pipeline's threshold rules
    typer.echo(f"Parameters: {json.dumps(params, default=str)}")
    n_train = len(model.decision_scores_)
    if isinstance(model, TabularDetector):
        typer.echo(
            f"Trained on: {n_train:,} rows, {model.n_features_in_} columns -> {model.n_features_out_} encoded features"
        )
        typer.echo("Columns:\n  " + model.schema_.summary().replace("\n", "\n  "))
    elif getattr(model, "_image_input", False):
        typer.echo(f"Trained on: {n_train:,} images of {'x'.join(map(str, model.image_shape_))} (C x H x W)")
    elif getattr(model, "series_input_", None):
        from deepad.cli.series import describe_series_input

        typer.echo(f"Trained on: {describe_series_input(model.series_input_)}")
    else:
        typer.echo(f"Trained on: {n_train:,} rows x {model.n_features_in_} features")
    method = ", ".join(f"{k}={v}" for k, v in model.threshold_method_.items() if k not in ("method", "reason"))
    typer.echo(
        f"Threshold:  {model.threshold_:.6g} ({method or model.threshold_method_.get('method')}); "
        f"flags {int(model.labels_.sum()):,} training rows ({model.labels_.mean():.2%})"
    )
    from deepad.thresholds import describe_threshold

    typer.echo(f"Rule:       {describe_threshold(model)}")
    if getattr(model, "calibration_scores_", None) is not None:
        typer.echo(f"Calibrated: p-values against {len(model.calibration_scores_):,} held-out rows")
    if getattr(model, "fitted_at_", None):
        typer.echo(f"Trained at: {model.fitted_at_}")
    versions = getattr(model, "saved_versions_", {}) or {}
    if versions:
        typer.echo("Saved with: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
