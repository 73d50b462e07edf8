"""``deepad train DATA --warm-start MODEL_DIR [--retain N]``: a saved table model trained again on recent rows."""

from __future__ import annotations

import time

import typer

from deepad.cli._common import _UserErrors, _say, fail

__all__ = ["train_from_model"]


def train_from_model(
    data: str,
    output: str,
    model_dir: str,
    *,
    retain: int | None,
    params: str | None,
    calibration_fraction: float,
    tensorboard: str | None,
    read_options,
    split,
    callbacks,
) -> None:
    """Fit MODEL_DIR's settings on DATA (its last ``retain`` rows), warm-started where it can be; save to OUTPUT.

    The schema, detector, preprocessing options and threshold rule are the
    saved model's (:func:`deepad.drift.refit`); ``--params`` changes
    detector parameters for this fit (e.g. fewer epochs);
    ``--calibration-fraction`` holds out clean rows of the retained ones
    (``split``: train's ``_calibration_split``; ``callbacks``: its
    ``_tracking_callbacks``, for --tensorboard).  The version history of
    MODEL_DIR continues in OUTPUT.
    """
    import warnings

    import deepad
    from deepad.cli._common import model_text_columns
    from deepad.cli._common import _detector_params
    from deepad.data.readers import read_table
    from deepad.drift import history, refit
    from deepad.stream import is_series_detector

    with _UserErrors():
        model = deepad.load(model_dir)
    if is_series_detector(model) or getattr(model, "_image_input", False) or not hasattr(model, "preprocessor_state_"):
        fail(f"--warm-start takes a model trained on a table; {model_dir} holds a {type(model).__name__}.")
    cls = type(model.detector_)
    changes = _detector_params(params, cls)
    fit_params = callbacks(tensorboard, cls)
    with _UserErrors(f"{data}: "):
        df = read_table(data, options=read_options, keep_text=model_text_columns(model))
    _say(f"Read {data}: {len(df):,} rows x {df.shape[1]} columns.")
    missing = [c for c in model.schema_.feature_columns if c not in df.columns]
    if missing:
        fail(
            f"{data} has no column {missing[0]!r} that the model {model_dir} uses; its columns are "
            f"{[str(c) for c in df.columns][:20]}."
        )
    if retain is not None and retain < len(df):
        df = df.iloc[-retain:].reset_index(drop=True)
        _say(f"Retained the last {retain:,} rows (--retain).")
    seed = int(model.random_state) if isinstance(model.random_state, int) else 0
    df, df_cal, _ = split(df, None, calibration_fraction, seed)
    t0 = time.perf_counter()
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        new = refit(model, df, warm_start=True, retain=retain, calibration=df_cal, params=changes or None, **fit_params)
    entry = history(new)[-1]
    typer.echo(
        f"{'Warm-started' if entry['action'] == 'warm-start' else 'Refitted'} {entry['detector']} on "
        f"{entry['rows']:,} rows in {time.perf_counter() - t0:.1f} s ({entry['reason']}); threshold "
        f"{entry['threshold_before']:.4g} -> {entry['threshold']:.4g} ({entry['rule']} rule of {model_dir})."
    )
    if df_cal is not None:
        _say(f"Calibrated p-values on {len(df_cal):,} held-out rows.")
    with _UserErrors():
        new.save(output)
    typer.echo(f"Saved model to {output} (version {entry['version']}, recorded in its version history)")
