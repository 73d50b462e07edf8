"""The error of a benchmark request, shared by :mod:`deepad.bench.protocol` and :mod:`deepad.bench.specs`."""

from __future__ import annotations

__all__ = ["BenchmarkError"]


class BenchmarkError(ValueError):
    """A user error in a benchmark request: bad data, detector spec or option."""
