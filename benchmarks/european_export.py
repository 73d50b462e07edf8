"""Issue 19 (items 1 and 3): the same fraud-like table as a plain CSV and as a European export scores the same.

The European export is what a German/French spreadsheet writes: ``;``-separated, decimal commas
(``1.234,56``), dates as ``DD.MM.YYYY HH:MM``, ``-`` for missing values, cp1252 text with a euro sign; its
transaction ids repeat three times (as real exports do).  Each file is read with its defaults except the
``--na-values -`` and ``--encoding cp1252`` that the file needs (no decimal flag), the default detector is
trained on the training file and scores the test file; the script prints ROC-AUC and average precision of
both, which must match.

    PYTHONPATH=src python benchmarks/european_export.py [--rows 6000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from deepad.data import read_table
from deepad.data.exports import ReadOptions
from deepad.data.synthetic import make_fraud_frame
from deepad.pipeline import TabularDetector


def european(df: pd.DataFrame) -> pd.DataFrame:
    """The table as a European spreadsheet writes it (text cells)."""
    out = df.copy()

    def comma(values, decimals):
        text = pd.Series(values).map(lambda v: "" if pd.isna(v) else f"{v:,.{decimals}f}")
        return text.str.replace(",", "_").str.replace(".", ",").str.replace("_", ".")

    out["amount"] = comma(df["amount"], 2)
    out["distance_km"] = comma(df["distance_km"], 1)
    out["customer_age"] = df["customer_age"].map(lambda v: "-" if pd.isna(v) else f"{int(v)},0")
    out["timestamp"] = pd.to_datetime(df["timestamp"]).dt.strftime("%d.%m.%Y %H:%M:%S")
    out["card_present"] = np.where(df["card_present"], "true", "false")
    out["note"] = np.where(df["amount"] > 100, "über 100 €", "")
    return out


def plain(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["card_present"] = np.where(df["card_present"], "true", "false")
    out["note"] = np.where(df["amount"] > 100, "über 100 €", "")
    return out


def with_repeated_ids(df: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    df = df.copy()
    df.loc[df.index[1 : k + 1], "transaction_id"] = df["transaction_id"].iloc[0]
    return df


def run(rows: int) -> None:
    train = with_repeated_ids(make_fraud_frame(rows, seed=1))
    test = make_fraud_frame(rows // 2, seed=2, start_index=rows)
    y = test.pop("is_fraud").to_numpy()
    train = train.drop(columns="is_fraud")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain(train).to_csv(tmp / "train.csv", index=False)
        plain(test).to_csv(tmp / "test.csv", index=False)
        european(train).to_csv(tmp / "train_eu.csv", index=False, sep=";", encoding="cp1252")
        european(test).to_csv(tmp / "test_eu.csv", index=False, sep=";", encoding="cp1252")
        eu = ReadOptions(na_values=("-",), encoding="cp1252")
        for name, opts in (("plain CSV", ReadOptions()), ("European export", eu)):
            suffix = "_eu" if opts is eu else ""
            t0 = time.perf_counter()
            X = read_table(tmp / f"train{suffix}.csv", options=opts)
            model = TabularDetector(contamination=0.01).fit(X)
            kinds = model.schema_.kinds
            scores = model.decision_function(read_table(tmp / f"test{suffix}.csv", options=opts))
            print(
                f"{name:16s} ROC-AUC {roc_auc_score(y, scores):.4f}  AP {average_precision_score(y, scores):.4f}  "
                f"flagged {int((scores > model.threshold_).sum())}/{len(y)}  ({time.perf_counter() - t0:.1f} s)\n"
                f"{'':16s} kinds: {', '.join(f'{c}={k}' for c, k in kinds.items())}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    run(parser.parse_args().rows)
