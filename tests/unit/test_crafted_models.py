"""Crafted model directories: nothing in a model directory runs code, reads outside it or escapes as a traceback.

Each case starts from a real saved model and changes one file the way an
attacker (or a damaged disk) would.  Every case must end in
``ModelFormatError`` -- from ``deepad.load``, ``deepad info`` and the
service's model registry alike -- and the payload's marker file must never
appear.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile

import numpy as np
import pytest

import deepad
from deepad.persistence import ModelFormatError

import crafted_models
from crafted_models import _call, _config, _payloads, _skops_file, _str, _write_config

pytestmark = pytest.mark.filterwarnings("ignore")

saved = crafted_models.saved  # the module-scoped fixture: saved KNN, IsolationForest and AutoEncoder models
model_copy = crafted_models.model_copy  # a fixture: copy(name) copies one of them into tmp_path

PAYLOADS = [
    "exec",
    "eval",
    "numpy.load",
    "os.system",
    "posix.system",
    "subprocess",
    "importlib",
    "operator.attrgetter",
    "getattr chain",
    "function reference",
    "numpy function",
    "sklearn function",
    "__reduce__ pickle",
]


# --------------------------------------------------------------------------- skops payloads
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("family", ["knn", "iforest"])
def test_skops_payload_runs_nothing(payload, family, model_copy, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "evil_pkg"))
    marker = tmp_path / "marker"
    model = model_copy(family)
    (model / "estimator_.skops").write_bytes(_payloads(marker, tmp_path)[payload])
    with pytest.raises(ModelFormatError, match="estimator_.skops"):
        deepad.load(model)
    assert not marker.exists(), f"{payload}: the payload ran"
    sys.modules.pop("deepad_evil_module", None)


def test_nested_payload_inside_a_real_estimator_is_refused(model_copy, tmp_path):
    """A call hidden deep inside an otherwise genuine NearestNeighbors dump."""
    marker = tmp_path / "marker"
    model = model_copy("knn")
    with zipfile.ZipFile(model / "estimator_.skops") as z:
        schema = json.loads(z.read("schema.json"))
        members = {n: z.read(n) for n in z.namelist() if n != "schema.json"}
    schema["content"]["content"]["n_neighbors"] = _call(
        "builtins", "exec", _str(f"open({str(marker)!r}, 'w').write('x')")
    )
    (model / "estimator_.skops").write_bytes(_skops_file(schema, members))
    with pytest.raises(ModelFormatError, match="builtins.exec"):
        deepad.load(model)
    assert not marker.exists()


def test_saved_skops_models_still_load_and_score_identically(saved, planted):
    X = planted[1]
    for name in ("knn", "iforest"):
        model = deepad.load(saved / name)
        again = deepad.load(saved / name)
        np.testing.assert_array_equal(model.decision_function(X), again.decision_function(X))


# --------------------------------------------------------------------------- model.json
def _set(config: dict, dotted: str, value) -> None:
    node = config
    *path, last = dotted.split(".")
    for key in path:
        node = node[key]
    node[last] = value


BAD_CONFIGS = {
    "threshold NaN": ("attributes.threshold_", float("nan"), "threshold_"),
    "threshold inf": ("attributes.threshold_", float("inf"), "threshold_"),
    "threshold text": ("attributes.threshold_", "high", "threshold_"),
    "threshold list": ("attributes.threshold_", [1.0], "threshold_"),
    "threshold bool": ("attributes.threshold_", True, "threshold_"),
    "n_features text": ("attributes.n_features_in_", "six", "n_features_in_"),
    "n_features zero": ("attributes.n_features_in_", 0, "n_features_in_"),
    "class is a number": ("class", 5, "class"),
    "class outside deepad": ("class", "os.system", "class"),
    "params not a dict": ("params", [1, 2], "params"),
    "unknown param": ("params.not_a_param", 1, "params"),
    "kinds not a dict": ("kinds", "json", "kinds"),
    "unknown kind": ("kinds.threshold_", "pickle", "threshold_"),
    "attribute missing": ("kinds.extra_", "json", "extra_"),
    "format version huge": ("format_version", 1e400, "format_version"),
    "format version text": ("format_version", "one", "format_version"),
    "contamination out of range": ("params.contamination", 7.0, "contamination"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_malformed_model_json_is_a_model_format_error(case, model_copy):
    model = model_copy("knn")
    config = _config(model)
    field, value, named = BAD_CONFIGS[case]
    _set(config, field, value)
    _write_config(model, config)
    with pytest.raises(ModelFormatError) as info:
        deepad.load(model)
    assert "model.json" in str(info.value) and named in str(info.value), str(info.value)


def test_scores_of_the_wrong_shape_are_refused(model_copy):
    from safetensors.numpy import load_file, save_file

    model = model_copy("knn")
    tensors = load_file(str(model / "tensors.safetensors"))
    tensors["decision_scores_"] = np.full((3, 3), np.nan)
    save_file(tensors, str(model / "tensors.safetensors"))
    with pytest.raises(ModelFormatError, match="decision_scores_"):
        deepad.load(model)


def test_missing_tensor_is_named(model_copy):
    from safetensors.numpy import load_file, save_file

    model = model_copy("knn")
    tensors = load_file(str(model / "tensors.safetensors"))
    del tensors["decision_scores_"]
    save_file(tensors, str(model / "tensors.safetensors"))
    with pytest.raises(ModelFormatError, match="decision_scores_"):
        deepad.load(model)


def test_deeply_nested_json_is_refused(model_copy):
    model = model_copy("knn")
    text = (model / "model.json").read_text()
    depth = 100_000
    nested = "[" * depth + "]" * depth
    (model / "model.json").write_text(text.replace('"attributes": {', f'"deep_": {nested}, "attributes": {{', 1))
    with pytest.raises(ModelFormatError, match="model.json"):
        deepad.load(model)


def test_huge_architecture_is_refused_before_allocating(model_copy):
    """hidden_dims that would allocate terabytes are refused by comparing with the stored weights' shapes."""
    model = model_copy("ae")
    config = _config(model)
    config["params"]["hidden_dims"] = {"__tuple__": [2**20, 2**20]}
    _write_config(model, config)
    with pytest.raises(ModelFormatError, match="module_|hidden_dims|weights"):
        deepad.load(model)


