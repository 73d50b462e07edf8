"""`deepad train` / `deepad score` / `deepad info` on a realistic mixed CSV, and every bad-input path."""

from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import deepad
from deepad.cli import app
from deepad.data import iter_batches, read_table
from deepad.scoring import score_file

from data_fraud import make_fraud_frame, write_fraud_csv

PARAMS = json.dumps({"epochs": 15, "hidden_dims": [32, 16], "latent_dim": 4, "batch_size": 64})


def run(*args):
    """``deepad --quiet ARGS``; the root callback's DEEPAD_QUIET does not leak into other tests."""
    old = os.environ.get("DEEPAD_QUIET")
    try:
        result = CliRunner().invoke(app, ["--quiet", *map(str, args)])
    finally:
        if old is None:
            os.environ.pop("DEEPAD_QUIET", None)
        else:
            os.environ["DEEPAD_QUIET"] = old
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    train_csv = write_fraud_csv(d / "train.csv", 3000, seed=1)
    new_csv = write_fraud_csv(d / "new.csv", 2000, seed=2, start_index=10_000)
    model = d / "model"
    result = run(
        "train",
        train_csv,
        "-o",
        model,
        "--detector",
        "AutoEncoder",
        "--label-column",
        "is_fraud",
        "--contamination",
        "0.01",
        "--params",
        PARAMS,
    )
    assert result.exit_code == 0, result.output
    return {"dir": d, "train": train_csv, "new": new_csv, "model": model, "train_output": result.output}


def leftovers(directory):
    """Temporary files a failed or interrupted run could leave behind."""
    return [p.name for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".part"]


# --------------------------------------------------------------------------- happy path
def test_train_reports_auc_and_saves(work):
    out = work["train_output"]
    auc = float(re.search(r"Training ROC-AUC against 'is_fraud': (\d\.\d+)", out).group(1))
    assert auc > 0.8
    assert re.search(r"flags 30 of 3,000 training rows \(1\.00%\)", out)
    model = deepad.load(work["model"])
    assert model.schema_.kinds["is_fraud"] == "excluded" and model.schema_.id_columns == ["transaction_id"]
    assert model.detector_.verbose is False  # --quiet run; progress bars are not saved with the model


def test_score_csv_ranks_planted_anomalies_high(work):
    out = work["dir"] / "scores.csv"
    result = run("score", work["model"], work["new"], "-o", out)
    assert result.exit_code == 0, result.output
    assert re.search(r"Scored 2,000 rows .* flagged as anomalies", result.output)
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["transaction_id", "score", "p_value", "is_anomaly"]
    truth = pd.read_csv(work["new"])
    assert list(scores["transaction_id"]) == list(truth["transaction_id"])
    assert roc_auc_score(truth["is_fraud"], scores["score"]) > 0.8
    assert scores["p_value"].between(0, 1).all() and set(scores["is_anomaly"]) <= {0, 1}
    model = deepad.load(work["model"])
    np.testing.assert_array_equal(scores["is_anomaly"], (scores["score"] > model.threshold_).astype(int))
    # same model, same rows -> the library gives the same scores
    np.testing.assert_allclose(scores["score"], model.decision_function(read_table(work["new"])), rtol=1e-15)


def test_chunked_scoring_equals_whole_file(work):
    model = deepad.load(work["model"])
    whole = model.decision_function(read_table(work["new"]))
    out = work["dir"] / "chunked.parquet"
    result = run("score", work["model"], work["new"], "-o", out, "--batch-rows", "333")
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pandas()
    assert list(table["transaction_id"]) == list(read_table(work["new"])["transaction_id"])
    # The encoding of every chunk is bit-identical to the whole file's; the AutoEncoder's float32 matmuls may
    # round differently for a tiny last batch (here 2 rows), so the scores agree to float32 precision.
    encoded = np.vstack(
        [model.transform(c) for c in iter_batches(work["new"], batch_size=333, text_columns=model.schema_.names)]
    )
    np.testing.assert_array_equal(encoded, model.transform(read_table(work["new"])))
    np.testing.assert_allclose(table["score"].to_numpy(), whole, rtol=1e-6, atol=0)
    p_whole = model.p_values(read_table(work["new"]))
    assert np.mean(table["p_value"].to_numpy() == p_whole) > 0.99


