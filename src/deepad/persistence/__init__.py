"""Saving and loading fitted detectors without pickle.

A saved model is a directory:

``model.json``
    format marker and version, the detector's class (which must be a deepad
    detector -- no arbitrary code is ever imported), its ``get_params()``,
    its JSON-able learned attributes, and the versions of deepad, torch,
    NumPy, scikit-learn and Python it was saved with.
``tensors.safetensors``
    every NumPy array and every ``nn.Module``'s weights (safetensors holds
    raw tensors only, so loading cannot execute code).
``<attr>.skops``
    fitted scikit-learn estimators (Isolation Forest trees, kNN indexes),
    written by skops, which refuses to load types not on a trusted list.
``<attr>/``
    nested detectors (ensemble members), saved recursively.

The directory is written next to its destination and renamed into place
(:class:`deepad.data.writers.AtomicOutput`), so an interrupted save never
leaves a half-written model, and the part a killed save left is removed by
the next save of the same model.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import numpy as np

from deepad.persistence._skops import SKOPS_TRUSTED_TYPES
from deepad.persistence._skops import skops_dumps as _skops_dumps
from deepad.persistence._skops import skops_untrusted as _skops_untrusted

FORMAT = "deepad-model"
#: 2: arrays other state determines (``derived``, e.g. ``labels_``) are rebuilt at load, not stored; a model
#: without any is still written as version 1, which older deepad versions read.
FORMAT_VERSION = 2
CONFIG = "model.json"
TENSORS = "tensors.safetensors"

__all__ = ["save", "load", "ModelFormatError", "register_detector", "pyod_class"]


class ModelFormatError(ValueError):
    """The path does not hold a deepad model, or the model files are damaged."""


# --------------------------------------------------------------------------- the classes a model may name
#: Every deepad detector class by class path, filled by ``BaseDetector.__init_subclass__`` (so this module,
#: below ``deepad.base`` in the layers, never imports a detector): the only classes ``load`` constructs.
_DETECTOR_CLASSES: dict[str, type] = {}


def register_detector(cls: type) -> type:
    """Let :func:`load` construct ``cls`` (called for every subclass of :class:`~deepad.base.BaseDetector`)."""
    _DETECTOR_CLASSES[_class_path(cls)] = cls
    return cls


def _is_detector(value: Any) -> bool:
    return _DETECTOR_CLASSES.get(_class_path(type(value))) is type(value)


_INSTALL_HINT = "PyODDetector needs PyOD, which is not installed: pip install pyod  (or pip install 'deepad[bench]')."


def require_pyod():
    try:
        import pyod.models.base as pyod_base
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return pyod_base


def pyod_class(path: str) -> type:
    """Import a PyOD detector class from its dotted path, e.g. ``"pyod.models.knn.KNN"``.

    Used by :class:`~deepad.detectors.PyODDetector` and for saved ``__pyod__`` templates.

    Only classes from the ``pyod`` package that subclass PyOD's
    ``BaseDetector`` are accepted, so a (possibly saved) class path can never
    import arbitrary code.
    """
    if not isinstance(path, str):
        raise TypeError(f"detector class path must be a string, got {type(path).__name__}.")
    module_name, _, name = path.rpartition(".")
    if not module_name.startswith("pyod."):
        raise ValueError(f"detector={path!r} is not a PyOD class path; expected e.g. 'pyod.models.knn.KNN'.")
    pyod_base = require_pyod()
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"detector={path!r}: no such class in the installed PyOD ({exc}).") from None
    if not (isinstance(cls, type) and issubclass(cls, pyod_base.BaseDetector)):
        raise ValueError(f"detector={path!r} is not a PyOD detector class.")
    return cls


# --------------------------------------------------------------------------- JSON encoding of params
def _encode(value: Any) -> Any:
    if _is_detector(value):
        return {"__detector__": _class_path(type(value)), "params": _encode(value.get_params(deep=False))}
    if type(value).__module__.startswith("pyod.") and hasattr(value, "get_params"):
        # an unfitted PyOD template (PyODDetector's ``detector``): class path + its params
        return {"__pyod__": _class_path(type(value)), "params": _encode(value.get_params(deep=False))}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save parameter value of type {type(value).__name__}: {value!r}")


def _saved_params(cls, params: dict) -> dict:
    """``params`` as saved, with the values a parameter added later had *before* it existed.

    A class lists them in ``_params_before_added`` (e.g. TabularDetector's
    ``category_encoding``: "onehot" for models saved before rarity scaling),
    so ``get_params()`` of a loaded model says what it does, and a refit
    does the same.
    """
    return {**getattr(cls, "_params_before_added", {}), **params}


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        if "__detector__" in value:
            cls = _detector_class(value["__detector__"])
            return cls(**_saved_params(cls, _decode(value["params"])))
        if "__pyod__" in value:
            try:
                return pyod_class(value["__pyod__"])(**_decode(value["params"]))
            except ValueError as exc:
                raise ModelFormatError(str(exc)) from None
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _detector_class(path: str) -> type:
    if not isinstance(path, str):
        raise ModelFormatError(f"model names detector class {path!r} (field 'class'): expected a dotted class path.")
    module_name, _, name = path.rpartition(".")
    if not (module_name == "deepad" or module_name.startswith("deepad.")):
        raise ModelFormatError(f"refusing to load class {path!r} (field 'class'): only deepad detectors can be loaded.")
    if path not in _DETECTOR_CLASSES:
        try:  # importing the module registers its detector classes
            importlib.import_module(module_name)
        except (ImportError, ValueError) as exc:
            raise ModelFormatError(
                f"model names detector class {path!r} (field 'class'), which this deepad version does not have."
            ) from exc
    cls = _DETECTOR_CLASSES.get(path)
    if cls is None:
        raise ModelFormatError(f"{path!r} (field 'class') is not a deepad detector class this deepad version has.")
    return cls


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    import deepad

    return {
        "deepad": deepad.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- save
def _learned_attributes(detector) -> dict[str, Any]:
    return {k: v for k, v in vars(detector).items() if k.endswith("_") and not k.startswith("__")}


def _derived_names(detector, learned: dict[str, Any]) -> list[str]:
    """The learned arrays that :meth:`~deepad.base.BaseDetector._derived_state` rebuilds exactly: not written."""
    rebuild = getattr(detector, "_derived_state", None)
    if rebuild is None:
        return []
    names = []
    for name, make in rebuild().items():
        value = learned.get(name)
        if not isinstance(value, np.ndarray):
            continue
        try:
            again = make()
        except (AttributeError, TypeError, ValueError):  # state it needs is missing: keep the array
            continue
        if value is again or (
            isinstance(again, np.ndarray) and again.dtype == value.dtype and np.array_equal(again, value)
        ):
            names.append(name)
    return names


def _write(detector, directory: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from sklearn.base import BaseEstimator
    from torch import nn

    tensors: dict[str, torch.Tensor] = {}
    attrs: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    learned = _learned_attributes(detector)
    derived = _derived_names(detector, learned)
    for name, value in learned.items():
        if name in derived:
            continue
        if isinstance(value, nn.Module):
            for key, t in value.state_dict().items():
                tensors[f"{name}/{key}"] = t.detach().to("cpu").clone()
            kinds[name] = "module"
        elif isinstance(value, torch.Tensor):
            tensors[name] = value.detach().to("cpu").clone()
            kinds[name] = "tensor"
        elif isinstance(value, np.ndarray) and value.dtype != object:
            tensors[name] = torch.from_numpy(np.array(value, copy=True, order="C"))
            kinds[name] = "array"
        elif isinstance(value, np.ndarray):
            attrs[name] = value.tolist()
            kinds[name] = "object_array"
        elif _is_detector(value):
            _write(value, directory / name)
            kinds[name] = "detector"
        elif isinstance(value, list) and value and all(_is_detector(v) for v in value):
            for i, member in enumerate(value):
                _write(member, directory / name / str(i))
            attrs[name] = len(value)
            kinds[name] = "detector_list"
        elif type(value).__module__.split(".")[0] == "catboost":
            # CatBoost's own binary model format (no pickle): BoostedDetector's classifier
            directory.mkdir(parents=True, exist_ok=True)
            value.save_model(str(directory / f"{name}.cbm"), format="cbm")
            attrs[name] = type(value).__name__
            kinds[name] = "catboost"
        elif (
            isinstance(value, BaseEstimator)
            or getattr(detector, "_skops_attributes", ())
            and name in detector._skops_attributes
        ):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{name}.skops").write_bytes(_skops_dumps(detector, name, value))
            kinds[name] = "skops"
        else:
            try:
                attrs[name] = _encode(value)
            except TypeError as exc:
                raise TypeError(f"{type(detector).__name__}.{name} cannot be saved: {exc}") from None
            kinds[name] = "json"
    directory.mkdir(parents=True, exist_ok=True)
    if tensors:
        save_file(tensors, str(directory / TENSORS))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if derived else 1,
        "class": _class_path(type(detector)),
        "params": _encode(detector.get_params(deep=False)),
        "attributes": attrs,
        "kinds": kinds,
        **({"derived": derived} if derived else {}),
        "versions": _versions(),
    }
    (directory / CONFIG).write_text(json.dumps(config, indent=2, allow_nan=True))


def save(detector, path: str | os.PathLike) -> Path:
    """Save a fitted detector to directory ``path`` atomically (write aside, then rename).

    Only deepad detectors (``TabularDetector`` for preprocessing + detector): a ``TypeError`` says so for
    anything else, e.g. a scikit-learn ``Pipeline``, whose steps deepad cannot save without pickle.
    """
    from sklearn.utils.validation import check_is_fitted

    if not _is_detector(detector):
        steps = getattr(detector, "steps", None)
        what = type(detector).__name__ + (f" ({' -> '.join(type(s).__name__ for _, s in steps)})" if steps else "")
        raise TypeError(
            f"deepad.save saves deepad detectors, not {what}. For preprocessing plus a detector use "
            "deepad.pipeline.TabularDetector(detector), which fits and saves its own scaling and encoding"
            + (
                "; or save the Pipeline with skops.io.dump and its detector step with deepad.save(pipeline[-1])."
                if steps
                else "."
            )
        )
    check_is_fitted(detector, "decision_scores_")
    path = Path(path)
    if path.exists() and not (path / CONFIG).is_file():
        if path.is_file() or any(path.iterdir()):
            raise FileExistsError(f"{path} exists and is not a deepad model directory; refusing to overwrite it.")
    from deepad.data.writers import AtomicOutput  # here, so reading a model's metadata never imports the data layer

    with AtomicOutput(path, directory=True, during=f"saving {type(detector).__name__}") as part:
        _write(detector, part.path)
    return path


# --------------------------------------------------------------------------- load
#: A learned attribute's name: an identifier ending in ``_`` (never a path, never a dunder).
_ATTRIBUTE = re.compile(r"^_?[A-Za-z][A-Za-z0-9_]*_$")
_KINDS = frozenset(
    {"json", "object_array", "array", "tensor", "module", "detector", "detector_list", "catboost", "skops"}
)
#: model.json larger than this is refused before it is parsed (a real one is a few hundred kB at most).
MAX_CONFIG_BYTES = 256 * 1024 * 1024
#: nested detectors deeper than this are refused (an ensemble of ensembles is two levels).
_MAX_DEPTH = 8
#: what a malformed file makes the code below raise; each becomes a ModelFormatError naming the file.
_MALFORMED = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,
    OverflowError,
    RuntimeError,
    ImportError,
    MemoryError,
    OSError,
)


def _inside(directory: Path, name: str, config_path: Path) -> Path:
    """``directory / name``, refused unless it resolves inside ``directory`` (no ``..``, absolute path or symlink out)."""
    path = directory / name
    root = directory.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ModelFormatError(f"{config_path}: {name} points outside the model directory ({resolved}); refusing it.")
    return path


def _read_config(config_path: Path) -> dict:
    try:
        size = config_path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ModelFormatError(
                f"{config_path} is {size:,} bytes, more than a deepad model file holds "
                f"({MAX_CONFIG_BYTES:,}); refusing to read it."
            )
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{config_path} is damaged: not valid JSON ({exc}).") from None
    except RecursionError:
        raise ModelFormatError(f"{config_path} is damaged: its JSON is nested too deeply.") from None
    except OSError as exc:
        raise ModelFormatError(f"{config_path} cannot be read: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFormatError(f"{config_path} is not a deepad model file (no '{FORMAT}' format marker).")
    version = config.get("format_version", -1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFormatError(f"{config_path}: format_version must be an integer, got {version!r}.")
    if version > FORMAT_VERSION:
        raise ModelFormatError(f"{config_path.parent} was saved by a newer deepad (format {version}); upgrade deepad.")
    for field, kind in (("class", str), ("params", dict), ("kinds", dict), ("attributes", dict)):
        if not isinstance(config.get(field), kind):
            raise ModelFormatError(
                f"{config_path}: field {field!r} must be a {kind.__name__}, got {type(config.get(field)).__name__}."
            )
    derived = config.get("derived", [])
    if not (isinstance(derived, list) and all(isinstance(n, str) and n not in config["kinds"] for n in derived)):
        raise ModelFormatError(
            f"{config_path}: field 'derived' must list attribute names that 'kinds' does not, got {derived!r}."
        )
    for name, kind in config["kinds"].items():
        if not _ATTRIBUTE.match(name) or name.startswith("__"):
            raise ModelFormatError(
                f"{config_path}: kinds names {name!r}, which is not a learned attribute (an identifier ending in '_')."
            )
        if kind not in _KINDS:
            raise ModelFormatError(f"{config_path}: attribute {name!r} has unknown kind {kind!r}.")
        if kind in ("json", "object_array", "detector_list", "catboost") and name not in config["attributes"]:
            raise ModelFormatError(f"{config_path}: attribute {name!r} is missing from 'attributes'.")
    return config


def _new_module_checked(detector, name: str, state: dict, file: Path):
    """The detector's module ``name`` with the stored weights, its shapes checked before any memory is allocated.

    The module is first built on PyTorch's ``meta`` device (shapes, no storage), so parameters that would ask
    for terabytes are caught by comparing with the stored tensors' shapes; only a module whose every weight is
    in the file -- so no larger than the file -- is then built for real.
    """
    import torch

    with torch.device("meta"):
        shape = {k: tuple(v.shape) for k, v in detector._new_module(name).state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    if shape != stored:
        missing = sorted(set(shape) - set(stored))
        wrong = sorted(k for k in set(shape) & set(stored) if shape[k] != stored[k])
        extra = sorted(set(stored) - set(shape))
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"shape of {wrong[0]} is {stored[wrong[0]]} in the file, {shape[wrong[0]]} for the parameters"
                if wrong
                else "",
                f"unexpected {extra[:3]}" if extra else "",
            )
            if part
        )
        raise ModelFormatError(f"{file}: weights of {name} do not fit the model's parameters ({detail}).")
    module = detector._new_module(name)
    module.load_state_dict(state, strict=True)
    return module


def _read(directory: Path, device: str | None, depth: int = 0):
    config_path = directory / CONFIG
    if depth > _MAX_DEPTH:
        raise ModelFormatError(f"{config_path}: detectors nested more than {_MAX_DEPTH} levels deep.")
    if not config_path.is_file():
        raise ModelFormatError(f"{directory} is not a deepad model: {CONFIG} is missing.")
    _inside(directory, CONFIG, config_path)
    config = _read_config(config_path)
    try:
        detector = _build(directory, config, device, depth)
    except ModelFormatError as exc:
        if str(directory) in str(exc):
            raise
        raise ModelFormatError(f"{config_path}: {exc}") from None
    except _MALFORMED as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, ImportError):
            text = f"a package it needs is missing: {text}"
        raise ModelFormatError(f"{config_path} is damaged or incomplete: {text}") from None
    check = getattr(detector, "_check_loaded_state", None)
    if check is not None:
        try:
            check()
        except _MALFORMED as exc:
            raise ModelFormatError(f"{config_path}: {' '.join(str(exc).split())}") from None
    detector.saved_versions_ = config.get("versions", {})
    return detector


def _build(directory: Path, config: dict, device: str | None, depth: int):
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from deepad.training import resolve_device

    config_path = directory / CONFIG
    cls = _detector_class(config["class"])
    try:
        detector = cls(**_saved_params(cls, _decode(config["params"])))
    except TypeError as exc:
        raise ModelFormatError(f"{config_path}: params do not fit {config['class']}: {exc}") from None
    kinds: dict[str, str] = config["kinds"]
    attrs: dict[str, Any] = config["attributes"]

    tensors: dict[str, torch.Tensor] = {}
    if any(k in ("module", "tensor", "array") for k in kinds.values()):
        file = _inside(directory, TENSORS, config_path)
        try:
            tensors = load_file(str(file), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"{file} is missing or damaged: {exc}") from None

    def tensor(name: str):
        if name not in tensors:
            raise ModelFormatError(f"{directory / TENSORS}: tensor {name!r} is missing.")
        return tensors[name]

    # JSON attributes and arrays first: building a module may need n_features_in_ and friends.
    for name, kind in kinds.items():
        if kind == "json":
            setattr(detector, name, _decode(attrs[name]))
        elif kind == "object_array":
            setattr(detector, name, np.asarray(attrs[name], dtype=object))
        elif kind == "array":
            setattr(detector, name, tensor(name).numpy())
        elif kind == "tensor":
            setattr(detector, name, tensor(name))
    target = None
    if device is not None:
        target = resolve_device(device)
    else:
        try:
            target = resolve_device(getattr(detector, "device", "cpu"))
        except ValueError:  # trained on a GPU this machine lacks
            target = torch.device("cpu")
    for name, kind in kinds.items():
        if kind == "module":
            prefix = f"{name}/"
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            module = _new_module_checked(detector, name, state, directory / TENSORS)
            setattr(detector, name, module.to(target).eval())
        elif kind == "detector":
            setattr(detector, name, _read(_inside(directory, name, config_path), device, depth + 1))
        elif kind == "detector_list":
            count = attrs[name]
            if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 10_000:
                raise ModelFormatError(
                    f"{config_path}: attribute {name!r} must count 1 to 10,000 members, got {count!r}."
                )
            base = _inside(directory, name, config_path)
            setattr(detector, name, [_read(base / str(i), device, depth + 1) for i in range(count)])
        elif kind == "catboost":
            import catboost

            file = _inside(directory, f"{name}.cbm", config_path)
            if attrs.get(name) not in ("CatBoostClassifier", "CatBoostRegressor"):
                raise ModelFormatError(f"{config_path}: unknown CatBoost model class {attrs.get(name)!r}.")
            try:
                setattr(detector, name, getattr(catboost, attrs[name])().load_model(str(file), format="cbm"))
            except Exception as exc:  # CatBoostError for damaged or missing files
                raise ModelFormatError(f"{file} is missing or damaged: {exc}") from None
        elif kind == "skops":
            import skops.io as sio

            file = _inside(directory, f"{name}.skops", config_path)
            try:
                bad = _skops_untrusted(file=file)
            except Exception as exc:  # skops raises many types for damaged zips
                raise ModelFormatError(f"{file} is missing or damaged: {' '.join(str(exc).split())}") from None
            if bad:
                raise ModelFormatError(
                    f"{file} contains types deepad does not load ({', '.join(bad[:5])}"
                    f"{', ...' if len(bad) > 5 else ''}); refusing to load it."
                )
            try:
                setattr(detector, name, sio.load(file, trusted=sorted(SKOPS_TRUSTED_TYPES)))
            except Exception as exc:  # skops raises many types for damaged zips
                raise ModelFormatError(f"{file} is damaged: {' '.join(str(exc).split())}") from None
    _rebuild_derived(detector, config.get("derived", []), config_path)
    return detector


def _rebuild_derived(detector, names: list[str], config_path: Path) -> None:
    """Set the arrays the model was saved without (``derived``) from the state they are functions of."""
    if not names:
        return
    rebuild = getattr(detector, "_derived_state", lambda: {})()
    unknown = sorted(set(names) - set(rebuild))
    if unknown:
        raise ModelFormatError(
            f"{config_path}: field 'derived' names {unknown}, which {type(detector).__name__} cannot rebuild."
        )
    for name, make in rebuild.items():
        if name in names:
            setattr(detector, name, make())


def load(path: str | os.PathLike, device: str | None = None):
    """Load a detector saved with :func:`save`.

    ``device=None`` uses the detector's own ``device`` setting when that
    device exists here and the CPU otherwise, so a GPU-trained model loads
    on a CPU-only machine.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}")
    if path.is_file():
        raise ModelFormatError(f"{path} is a file; a deepad model is a directory containing {CONFIG}.")
    return _read(path, device)