def test_missing_pyod_is_a_model_format_error(model_copy, monkeypatch):
    model = model_copy("knn")
    config = _config(model)
    config["class"] = "deepad.detectors.pyod_adapter.PyODDetector"
    config["params"] = {
        "detector": {"__pyod__": "pyod.models.knn.KNN", "params": {}},
        "params": None,
        "contamination": 0.1,
        "random_state": None,
    }
    _write_config(model, config)
    monkeypatch.setitem(sys.modules, "pyod", None)
    monkeypatch.setitem(sys.modules, "pyod.models", None)
    monkeypatch.setitem(sys.modules, "pyod.models.base", None)
    monkeypatch.setitem(sys.modules, "pyod.models.knn", None)
    with pytest.raises(ModelFormatError, match="(?i)pyod"):
        deepad.load(model)


# --------------------------------------------------------------------------- paths
@pytest.mark.parametrize("name", ["../../outside_", "/etc/passwd", "sub/dir_", "..", "__class__"])
def test_kinds_cannot_name_paths_outside_the_model(name, model_copy):
    model = model_copy("knn")
    config = _config(model)
    config["kinds"][name] = "skops"
    _write_config(model, config)
    with pytest.raises(ModelFormatError, match="model.json"):
        deepad.load(model)


def test_symlink_out_of_the_model_directory_is_refused(model_copy, tmp_path):
    model = model_copy("knn")
    outside = tmp_path / "outside.skops"
    shutil.copy(model / "estimator_.skops", outside)
    (model / "estimator_.skops").unlink()
    (model / "estimator_.skops").symlink_to(outside)
    with pytest.raises(ModelFormatError, match="outside"):
        deepad.load(model)


# --------------------------------------------------------------------------- the service's models root
def test_broken_model_in_a_models_root_is_skipped(saved, tmp_path, caplog):
    from deepad.serve.registry import ModelRegistry

    root = tmp_path / "root"
    shutil.copytree(saved / "knn", root / "good")
    shutil.copytree(saved / "knn", root / "bad")
    config = _config(root / "bad")
    config["attributes"]["threshold_"] = float("nan")
    _write_config(root / "bad", config)
    with caplog.at_level("WARNING", logger="deepad.serve"):
        registry = ModelRegistry.from_root(root)
    assert registry.names == ["good"]
    assert any("bad" in r.getMessage() and "threshold_" in r.getMessage() for r in caplog.records)


def test_models_root_where_every_model_is_broken_fails_clearly(saved, tmp_path):
    from deepad.serve.registry import ModelRegistry

    root = tmp_path / "root"
    shutil.copytree(saved / "knn", root / "bad")
    config = _config(root / "bad")
    config["attributes"]["threshold_"] = "x"
    _write_config(root / "bad", config)
    with pytest.raises(ModelFormatError, match="threshold_"):
        ModelRegistry.from_root(root)


def test_hot_reload_of_a_crafted_model_runs_nothing_and_keeps_serving(saved, tmp_path):
    """A payload dropped into a served model's directory is refused on reload; the old version stays."""
    from deepad.serve.registry import ModelRegistry, ReloadError

    model = tmp_path / "served"
    shutil.copytree(saved / "knn", model)
    registry = ModelRegistry.from_root(model)
    before = registry.get("served")
    marker = tmp_path / "marker"
    (model / "estimator_.skops").write_bytes(_payloads(marker, tmp_path)["exec"])
    with pytest.raises(ReloadError, match="builtins.exec"):
        registry.reload("served", force=True)
    assert not marker.exists()
    assert registry.get("served") is before
