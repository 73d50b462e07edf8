"""Models saved by an earlier deepad still load and score identically (issue 16).

``tests/fixtures/models/`` holds one tiny saved model per detector family,
a ``TabularDetector``, an ``ImagePipeline`` and two models written by
``deepad train``, each with the input it scores and the scores the code that
saved it gave (main at 3ac56bc, before issue 16's moves; see
``tests/fixtures/make_models.py`` for the command that regenerates them --
from the *old* source, never from the code under test).

Every model must load with the code under test, the class path recorded in
each ``model.json`` (nested members included) must still resolve, and
``predict`` and ``threshold_`` must be exactly what the old code gave, and
``decision_function`` too, up to the last bits of float arithmetic: BLAS and
torch pick their kernels by CPU, so the same code on another processor rounds
differently.  Measured on an AMD EPYC against the fixtures' writer: 22 of 30
models differ, by at most 8.9e-7 of the score scale (DAGMM; float32 networks
about 1e-7, classical float64 models 2e-16), with every flag the same.
``FLOAT_TOLERANCE`` allows 5e-6 of the scale; a changed rule (scaling, a
kernel, a threshold) moves scores by orders of magnitude more.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

import deepad
from deepad.base import BaseDetector

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
#: the largest score difference allowed, as a share of max(1, |score|): float rounding that differs between CPUs
FLOAT_TOLERANCE = 5e-6
MANIFEST = json.loads((MODELS / "manifest.json").read_text())
NAMES = sorted(p.name for p in MODELS.iterdir() if p.is_dir())

#: the fixtures the old code wrote; a missing one is a lost check, not a detector that went away
EXPECTED = {
    "ALAD",
    "AutoEncoder",
    "BoostedDetector",
    "ConformalKNN",
    "ConvAutoEncoder",
    "ConvDeepSVDD",
    "ConvVAE",
    "DAGMM",
    "DeepIsolationForest",
    "DeepSAD",
    "DeepSVDD",
    "DevNet",
    "ECOD",
    "GANomaly",
    "GRUForecaster",
    "HBOS",
    "ImagePipeline",
    "IsolationForest",
    "KNN",
    "LOF",
    "LocalGlobalEnsemble",
    "Mahalanobis",
    "OneClassSVM",
    "PCA",
    "RollingZScore",
    "TCNAutoEncoder",
    "TabularDetector",
    "VAE",
    "cli_train_series",
    "cli_train_table",
}


def _resolve(path: str) -> type:
    """The class a recorded ``module.Class`` path names, imported the plain way (no deepad registry)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _member(model, parts: tuple[str, ...]):
    """The loaded object a nested model directory (``deep_``, ``detector_/hbos_``, ``members_/0``) was saved from."""
    obj = model
    for part in parts:
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _input(name: str):
    file = MODELS / MANIFEST[name]["input"]
    return str(file) if file.suffix == ".csv" else np.load(file)  # tables are scored as files, like `deepad score`


@pytest.fixture(scope="module")
def loaded():
    cache: dict[str, object] = {}

    def get(name):
        if name not in cache:
            cache[name] = deepad.load(MODELS / name)
        return cache[name]

    return get


def test_every_fixture_is_there():
    assert set(NAMES) == EXPECTED
    assert set(MANIFEST) - {"_about"} == EXPECTED
    for name in EXPECTED:
        assert (MODELS / f"{name}.scores.npy").is_file() and (MODELS / MANIFEST[name]["input"]).is_file()
    assert MANIFEST["_about"]["deepad_source_commit"].startswith("3ac56bc")


@pytest.mark.parametrize("name", NAMES)
def test_class_paths_in_model_json_resolve(name, loaded):
    model = loaded(name)
    top = MODELS / name / "model.json"
    assert json.loads(top.read_text())["class"] == MANIFEST[name]["class"]
    for config in sorted((MODELS / name).rglob("model.json")):  # the model and its nested members
        recorded = json.loads(config.read_text())["class"]
        cls = _resolve(recorded)
        assert isinstance(cls, type) and issubclass(cls, BaseDetector), recorded
        member = _member(model, config.parent.relative_to(MODELS / name).parts)
        assert type(member) is cls, f"{config}: {recorded} resolves to {cls}, loaded a {type(member)}"


@pytest.mark.parametrize("name", NAMES)
def test_scores_threshold_and_flags_unchanged(name, loaded):
    model = loaded(name)
    X = _input(name)
    expected = np.load(MODELS / f"{name}.scores.npy")
    scores = np.asarray(model.decision_function(X))
    assert scores.dtype == expected.dtype and scores.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(
        scores, expected, rtol=0, atol=FLOAT_TOLERANCE * scale, err_msg=f"{name} scores its saved input differently"
    )
    assert model.threshold_ == MANIFEST[name]["threshold"]
    saved = json.loads((MODELS / name / "model.json").read_text())["attributes"]["threshold_"]
    assert model.threshold_ == saved
    np.testing.assert_array_equal(np.asarray(model.predict(X)), MANIFEST[name]["predict"])
