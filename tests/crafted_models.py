"""Saved models and crafted skops payloads shared by tests/unit/test_crafted_models.py and
tests/integration/test_crafted_models_cli.py."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def saved(tmp_path_factory, planted):
    """Saved models that hold skops files (KNN, IsolationForest) and one that holds torch weights."""
    from deepad.detectors import KNN, AutoEncoder, IsolationForest

    X = planted[0][:200]
    root = tmp_path_factory.mktemp("models")
    KNN(n_neighbors=5).fit(X).save(root / "knn")
    IsolationForest(n_estimators=10, random_state=0).fit(X).save(root / "iforest")
    AutoEncoder(epochs=1, hidden_dims=(8,), latent_dim=2, batch_size=64, random_state=0).fit(X).save(root / "ae")
    return root


@pytest.fixture
def model_copy(saved, tmp_path):
    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(saved / name, dst)
        return dst

    return copy


def _config(model: Path) -> dict:
    return json.loads((model / "model.json").read_text())


def _write_config(model: Path, config: dict) -> None:
    (model / "model.json").write_text(json.dumps(config))


def _skops_file(schema: dict, members: dict[str, bytes] | None = None) -> bytes:
    schema = {"protocol": 2, "_skops_version": "0.16.0", **schema}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema.json", json.dumps(schema))
        for name, data in (members or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def _str(value: str) -> dict:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": id(value),
    }


def _json(value) -> dict:
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": 1,
    }


def _call(module: str, name: str, *args: dict) -> dict:
    """A skops node that, when constructed, calls ``module.name(*args)``."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": list(args),
            "__id__": 2,
        },
        "__id__": 3,
    }


def _function(module: str, name: str) -> dict:
    return {"__class__": name, "__module__": module, "__loader__": "FunctionNode", "__id__": 4}


class _Reduce:
    """A classic pickle payload: unpickling calls ``os.system``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _payloads(marker: Path, tmp: Path) -> dict[str, bytes]:
    touch = f"open({str(marker)!r}, 'w').write('pwned')"
    shell = f"touch {marker}"
    pickled = tmp / "payload.npy"
    pickled.write_bytes(pickle.dumps(_Reduce(shell)))
    module_dir = tmp / "evil_pkg"
    module_dir.mkdir(exist_ok=True)
    (module_dir / "deepad_evil_module.py").write_text(touch + "\n")
    return {
        "exec": _skops_file(_call("builtins", "exec", _str(touch))),
        "eval": _skops_file(_call("builtins", "eval", _str(touch))),
        "numpy.load": _skops_file(_call("numpy", "load", _str(str(pickled)), _json(None), _json(True))),
        "os.system": _skops_file(_call("os", "system", _str(shell))),
        "posix.system": _skops_file(_call("posix", "system", _str(shell))),
        "subprocess": _skops_file(_call("subprocess", "getoutput", _str(shell))),
        "importlib": _skops_file(_call("importlib", "import_module", _str("deepad_evil_module"))),
        "operator.attrgetter": _skops_file(_call("operator", "attrgetter", _str("system"))),
        "getattr chain": _skops_file(
            _call("builtins", "getattr", _call("builtins", "__import__", _str("os")), _str("system"))
        ),
        "function reference": _skops_file(_function("builtins", "exec")),
        "numpy function": _skops_file(_function("numpy", "load")),
        "sklearn function": _skops_file(_call("sklearn.utils", "_safe_indexing", _json([1]), _json(0))),
        # the .skops file replaced by a pickle whose __reduce__ runs a shell command
        "__reduce__ pickle": pickle.dumps(_Reduce(shell)),
    }
