"""``deepad demo`` (the bundled Cardiotocography data) and ``deepad example`` (a fraud-like CSV to try)."""

from __future__ import annotations

import time

import typer

from deepad.cli._common import _detector_class, _say, _UserErrors, fail

__all__ = ["demo", "example"]


def demo(
    detector: str = typer.Option(
        None, "--detector", "-d", help="Detector class name (default: deepad.detectors.DEFAULT)."
    ),
    top: int = typer.Option(10, help="How many of the most anomalous records to list."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train a detector on the bundled Cardiotocography data and show what it finds.

    One-class protocol: a stratified 70/30 split, the detector fits on the
    normal rows of the 70 % part, and is scored on the held-out 30 %, whose
    labels are used only to report ROC-AUC and precision.
    """
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    from deepad.data import load_cardio

    cls = _detector_class(detector)
    X, y = load_cardio()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    model = cls(contamination=float(y_tr.mean()))
    if "random_state" in model.get_params():  # deterministic detectors have no seed
        model.set_params(random_state=seed)
    typer.echo(
        f"Cardiotocography (bundled, ADBench 6_cardio): {X.shape[0]} records x {X.shape[1]} features, "
        f"{int(y.sum())} pathologic ({y.mean():.1%})."
    )
    typer.echo(f"Training {cls.__name__} on the {int((y_tr == 0).sum())} normal records of a 70% split ...")
    t0 = time.perf_counter()
    model.fit(X_tr[y_tr == 0])
    fit_s = time.perf_counter() - t0
    # Threshold for a 5 % false-positive rate on the normal training records' scores.
    model.set_threshold(fpr=0.05)
    scores = model.decision_function(X_te)
    flags = model.predict(X_te)
    p = model.p_values(X_te)
    typer.echo(
        f"Fitted in {fit_s:.1f} s.  Scored {len(X_te)} held-out records: {int(flags.sum())} flagged as anomalies "
        f"(threshold {model.threshold_:.4g}, target false-positive rate 5%)."
    )
    tp = int(((flags == 1) & (y_te == 1)).sum())
    typer.echo(
        f"Of the flagged, {tp} are truly pathologic (precision {tp / max(flags.sum(), 1):.2f}); "
        f"recall {tp / max(y_te.sum(), 1):.2f}."
    )
    typer.echo(
        f"ROC-AUC {roc_auc_score(y_te, scores):.4f}   average precision {average_precision_score(y_te, scores):.4f}"
    )
    order = np.argsort(-scores)[:top]
    typer.echo(f"\nTop {len(order)} anomalies:")
    typer.echo(f"{'rank':>4} {'row':>5} {'score':>10} {'p-value':>8} {'label':>6}")
    for rank, i in enumerate(order, 1):
        typer.echo(f"{rank:>4} {i:>5} {scores[i]:>10.4g} {p[i]:>8.4f} {'anom' if y_te[i] else 'normal':>6}")


def example(
    output: str = typer.Argument("transactions.csv", help="CSV file to write."),
    rows: int = typer.Option(5000, min=100, help="Number of transactions."),
    anomaly_rate: float = typer.Option(0.01, min=0.0, max=0.5, help="Fraction of planted frauds (label is_fraud=1)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write a realistic, fraud-like card-transaction CSV to try train/score/explain/report on.

    Mixed columns as real exports have them: an id, timestamps, amounts,
    a 3,000-level merchant id, categories, booleans, missing values; planted
    frauds are labelled in ``is_fraud``.
    """
    from pathlib import Path

    from deepad.data.synthetic import write_fraud_csv
    from deepad.data.writers import AtomicOutput

    out = Path(output)
    if out.suffix.lower() != ".csv":
        fail(f"{output}: the example is written as CSV; give a file name ending in .csv")
    with _UserErrors(), AtomicOutput(out) as part, part.writing():
        write_fraud_csv(part.path, n_rows=rows, anomaly_rate=anomaly_rate, seed=seed)
    _say(f"Wrote {rows} transactions ({int(round(rows * anomaly_rate))} planted frauds, column is_fraud) to {out}")
