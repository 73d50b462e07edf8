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
