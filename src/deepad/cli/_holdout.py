"""``deepad train --label-column`` with a detector that learns from labels: what the labels bought (issue 22).

A stratified part of the labelled rows (and as much of the blank ones) is held out, the model is fitted
on the rest exactly as it will be fitted on everything (same detector, preprocessing and threshold
rule), and the held-out labelled rows are scored: how many of the alerts the threshold raises there are
real (precision at the alert budget), how many of the held-out anomalies it raises (recall), and the
average precision of the ranking (AUC-PR), beside the share of anomalies among those rows (what
alerting at random would give).  Then ``deepad train`` refits on all rows; the figures are saved with
the model (``label_holdout_``; ``deepad info`` shows them).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_LABEL_HOLDOUT", "check_weak_labels", "holdout_mask", "holdout_figures", "describe_holdout"]

#: share of the labelled rows held out by default
DEFAULT_LABEL_HOLDOUT = 0.2


def check_weak_labels(y: np.ndarray, column: str, data: str) -> str | None:
    """Refuse a label column a detector cannot learn from; ``None`` when fine, else the message."""
    known = ~np.isnan(y)
    if not known.any():
        return f"{data}: label column {column!r} is blank on every row; label some anomalies as 1 (or true)."
    if not (y[known] == 1).any():
        n0 = int(known.sum())
        return (
            f"{data}: label column {column!r} has no anomalies ({n0:,} rows labelled 0, none 1); a detector that "
            "learns from labels needs some rows labelled 1 (or true)."
        )
    return None


def holdout_mask(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray | None, str | None]:
    """Rows to hold out: ``fraction`` of the labelled anomalies, of the labelled normal rows and of the blank rows.

    At least one labelled anomaly is held out and at least one kept for fitting; with fewer than two
    there is nothing to hold out (``(None, why)``).
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(y), dtype=bool)
    anomalies = np.flatnonzero(y == 1)
    if len(anomalies) < 2:
        return None, (
            f"only {len(anomalies)} labelled anomaly: none can be held out to measure what the labels bought "
            "(label at least 2)"
        )
    for group, at_least_one in (
        (anomalies, True),
        (np.flatnonzero(y == 0), False),
        (np.flatnonzero(np.isnan(y)), False),
    ):
        k = int(round(fraction * len(group)))
        if at_least_one:
            k = min(max(k, 1), len(group) - 1)
        if k:
            held[rng.choice(group, size=k, replace=False)] = True
    return held, None


def holdout_figures(y_held: np.ndarray, scores: np.ndarray, flagged: np.ndarray, fraction: float, seed: int) -> dict:
    """Precision at the alert budget, recall and AUC-PR on the held-out labelled rows.

    With no held-out row labelled normal, the held-out blank rows count as normal (a lower bound on
    precision: some of them may be anomalies nobody labelled).
    """
    from sklearn.metrics import average_precision_score

    labelled = ~np.isnan(y_held)
    blank_as_normal = not (y_held[labelled] == 0).any()
    rows = np.ones(len(y_held), dtype=bool) if blank_as_normal else labelled
    truth = np.nan_to_num(y_held[rows], nan=0.0).astype(int)
    alerts = flagged[rows].astype(bool)
    hits = int((alerts & (truth == 1)).sum())
    n_alerts, n_anom = int(alerts.sum()), int(truth.sum())
    return {
        "fraction": float(fraction),
        "seed": int(seed),
        "rows": int(rows.sum()),
        "anomalies": n_anom,
        "normal": int(rows.sum()) - n_anom,
        "blank_as_normal": bool(blank_as_normal),
        "alerts": n_alerts,
        "true_alerts": hits,
        "precision": hits / n_alerts if n_alerts else None,
        "recall": hits / n_anom,
        "auc_pr": float(average_precision_score(truth, scores[rows])) if (truth == 0).any() else None,
        "base_rate": n_anom / int(rows.sum()),
        "refit_on_all_rows": True,
    }


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def describe_holdout(fig: dict) -> str:
    """The figures as one or two lines of text (``deepad train`` and ``deepad info``)."""
    normal = "unlabelled rows counted as normal" if fig["blank_as_normal"] else "labelled normal"
    precision = (
        f"precision {_pct(fig['precision'])} ({fig['true_alerts']} of {fig['alerts']} alerts real)"
        if fig["alerts"]
        else "no alerts raised"
    )
    ap = "" if fig["auc_pr"] is None else f", AUC-PR {fig['auc_pr']:.3f}"
    return (
        f"held out {fig['fraction']:.0%} of the labelled rows (seed {fig['seed']}): on {fig['rows']:,} rows "
        f"({fig['anomalies']} anomalies, {fig['normal']:,} {normal}) the alert threshold gives {precision}, "
        f"recall {_pct(fig['recall'])}{ap}; alerting at random: precision {_pct(fig['base_rate'])}"
        + (" (a lower bound: some unlabelled rows may be anomalies)" if fig["blank_as_normal"] else "")
    )
