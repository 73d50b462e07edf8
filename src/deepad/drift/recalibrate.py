"""``recalibrate``: re-fit a model's reference scores and threshold on recent rows the user declares clean.

When normal has moved but the model still ranks rows well (the scores
crept, the flag rate went from 1 % to 12 %), retraining is not always
needed: the *threshold* is what broke.  Conformal calibration restores it:
score ``n`` recent clean rows, make them the reference of p-values
(``calibration_scores_``), and set the threshold to the conformal quantile
of those scores for the target false-positive rate ``a`` -- the
``ceil((n + 1)(1 - a))``-th smallest (:func:`deepad.thresholds.fpr_threshold`).
On new rows exchangeable with the calibration rows, at most ``a`` of the
normal rows are then flagged (Vovk et al., 2005; the rate a given
calibration set gives is Beta-distributed around ``a`` with a spread of
about ``sqrt(a (1 - a) / n)``).

Each call appends an entry to ``version_history_`` (saved in
``model.json``, so the model directory records how its threshold came to
be); ``path`` saves the model there.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np

__all__ = ["recalibrate", "history"]


def history(model) -> list[dict]:
    """The model's version history: ``version_history_``, or one "fit" entry for a model never recalibrated."""
    entries = getattr(model, "version_history_", None)
    if entries:
        return [dict(e) for e in entries]
    return [
        {
            "version": 1,
            "action": "fit",
            "at": getattr(model, "fitted_at_", None),
            "threshold": float(model.threshold_),
            "rule": dict(getattr(model, "threshold_method_", {}) or {}).get("method"),
            "rows": int(len(model.decision_scores_)),
        }
    ]


def record_version(model, past: list[dict], action: str, entry: dict, path=None) -> None:
    """Append ``entry`` to ``past`` as the next version (number, ``action``, UTC time) in ``version_history_``; save
    the model to ``path`` when given.  One place for :func:`recalibrate` and :func:`deepad.drift.refit`."""
    head = {
        "version": int(past[-1].get("version", len(past))) + 1,
        "action": action,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    model.version_history_ = past + [{**head, **entry}]
    if path is not None:
        model.save(path)


def recalibrate(model, X_clean, *, fpr: float | None = None, note: str | None = None, path=None):
    """Make ``X_clean`` (recent rows declared normal) the model's calibration set and re-set its threshold.

    ``fpr``: the target false-positive rate; default the rate the model
    was set to -- its ``fpr`` when its threshold rule is a target rate,
    else its ``contamination``.  The threshold becomes the conformal
    quantile of the clean rows' scores (see the module docstring), and
    ``calibration_scores_`` the reference of ``p_values`` and of the score
    section of :func:`deepad.drift.detect_drift`.  The detector itself is
    not retrained: the feature tests of ``detect_drift`` still compare with
    the training data (what the model learned), so they keep saying the
    data moved until the model is refitted.

    Raises ``ValueError`` when ``X_clean`` has too few rows for the target
    rate (at least ``ceil(1 / fpr) - 1``, or no row could ever be flagged)
    and, for bad input, the errors scoring raises.  Returns the model.
    """
    from sklearn.utils.validation import check_is_fitted

    from deepad.thresholds import apply_threshold_rule

    check_is_fitted(model, "decision_scores_")
    method = dict(getattr(model, "threshold_method_", {}) or {})
    if fpr is None:
        fpr = float(method["fpr"]) if method.get("method") == "fpr" else float(model.contamination)
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0.0 < float(fpr) < 1.0:
        raise ValueError(f"fpr must be in (0, 1), got {fpr!r}.")
    fpr = float(fpr)
    before = {"threshold": float(model.threshold_), "rule": method.get("method")}
    past = history(model)
    scores = np.asarray(model.decision_function(X_clean), dtype=np.float64)
    need = math.ceil((1.0 / fpr) - 1.0 - 1e-9)
    if scores.size < need:
        raise ValueError(
            f"X_clean has {scores.size:,} rows; a false-positive rate of {fpr:g} needs at least {need:,} clean rows "
            f"(with fewer, the conformal threshold is above every score and nothing could be flagged)."
        )
    model.calibration_scores_ = scores
    apply_threshold_rule(model, "fpr", fpr=fpr)
    entry = {
        "rows": int(scores.size),
        "fpr": fpr,
        "threshold_before": before["threshold"],
        "rule_before": before["rule"],
        "threshold": float(model.threshold_),
        "reason": model.threshold_method_.get("reason"),
        **({"note": str(note)} if note else {}),
    }
    record_version(model, past, "recalibrate", entry, path)
    return model
