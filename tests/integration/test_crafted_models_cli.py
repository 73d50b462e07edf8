"""Crafted model directories through the CLI: `deepad info` and `deepad serve` refuse them in one clear line."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from deepad.cli import app
from deepad.persistence import ModelFormatError

import crafted_models
from crafted_models import _config, _payloads, _write_config

pytestmark = pytest.mark.filterwarnings("ignore")

saved = crafted_models.saved  # the module-scoped fixture: saved KNN, IsolationForest and AutoEncoder models
model_copy = crafted_models.model_copy  # a fixture: copy(name) copies one of them into tmp_path


# --------------------------------------------------------------------------- skops payloads
def test_skops_payload_refused_by_info_and_registry(model_copy, tmp_path):
    from deepad.serve.registry import ModelRegistry

    marker = tmp_path / "marker"
    model = model_copy("knn")
    (model / "estimator_.skops").write_bytes(_payloads(marker, tmp_path)["exec"])
    # deepad info reads the metadata only (issue 19): it never opens the .skops file, so it describes the model
    result = CliRunner().invoke(app, ["info", str(model)])
    assert result.exit_code == 0 and "Detector:   KNN" in result.output, result.output
    with pytest.raises((ModelFormatError, FileNotFoundError)):
        ModelRegistry.from_root(model)
    (tmp_path / "x.csv").write_text("a,b,c,d,e,f\n1,2,3,4,5,6\n")
    scored = CliRunner().invoke(app, ["score", str(model), str(tmp_path / "x.csv"), "-o", str(tmp_path / "o.csv")])
    assert scored.exit_code == 2 and "estimator_.skops" in scored.output and "Traceback" not in scored.output
    assert not marker.exists()


# --------------------------------------------------------------------------- the service's models root
def test_serve_start_with_a_broken_model_is_a_clear_error(saved, tmp_path):
    root = tmp_path / "one"
    shutil.copytree(saved / "knn", root)
    config = _config(root)
    config["attributes"]["threshold_"] = float("nan")
    _write_config(root, config)
    result = CliRunner().invoke(app, ["serve", str(root), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "threshold_" in result.output and "Traceback" not in result.output
