"""What detectors there are: names, one-line summaries, parameters and defaults, read from the classes themselves.

Used by ``deepad detectors`` and the ``--help`` of the commands that take
``--detector``, so the listing can never drift from the code: the names come
from :data:`deepad.detectors.__all__`, each summary from the first line of the
class docstring, the parameters (in ``__init__`` order) and their defaults
from ``get_params`` of a default instance.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DetectorInfo", "detector_catalog", "describe_detector", "PLUMBING_PARAMETERS"]

#: parameters every detector family shares or that tune resources rather than the model:
#: left out of the compact "main parameters" (they are still listed by ``describe_detector``)
PLUMBING_PARAMETERS = frozenset(
    {
        "contamination",
        "random_state",
        "n_jobs",
        "n_threads",
        "device",
        "verbose",
        "metric_params",
        "algorithm",
        "leaf_size",
        "cache_size",
        "tol",
        "shrinking",
        "lr_schedule",
        "batch_size",
        "max_iter",
    }
)


@dataclass
class DetectorInfo:
    """One detector: its class name, summary, what it reads, and its parameters with their defaults."""

    name: str
    summary: str
    input: str  # "table", "time series" or "images"
    uses_labels: bool
    parameters: dict[str, Any] = field(default_factory=dict)  # every parameter, in __init__ order

    def main_parameters(self, n: int = 4) -> dict[str, Any]:
        """The first ``n`` parameters that shape the model (``__init__`` order, :data:`PLUMBING_PARAMETERS` left out)."""
        main = [k for k in self.parameters if k not in PLUMBING_PARAMETERS]
        return {k: self.parameters[k] for k in main[:n]}


def _input_kind(instance) -> str:
    if getattr(instance, "_image_input", False):
        return "images"
    # the rule of deepad.stream.is_series_detector (a window or a stream state), which this layer cannot import
    if hasattr(instance, "window") or callable(getattr(instance, "_stream_state", None)):
        return "time series"
    return "table"


def describe_detector(name: str) -> DetectorInfo:
    """The :class:`DetectorInfo` of the detector called ``name`` (case-insensitive; ``ValueError`` if unknown)."""
    from deepad.detectors import detector_class

    cls = detector_class(name)
    instance = cls()
    params = instance.get_params(deep=False)
    order = [p for p in inspect.signature(cls.__init__).parameters if p in params]
    order += sorted(p for p in params if p not in order)
    doc = inspect.getdoc(cls) or ""
    return DetectorInfo(
        name=cls.__name__,
        summary=doc.strip().split("\n\n")[0].replace("\n", " ").strip(),
        input=_input_kind(instance),
        uses_labels=bool(getattr(instance, "_uses_labels", False)),
        parameters={p: params[p] for p in order},
    )


def detector_catalog() -> list[DetectorInfo]:
    """Every detector of :mod:`deepad.detectors`, in its listing order (imports them all, torch included)."""
    from deepad.detectors import _WHERE

    return [describe_detector(name) for name in _WHERE]
