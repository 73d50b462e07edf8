"""Models being served: discovery, loading, fingerprints and atomic hot reload.

A *served model* is a model directory written by ``deepad train`` /
``detector.save``.  ``MODELS_ROOT`` is either such a directory (one model,
named after the directory) or a directory whose sub-directories are models
(one model each; sub-directories that are not models are skipped with a
warning).

Hot reload: :meth:`ModelRegistry.reload` loads the new version *fully*
(weights, preprocessing, request models) next to the one in service, checks
that the directory did not change while it was being read, and only then
replaces the registry's reference in one assignment.  A request holds the
:class:`LoadedModel` it started with, so requests in flight finish on the
old version and no request sees a half-loaded model.  If the new version
cannot be loaded, the old one stays in service and the error is kept in
``last_error``.  ``deepad.save`` replaces a model directory by a rename, so
a model can be re-trained into the served path (or a symlink repointed) at
any time.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepad.persistence import CONFIG, ModelFormatError
from deepad.serve.rows import row_encoder, sorted_reference
from deepad.serve.spec import InputSpec, input_spec

__all__ = ["LoadedModel", "ModelRegistry", "discover_models", "fingerprint", "freeze_heap", "CONFIG_FILE"]

log = logging.getLogger("deepad.serve")

CONFIG_FILE = CONFIG  # "model.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def fingerprint(path: Path) -> tuple:
    """Cheap change detector for a model directory: identity and times of the directory and its config file.

    ``stat`` follows symlinks, so repointing a symlink counts as a change.
    """
    d = os.stat(path)
    c = os.stat(path / CONFIG_FILE)
    return (d.st_dev, d.st_ino, d.st_mtime_ns, c.st_ino, c.st_mtime_ns, c.st_size)


def content_hash(path: Path) -> str:
    """SHA-256 (first 16 hex digits) over the names and bytes of every file in the model directory."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version of a served model (immutable: a reload makes a new one)."""

    name: str
    path: Path
    model: Any
    spec: InputSpec
    fingerprint: tuple
    version: str
    loaded_at: float
    #: the single-record fast path (:mod:`deepad.serve.rows`), or ``None``: built with the version, swapped with it
    rows: Any = None
    #: the p-value reference scores, sorted once (``model.p_value_reference``), or ``None``: sort per request
    reference: Any = None

    def info(self) -> dict[str, Any]:
        """Detector, schema, threshold and versions, for ``GET /v1/model``."""
        import deepad
        from deepad.pipeline import TabularDetector

        m = self.model
        inner = m.detector_ if isinstance(m, TabularDetector) else m
        params = {
            k: v
            for k, v in inner.get_params(deep=False).items()
            if not (isinstance(m, TabularDetector) and k == "contamination")
        }
        return {
            "name": self.name,
            "version": self.version,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "detector": type(inner).__name__,
            "pipeline": type(m).__name__,
            "parameters": _jsonable(params),
            "threshold": float(m.threshold_),
            "threshold_method": _jsonable(dict(getattr(m, "threshold_method_", {}) or {})),
            "training_rows": int(len(m.decision_scores_)),
            "encoded_features": int(getattr(m, "n_features_out_", getattr(m, "n_features_in_", 0))),
            "input_columns": self.spec.describe(),
            "schema": _jsonable(dict(m.schema_)) if isinstance(m, TabularDetector) else None,
            "saved_with": _jsonable(dict(getattr(m, "saved_versions_", {}) or {})),
            "serving_deepad": deepad.__version__,
        }


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, default=str))


