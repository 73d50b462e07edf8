"""Saving and loading: safe formats, clear errors, atomic writes, device mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepad
from deepad.detectors import AutoEncoder
from deepad.persistence import ModelFormatError

from conftest import FAST_PARAMS


@pytest.fixture(scope="module")
def model(planted):
    return AutoEncoder(**FAST_PARAMS["AutoEncoder"], random_state=0).fit(planted[0])


def test_files_are_json_and_safetensors_only(model, tmp_path):
    model.save(tmp_path / "m")
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["model.json", "tensors.safetensors"]
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    assert config["format"] == "deepad-model" and config["class"] == "deepad.detectors.autoencoder.AutoEncoder"
    assert {"deepad", "torch", "numpy", "scikit-learn", "python"} <= set(config["versions"])
    assert config["params"]["hidden_dims"] == {"__tuple__": [16, 8]}


def test_loaded_model_records_versions_and_history(model, tmp_path, planted):
    model.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    assert loaded.saved_versions_["deepad"] == deepad.__version__
    assert loaded.history_ == model.history_
    np.testing.assert_array_equal(loaded.labels_, model.labels_)


def test_overwrite_existing_model_and_refuse_foreign_directory(model, tmp_path):
    model.save(tmp_path / "m")
    model.save(tmp_path / "m")  # replacing a model is fine
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a deepad model directory"):
        model.save(other)
    assert (other / "cat.jpg").read_bytes() == b"x"


def test_interrupted_save_leaves_nothing_behind(model, tmp_path, monkeypatch):
    import deepad.persistence as P

    model.save(tmp_path / "m")
    before = (tmp_path / "m" / "tensors.safetensors").read_bytes()

    def boom(detector, directory):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.json").write_text("{partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], "no temporary directories left"
    assert (tmp_path / "m" / "tensors.safetensors").read_bytes() == before


def test_unfitted_model_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AutoEncoder().save(tmp_path / "m")


def test_missing_path_and_file_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model at"):
        deepad.load(tmp_path / "nothing")
    f = tmp_path / "model.pt"
    f.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelFormatError, match="is a file"):
        deepad.load(f)


def test_foreign_and_damaged_files_fail_clearly(model, tmp_path):
    model.save(tmp_path / "m")
    config = tmp_path / "m" / "model.json"
    good = config.read_text()

    config.write_text("not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        deepad.load(tmp_path / "m")

    config.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ModelFormatError, match="not a deepad model file"):
        deepad.load(tmp_path / "m")

    evil = json.loads(good)
    evil["class"] = "os.system"
    config.write_text(json.dumps(evil))
    with pytest.raises(ModelFormatError, match="only deepad detectors"):
        deepad.load(tmp_path / "m")

    evil["class"] = "deepad.persistence.ModelFormatError"
    config.write_text(json.dumps(evil))
    with pytest.raises(ModelFormatError, match="not a deepad detector"):
        deepad.load(tmp_path / "m")

    config.write_text(good)
    tensors = tmp_path / "m" / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="tensors.safetensors is missing or damaged"):
        deepad.load(tmp_path / "m")


def test_weights_that_do_not_fit_the_architecture(model, tmp_path):
    model.save(tmp_path / "m")
    config = tmp_path / "m" / "model.json"
    data = json.loads(config.read_text())
    data["params"]["latent_dim"] = 3
    config.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="do not fit the model"):
        deepad.load(tmp_path / "m")


def test_gpu_trained_model_loads_on_cpu(model, tmp_path, planted):
    """A model saved with device='cuda' loads on a machine without CUDA, on the CPU."""
    import torch

    model.save(tmp_path / "m")
    config = tmp_path / "m" / "model.json"
    data = json.loads(config.read_text())
    data["params"]["device"] = "cuda"
    config.write_text(json.dumps(data))
    loaded = deepad.load(tmp_path / "m")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(loaded.module_.parameters()).device.type == expected
    np.testing.assert_array_equal(loaded.decision_function(planted[1]), model.decision_function(planted[1]))
    cpu = deepad.load(tmp_path / "m", device="cpu")
    assert next(cpu.module_.parameters()).device.type == "cpu"


def test_newer_format_refused(model, tmp_path):
    model.save(tmp_path / "m")
    config = tmp_path / "m" / "model.json"
    data = json.loads(config.read_text())
    data["format_version"] = 99
    config.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="newer deepad"):
        deepad.load(tmp_path / "m")


# --------------------------------------------------------------------------- training scores stored once (issue 19)
def _stored_arrays(directory):
    from safetensors import safe_open

    file = directory / "tensors.safetensors"
    if not file.exists():
        return set()
    with safe_open(str(file), framework="numpy") as f:
        return set(f.keys())


@pytest.mark.parametrize("name", ["AutoEncoder", "KNN"])
def test_training_scores_are_stored_once_and_rebuilt_on_load(name, planted, tmp_path):
    import deepad.detectors as D

    det = getattr(D, name)(**FAST_PARAMS[name]).fit(planted[0])
    det.save(tmp_path / "m")
    stored = _stored_arrays(tmp_path / "m")
    assert "decision_scores_" in stored and not {"_reference_scores_", "labels_"} & stored
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    assert config["derived"] == ["_reference_scores_", "labels_"] and config["format_version"] == 2
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_scores_, det.decision_scores_)
    np.testing.assert_array_equal(loaded.labels_, det.labels_)
    assert loaded.labels_.dtype == det.labels_.dtype and loaded._reference_scores_ is loaded.decision_scores_
    X_test = planted[1]
    np.testing.assert_array_equal(loaded.predict_proba(X_test), det.predict_proba(X_test))


def test_table_pipeline_keeps_one_copy_of_the_training_scores(planted, tmp_path):
    import pandas as pd

    from deepad.pipeline import TabularDetector

    df = pd.DataFrame(planted[0], columns=[f"c{i}" for i in range(planted[0].shape[1])])
    model = TabularDetector(AutoEncoder(**FAST_PARAMS["AutoEncoder"], random_state=0), contamination=0.05).fit(df)
    model.save(tmp_path / "m")
    assert not {"decision_scores_", "_reference_scores_", "labels_"} & _stored_arrays(tmp_path / "m")
    assert "decision_scores_" in _stored_arrays(tmp_path / "m" / "detector_")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.labels_, model.labels_)  # the pipeline's own threshold, not the detector's
    assert loaded.labels_.sum() != loaded.detector_.labels_.sum()
    assert loaded.threshold_ == model.threshold_


def test_a_relabelled_model_keeps_labels_that_are_not_derivable(model, tmp_path):
    """labels_ that differ from decision_scores_ > threshold_ (an old model, a hand edit) are stored as they are."""
    det = AutoEncoder(**FAST_PARAMS["AutoEncoder"], random_state=0)
    det.__dict__.update({k: v for k, v in vars(model).items() if k.endswith("_")})
    det.labels_ = 1 - model.labels_
    det.save(tmp_path / "m")
    assert "labels_" in _stored_arrays(tmp_path / "m")
    np.testing.assert_array_equal(deepad.load(tmp_path / "m").labels_, det.labels_)


def test_a_derived_name_the_class_cannot_rebuild_is_refused(model, tmp_path):
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    config = json.loads(path.read_text())
    config["derived"] = ["labels_", "extra_"]
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=r"names \[.extra_.\], which AutoEncoder cannot rebuild"):
        deepad.load(tmp_path / "m")
    config["derived"] = "labels_"
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match="field 'derived' must list"):
        deepad.load(tmp_path / "m")


def test_default_saves_its_neighbour_rows_as_an_array_and_loads_without_skops(tmp_path):
    """DEFAULT's kNN index is rebuilt from ``reference_`` at load: no .skops file, no skops import, same scores."""
    import subprocess
    import sys

    import numpy as np

    import deepad
    from deepad.detectors import DEFAULT

    rng = np.random.default_rng(0)
    X, new = rng.normal(size=(400, 5)), rng.normal(size=(50, 5))
    model = DEFAULT(max_reference=300, random_state=0).fit(X)
    model.save(tmp_path / "m")
    assert not list((tmp_path / "m").rglob("*.skops"))
    loaded = deepad.load(tmp_path / "m")
    assert np.array_equal(loaded.decision_function(new), model.decision_function(new))
    assert loaded.reference_.shape == (300, 5) and loaded.neighbors_.n_samples_fit_ == 300
    code = f"import sys, deepad; deepad.load({str(tmp_path / 'm')!r}); print('skops.io' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
