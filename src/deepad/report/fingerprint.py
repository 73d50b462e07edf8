"""What a model is: detector, parameters, data it was trained on, threshold rule and why, versions, date.

Shared by ``deepad info`` and the HTML report.  The threshold rule's reason
text lives in :mod:`deepad.thresholds` (``deepad train`` stores it with the
model); ``threshold_reason`` and ``describe_threshold`` are re-exported here.
"""

from __future__ import annotations

import json
from typing import Any

from deepad.thresholds import describe_threshold, threshold_reason

__all__ = ["threshold_reason", "describe_threshold", "model_fingerprint"]


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
    params = {
        k: _jsonable(v) for k, v in inner.get_params(deep=False).items() if not (tabular and k == "contamination")
    }  # the pipeline's own contamination rules
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
        "calibration_rows": int(len(model.calibration_scores_))
        if getattr(model, "calibration_scores_", None) is not None
        else 0,
        "trained_at": getattr(model, "fitted_at_", None),
        "versions": _versions(model),
        "epochs_run": getattr(inner, "n_epochs_", None),
    }
    out["schema"] = None
    if tabular:
        schema = model.schema_
        out["schema"] = [(str(name), str(schema.kinds[name])) for name in schema.names]
    return out
