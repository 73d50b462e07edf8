"""Issue 19, items 1 and 3 on the command line: the shared read options, id notes and data warnings."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deepad.cli import app

from data_fraud import make_fraud_frame


def run(*args):
    old = os.environ.get("DEEPAD_QUIET")
    try:
        result = CliRunner().invoke(app, [*map(str, args)])
    finally:
        if old is None:
            os.environ.pop("DEEPAD_QUIET", None)
        else:
            os.environ["DEEPAD_QUIET"] = old
    assert "Traceback" not in result.output, result.output
    return result


def _european(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col, decimals in (("amount", 2), ("distance_km", 1)):
        text = df[col].map(lambda v: "-" if pd.isna(v) else f"{v:,.{decimals}f}")
        out[col] = text.str.replace(",", "_").str.replace(".", ",").str.replace("_", ".")
    out["timestamp"] = pd.to_datetime(df["timestamp"]).dt.strftime("%d.%m.%Y %H:%M:%S")
    out["card_present"] = np.where(df["card_present"], "true", "false")
    out["note"] = np.where(df["amount"] > 100, "über 100 €", "")
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("exports")
    train = make_fraud_frame(1500, seed=1)
    train.loc[1:3, "transaction_id"] = train.loc[0, "transaction_id"]  # three repeated ids
    test = make_fraud_frame(600, seed=2, start_index=1500)
    _european(train).to_csv(d / "train_eu.csv", index=False, sep=";", encoding="cp1252")
    _european(test).to_csv(d / "test_eu.csv", index=False, sep=";", encoding="cp1252")
    for name, df in (("train", train), ("test", test)):
        plain = df.assign(card_present=np.where(df["card_present"], "true", "false"))
        plain.assign(note=np.where(df["amount"] > 100, "über 100 €", "")).to_csv(d / f"{name}.csv", index=False)
    return d


def test_train_and_score_a_european_export(files):
    model = files / "model"
    common = ["--encoding", "cp1252", "--na-values", "-"]
    result = run("train", files / "train_eu.csv", "-o", model, "-d", "ECOD", "-l", "is_fraud", *common)
    assert result.exit_code == 0, result.output
    assert "amount: numbers, decimal comma" in result.output and "timestamp: dates day first" in result.output
    assert "numeric (4): amount, customer_age, distance_km, n_tx_24h" in result.output
    assert "datetime (1): timestamp" in result.output
    assert "note: column 'transaction_id' excluded as an id: id-like name, distinct values" in result.output
    assert "3 repeated" in result.output
    auc = float(result.output.split("Training ROC-AUC against 'is_fraud': ")[1].split()[0])
    assert auc > 0.9
    info = run("info", model)
    assert "transaction_id" in info.output
    out = files / "scores.csv"
    result = run("score", model, files / "test_eu.csv", "-o", out, *common)
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.output
    scores = pd.read_csv(out)
    assert len(scores) == 600 and scores["transaction_id"].iloc[0] == "T0000001500"
    # the plain CSV of the same rows: the same model, the same scores
    assert run("train", files / "train.csv", "-o", files / "plain", "-d", "ECOD", "-l", "is_fraud").exit_code == 0
    assert run("score", files / "plain", files / "test.csv", "-o", files / "plain.csv").exit_code == 0
    np.testing.assert_allclose(scores["score"], pd.read_csv(files / "plain.csv")["score"], rtol=1e-9)
    # how a file is written belongs to the file: the plain model scores the European export of the same rows
    result = run("score", files / "plain", files / "test_eu.csv", "-o", files / "cross.csv", *common)
    assert result.exit_code == 0, result.output
    cross = pd.read_csv(files / "cross.csv")["score"]
    np.testing.assert_allclose(cross, pd.read_csv(files / "plain.csv")["score"], rtol=1e-9)
    # the same rows, streamed for `deepad explain`, read with the same options
    result = run("explain", model, files / "test_eu.csv", "--rows", "0", *common)
    assert result.exit_code == 0, result.output


def test_read_option_errors_exit_2_with_one_line(files):
    for args, message in (
        (["--decimal", ";"], "decimal must be '.' or ','"),
        (["--encoding", "klingon"], "unknown encoding 'klingon'"),
        (["--date-format", "DD.MM.YYYY"], "strftime codes"),
    ):
        result = run("train", files / "train_eu.csv", "-o", files / "m2", "-d", "ECOD", *args)
        assert result.exit_code == 2 and message in result.output, result.output
    result = run("train", files / "train_eu.csv", "-o", files / "m2", "-d", "ECOD")  # no --encoding
    assert result.exit_code == 2 and "--encoding cp1252" in result.output


def test_warnings_name_the_column(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(
        {
            "amount": [f"{v:.2f}".replace(".", ",") for v in rng.lognormal(3, 1, n - 60)] + ["n.v."] * 60,
            "shop": rng.choice(["a", "b", "c"], n),
            "x": rng.normal(size=n),
        }
    )
    df.to_csv(tmp_path / "t.csv", sep=";", index=False)
    result = run("train", tmp_path / "t.csv", "-o", tmp_path / "m", "-d", "ECOD")
    assert result.exit_code == 0, result.output
    assert "warning: column 'amount' looks numeric (80% of its values" in result.output
    result = run("train", tmp_path / "t.csv", "-o", tmp_path / "m", "-d", "ECOD", "--na-values", "n.v.")
    assert result.exit_code == 0 and "warning:" not in result.output, result.output
    new = df.assign(shop="zzz", amount="1,5")
    new.to_csv(tmp_path / "new.csv", sep=";", index=False)
    result = run("score", tmp_path / "m", tmp_path / "new.csv", "-o", tmp_path / "o.csv")
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: column 'shop': 300 of 300 scored rows (100%)") == 1


def test_xlsx_and_decimal_flags(tmp_path):
    df = make_fraud_frame(300, seed=4).drop(columns="is_fraud")
    df.to_excel(tmp_path / "t.xlsx", index=False, sheet_name="data")
    result = run("train", tmp_path / "t.xlsx", "-o", tmp_path / "m", "-d", "ECOD", "--sheet", "data")
    assert result.exit_code == 0, result.output
    result = run("score", tmp_path / "m", tmp_path / "t.xlsx", "-o", tmp_path / "o.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "o.csv")) == 300
    result = run("train", tmp_path / "t.xlsx", "-o", tmp_path / "m", "-d", "ECOD", "--sheet", "nope")
    assert result.exit_code == 2 and "has no sheet 'nope'" in result.output
    # 1.234 in a ','-file is 1.234 unless the file says otherwise
    (tmp_path / "k.csv").write_text("a,b\n" + "".join(f"{i}.{i:03d},{i}\n" for i in range(1, 60)))
    result = run("train", tmp_path / "k.csv", "-o", tmp_path / "mk", "-d", "ECOD", "--decimal", ",")
    assert result.exit_code == 0 and "(a: numbers, decimal comma)" in result.output, result.output
