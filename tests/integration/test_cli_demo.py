"""`deepad demo`: the main job on the bundled data set."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from deepad.cli import app


def test_demo_reports_findings_on_bundled_data():
    result = CliRunner().invoke(app, ["demo", "--detector", "AutoEncoder", "--top", "5"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1831 records x 21 features" in out
    flagged = int(re.search(r"(\d+) flagged as anomalies", out).group(1))
    assert 0 < flagged < 550
    auc = float(re.search(r"ROC-AUC (\d\.\d+)", out).group(1))
    assert auc > 0.7
    assert len(re.findall(r"^\s+\d+\s+\d+\s+\S+\s+0\.\d+\s+(anom|normal)$", out, flags=re.M)) == 5


def test_demo_unknown_detector_is_a_user_error():
    result = CliRunner().invoke(app, ["demo", "--detector", "NoSuchThing"])
    assert result.exit_code == 2
    assert "unknown detector 'NoSuchThing'" in result.output
    assert "Traceback" not in result.output


def test_example_writes_the_tour_csv(tmp_path):
    import pandas as pd

    out = tmp_path / "transactions.csv"
    result = CliRunner().invoke(app, ["example", str(out), "--rows", "400", "--anomaly-rate", "0.05"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert len(df) == 400 and int(df["is_fraud"].sum()) == 20
    assert {"transaction_id", "timestamp", "amount", "merchant_id", "card_present"} <= set(df.columns)
    assert df["customer_age"].isna().any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transactions.csv"]


def test_example_refuses_non_csv_name(tmp_path):
    result = CliRunner().invoke(app, ["example", str(tmp_path / "t.parquet")])
    assert result.exit_code == 2 and "ending in .csv" in result.output
    assert list(tmp_path.iterdir()) == []


def test_one_detector_lookup_case_insensitive_for_demo_train_and_bench(tmp_path):
    """`deepad demo -d knn` works as `deepad train -d knn` does: one lookup (deepad.detectors.detector_class)."""
    import numpy as np
    import pandas as pd
    import pytest

    import deepad.detectors as D
    from deepad.bench.specs import resolve_detector_class

    assert D.detector_class("knn") is D.KNN and D.detector_class("Knn") is D.KNN
    assert D.detector_class(None) is D.DEFAULT and D.detector_class("default") is D.DEFAULT
    with pytest.raises(ValueError, match="unknown detector 'nope'; choose one of: AutoEncoder"):
        D.detector_class("nope")
    assert resolve_detector_class("knn") is D.KNN

    demo = CliRunner().invoke(app, ["demo", "-d", "knn", "--top", "3"])
    assert demo.exit_code == 0, demo.output
    assert "Training KNN on the" in demo.output
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"]).to_csv(tmp_path / "t.csv", index=False)
    train = CliRunner().invoke(
        app, ["--quiet", "train", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m"), "-d", "knn"]
    )
    assert train.exit_code == 0, train.output
    assert "Trained KNN on 200 rows" in train.output
