"""What a model is: detector, parameters, data it was trained on, threshold rule and why, versions, date.

Shared by ``deepad info``, ``deepad train`` (which stores the threshold
reason) and the HTML report.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["threshold_reason", "describe_threshold", "model_fingerprint"]


def threshold_reason(method: str, value: float, *, reference: str = "training", n_reference: int | None = None,
                     default: bool = False) -> str:
    """One sentence on what a threshold rule means and when it is the right choice."""
    rows = f" ({n_reference:,} rows)" if n_reference else ""
    if method == "contamination":
        why = "the default, as no other rule was chosen; " if default else ""
        return (f"{why}flags the top {value:.2%} of the training scores (PyOD's contamination rule): right when "
                f"about that fraction of the data is anomalous; it gives no false-positive-rate guarantee.")
    if method == "fpr":
        guarantee = (f"held out of training{rows}, so on exchangeable normal data at most {value:g} of normal rows "
                     f"are flagged (conformal guarantee)" if reference == "calibration" else
                     f"in-sample{rows}, so slightly optimistic; hold out rows with --calibration-fraction for the "
                     f"conformal guarantee")
        return (f"target false-positive rate {value:g}: the threshold is the conformal quantile of the {reference} "
                f"scores, {guarantee}.")
    if method == "pot_risk":
        return (f"extreme-value tail fit (peaks over threshold, SPOT; Siffer et al., KDD 2017) of the {reference} "
                f"scores{rows} at risk {value:g}: needs no contamination guess; about {value:g} of normal rows are "
                f"expected above it.")
    if method == "value":
        return f"fixed by hand at {value:g} score units."
    return f"{method} = {value:g}"


def describe_threshold(model) -> str:
    """``threshold_method_["reason"]`` when training stored one, else a description of the rule."""
    info = dict(getattr(model, "threshold_method_", None) or {})
    if info.get("reason"):
        return str(info["reason"])
    method = str(info.get("method", "contamination"))
    value = info.get(method, getattr(model, "contamination", float("nan")))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return json.dumps(info, default=str)
    reference = str(info.get("reference", "training"))
    return threshold_reason(method, value, reference=reference)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _versions(model) -> dict[str, str]:
    """Versions the model was saved with, else those running now (a model fitted in this process)."""
    saved = dict(getattr(model, "saved_versions_", {}) or {})
    if saved:
        return saved
    from deepad.persistence import _versions as running

    return {k: f"{v} (running; model not saved)" if k == "deepad" else v for k, v in running().items()}


def model_fingerprint(model) -> dict[str, Any]:
    """Plain facts about a fitted model, for display (values are JSON-able)."""
    from deepad.pipeline import TabularDetector

    tabular = isinstance(model, TabularDetector)
    inner = model.detector_ if tabular else model
    params = {k: _jsonable(v) for k, v in inner.get_params(deep=False).items()
              if not (tabular and k == "contamination")}  # the pipeline's own contamination rules
    info = dict(getattr(model, "threshold_method_", None) or {})
    out: dict[str, Any] = {
        "detector": type(inner).__name__,
        "pipeline": "deepad.pipeline.TabularDetector" if tabular else None,
        "parameters": params,
        "training_rows": int(len(model.decision_scores_)),
        "input_columns": int(model.n_features_in_),
        "encoded_features": int(model.n_features_out_) if tabular else int(model.n_features_in_),
        "threshold": float(model.threshold_),
        "threshold_method": {k: _jsonable(v) for k, v in info.items() if k != "reason"},
        "threshold_reason": describe_threshold(model),
        "training_flag_rate": float(model.labels_.mean()),
        "calibration_rows": int(len(model.calibration_scores_)) if getattr(model, "calibration_scores_", None)
        is not None else 0,
        "trained_at": getattr(model, "fitted_at_", None),
        "versions": _versions(model),
        "epochs_run": getattr(inner, "n_epochs_", None),
    }
    out["schema"] = None
    if tabular:
        schema = model.schema_
        out["schema"] = [(str(name), str(schema.kinds[name])) for name in schema.names]
    return out
