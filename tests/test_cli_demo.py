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