def discover_models(root: str | os.PathLike) -> dict[str, Path]:
    """``{name: directory}``: ``root`` itself if it is a model, else its model sub-directories."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such model directory")
    if (root / CONFIG_FILE).is_file():
        name = root.resolve().name
        return {name if _NAME.match(name) else "model": root}
    found: dict[str, Path] = {}
    for sub in sorted(root.iterdir()):
        if sub.name.startswith(".") or not sub.is_dir():
            continue
        if not (sub / CONFIG_FILE).is_file():
            log.warning("skipping %s: not a deepad model directory (no %s)", sub, CONFIG_FILE)
            continue
        if not _NAME.match(sub.name):
            log.warning("skipping %s: a served model's name must match %s", sub, _NAME.pattern)
            continue
        found[sub.name] = sub
    if not found:
        raise FileNotFoundError(
            f"{root} is not a deepad model directory and holds none (no {CONFIG_FILE} in it or in its sub-directories)"
        )
    return found


class ReloadError(RuntimeError):
    """A new version could not be loaded; the previous one stays in service."""


@dataclass
class ModelRegistry:
    """Name -> :class:`LoadedModel`, with atomic replacement on reload."""

    paths: dict[str, Path]
    _models: dict[str, LoadedModel] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)
    _failed: dict[str, tuple] = field(default_factory=dict)  # fingerprint of a version that failed to load

    @classmethod
    def from_root(cls, root: str | os.PathLike) -> "ModelRegistry":
        """Load every model under ``root``.

        In a root of several models, one that cannot be loaded (damaged,
        refused as unsafe, from a newer deepad) is skipped with a logged
        reason and the others are served; if none loads, or ``root`` is itself
        the one model, the first error is raised.
        """
        paths = discover_models(root)
        reg = cls(paths={})
        errors: list[Exception] = []
        for name, path in paths.items():
            reg.paths[name] = path
            reg._locks[name] = threading.Lock()
            try:
                reg._models[name] = reg._load(name)
            except (ModelFormatError, ReloadError, OSError) as exc:
                if len(paths) == 1:
                    raise
                errors.append(exc)
                del reg.paths[name], reg._locks[name]
                log.warning("skipping model %r: it cannot be loaded: %s", name, " ".join(str(exc).split()))
        if not reg._models:
            raise errors[0]
        return reg

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def get(self, name: str) -> LoadedModel:
        return self._models[name]  # one dict lookup: always a complete version

    def _load(self, name: str, attempts: int = 3) -> LoadedModel:
        import deepad

        path = self.paths[name]
        for _ in range(attempts):
            before = fingerprint(path)
            model = deepad.load(path)
            version = content_hash(path)
            if fingerprint(path) != before:  # replaced while we read it: read again
                time.sleep(0.2)
                continue
            spec = input_spec(model, name)
            return LoadedModel(
                name=name,
                path=path,
                model=model,
                spec=spec,
                fingerprint=before,
                version=version,
                loaded_at=time.time(),
                rows=row_encoder(model, spec),
                reference=sorted_reference(model),
            )
        raise ReloadError(f"model {name!r} kept changing while it was being loaded; try again")

    def changed(self, name: str) -> bool:
        try:
            now = fingerprint(self.paths[name])
        except OSError:  # mid-replacement, or removed: keep serving what we have
            return False
        return now != self._models[name].fingerprint and now != self._failed.get(name)

    def reload(self, name: str, *, force: bool = False) -> tuple[bool, LoadedModel]:
        """Load ``name`` again if its directory changed (or ``force``); swap it in.  ``(reloaded, current)``."""
        with self._locks[name]:
            if not force and not self.changed(name):
                return False, self._models[name]
            old = self._models[name]
            try:
                attempted = fingerprint(self.paths[name])
            except OSError:
                attempted = None
            try:
                new = self._load(name)
            except Exception as exc:  # noqa: BLE001 - any load failure keeps the old version
                message = " ".join(str(exc).split()) or type(exc).__name__
                self.last_error[name] = message
                self._failed[name] = attempted  # the watcher does not retry this version; a new save is retried
                log.error("reload of model %r failed, still serving version %s: %s", name, old.version, message)
                raise ReloadError(message) from None
            self._models[name] = new  # the atomic swap
            self.last_error.pop(name, None)
            self._failed.pop(name, None)
            if new.version != old.version:
                log.info("model %r: now serving version %s (was %s)", name, new.version, old.version)
            if gc.get_freeze_count():  # a server process froze its heap (freeze_heap): the new version joins it
                del old
                freeze_heap(again=True)
            return True, new


def freeze_heap(again: bool = False) -> None:
    """Take every object alive now -- the libraries, the loaded models -- out of the cyclic garbage collector's
    view (:func:`gc.freeze`), for a server process once its models are loaded.

    Why: the collector's full passes walk every live object, and a process that has imported torch and
    loaded a model holds about 280,000 of them: each full pass took 270-370 ms on this project's machine,
    during which the event loop answered nothing; these were the AutoEncoder service's slowest 1 % of
    single-record requests (p99 4x the bare app's).  After the freeze the same pass takes microseconds.
    ``again``: after a hot reload, unfreeze, collect (one full pass, freeing the old version's cycles) and
    freeze again.
    """
    if again:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