def test_parquet_input_with_typed_columns(work):
    df = make_fraud_frame(500, seed=4)
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    src = work["dir"] / "typed.parquet"
    df.to_parquet(src, index=False)
    out = work["dir"] / "typed_scores.csv"
    result = run("score", work["model"], src, "-o", out, "--batch-rows", "128")
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    model = deepad.load(work["model"])
    np.testing.assert_array_equal(scored["score"].to_numpy(), model.decision_function(df))


def test_unseen_categories_score_fine(work):
    df = pd.read_csv(work["new"], dtype=str, keep_default_na=False).head(300)
    df.loc[:9, "merchant_category"] = "mcc_spaceport"
    df.loc[:4, "country"] = "ZZ"
    src = work["dir"] / "unseen.csv"
    df.to_csv(src, index=False)
    result = CliRunner().invoke(app, ["score", str(work["model"]), str(src), "-o", str(work["dir"] / "unseen_out.csv")])
    assert result.exit_code == 0, result.output
    assert "10 value(s) in column 'merchant_category' were not seen in training (e.g. 'mcc_spaceport')" in result.output
    assert "5 value(s) in column 'country'" in result.output
    assert len(pd.read_csv(work["dir"] / "unseen_out.csv")) == 300


def test_no_id_column_gives_row_numbers_and_extra_columns_are_noted(work):
    df = pd.read_csv(work["new"]).head(50).drop(columns=["transaction_id"]).assign(comment="hello")
    src = work["dir"] / "noid.csv"
    df.to_csv(src, index=False)
    out = work["dir"] / "noid_out.csv"
    result = CliRunner().invoke(app, ["score", str(work["model"]), str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "ignored 1 column(s) the model was not trained on: 'comment'" in result.output
    assert pd.read_csv(out)["row"].tolist() == list(range(50))


def test_info(work):
    result = run("info", work["model"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "AutoEncoder on a table" in out and "Trained on: 3,000 rows, 12 columns" in out
    assert "id (1): transaction_id" in out and "excluded (1): is_fraud" in out
    assert "contamination=0.01" in out


def test_fpr_threshold(work, tmp_path):
    result = run(
        "train",
        work["train"],
        "-o",
        tmp_path / "m",
        "-d",
        "AutoEncoder",
        "-x",
        "is_fraud",
        "--fpr",
        "0.05",
        "--params",
        json.dumps({"epochs": 2, "hidden_dims": [8], "latent_dim": 2}),
    )
    assert result.exit_code == 0, result.output
    model = deepad.load(tmp_path / "m")
    assert model.threshold_method_["method"] == "fpr"
    assert 0.03 <= model.labels_.mean() <= 0.07


# --------------------------------------------------------------------------- bad input: exit 2, one line, no output
def _write_rows(path, rows):
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


@pytest.fixture(scope="module")
def rows(work):
    with open(work["new"], newline="") as fh:
        return list(csv.reader(fh))


def _bad_case(name, work, rows):
    d = work["dir"] / f"bad_{name}"
    d.mkdir(exist_ok=True)
    header = rows[0]
    if name == "missing_file":
        return d / "nope.csv", d / "out.csv", ["nope.csv", "no such file"]
    if name == "missing_column":
        j = header.index("amount")
        return (
            _write_rows(d / "in.csv", [r[:j] + r[j + 1 :] for r in rows]),
            d / "out.csv",
            ["in.csv", "lacks column(s) ['amount']"],
        )
    if name == "unparseable_value":
        bad = [list(r) for r in rows]
        bad[1 + 1500][header.index("amount")] = "12,50 EUR"  # data row 1500: in the 5th chunk of 333 rows
        return _write_rows(d / "in.csv", bad), d / "out.csv", ["in.csv", "column 'amount'", "row 1500 ('12,50 EUR')"]
    if name == "bad_boolean":
        bad = [list(r) for r in rows]
        bad[1 + 7][header.index("card_present")] = "maybe"
        return _write_rows(d / "in.csv", bad), d / "out.csv", ["column 'card_present'", "row 7 ('maybe')"]
    if name == "wrong_type":
        df = make_fraud_frame(100, seed=5)
        df["timestamp"] = np.arange(100) * 3600  # epoch numbers, typed int64 in Parquet
        df.to_parquet(d / "in.parquet", index=False)
        return d / "in.parquet", d / "out.csv", ["in.parquet", "column 'timestamp' holds int64 values", "row 0"]
    if name == "empty_file":
        (d / "in.csv").write_text("")
        return d / "in.csv", d / "out.csv", ["in.csv is empty"]
    if name == "header_only":
        _write_rows(d / "in.csv", rows[:1])
        return d / "in.csv", d / "out.parquet", ["in.csv has a header but no data rows"]
    if name == "out_is_data":
        src = _write_rows(d / "in.csv", rows[:20])
        return src, src, ["is the input data file"]
    if name == "bad_extension":
        return work["new"], d / "out.xlsx", ["out.xlsx", "must end in .csv"]
    raise AssertionError(name)


BAD = [
    "missing_file",
    "missing_column",
    "unparseable_value",
    "bad_boolean",
    "wrong_type",
    "empty_file",
    "header_only",
    "out_is_data",
    "bad_extension",
]


@pytest.mark.parametrize("name", BAD)
def test_bad_input_exits_2_with_location_and_no_output(work, rows, name):
    src, out, expected = _bad_case(name, work, rows)
    before = src.read_bytes() if src.exists() else None
    result = run("score", work["model"], src, "-o", out, "--batch-rows", "333")
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    for part in expected:
        assert part in message, (part, message)
    if name != "out_is_data":
        assert not out.exists()
    else:
        assert src.read_bytes() == before  # input untouched
    assert leftovers(out.parent) == []


def test_bad_model_and_train_arguments(work, tmp_path):
    result = run("score", tmp_path / "no_model", work["new"], "-o", tmp_path / "o.csv")
    assert result.exit_code == 2 and "no model at" in result.output
    cases = [
        (["--contamination", "0.1", "--fpr", "0.1"], "not both"),
        (["--detector", "NoSuchDetector"], "unknown detector 'NoSuchDetector'"),
        (["--params", "{epochs: 3}"], "--params is not valid JSON"),
        (["--params", '{"epoch": 3}'], "has no parameter(s) ['epoch']"),
        (["--params", '{"epochs": 0}'], "epochs"),
        (["--label-column", "fraud"], "has no label column 'fraud'"),
        (["--exclude", "nope"], "exclude names column(s) ['nope']"),
        (["--type", "amount"], "--type expects COLUMN=KIND"),
        (["--type", "amount=money"], "'money' is not a column kind"),
        (["--label-column", "merchant_category"], "column 'merchant_category'"),
        (["--contamination", "0.9"], "contamination"),
    ]
    for extra, expected in cases:
        result = run("train", work["train"], "-o", tmp_path / "m", "-d", "AutoEncoder", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert expected in result.output and result.output.count("\n") == 1, (extra, result.output)
        assert not (tmp_path / "m").exists()
    result = run("train", tmp_path / "missing.parquet", "-o", tmp_path / "m")
    assert result.exit_code == 2 and "missing.parquet: no such file" in result.output


def test_interrupted_scoring_leaves_no_partial_file_and_keeps_old_output(work):
    model = deepad.load(work["model"])
    out = work["dir"] / "interrupted.csv"
    out.write_text("previous results\n")

    def interrupt(rows_done):
        if rows_done >= 500:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(model, work["new"], out, batch_size=250, on_chunk=interrupt)
    assert out.read_text() == "previous results\n"
    assert leftovers(work["dir"]) == []
