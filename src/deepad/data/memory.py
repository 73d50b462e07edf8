"""This process's resident memory, now and at its peak, for reports of what a run needed.

The peak is ``VmHWM`` of ``/proc/self/status``, not ``getrusage().ru_maxrss``: on Linux a process
started by fork + exec (a benchmark's child, a Dask worker spawned by its nanny) carries its parent's
high-water mark in ``ru_maxrss``, so a large parent hides the child's own peak.  A Dask worker spawned
from a client holding 20M scored rows reported 1,607 MiB this way; the same run read from ``VmHWM`` gave 595 MiB
(``benchmarks/throughput.py --sections 5``).  ``ru_maxrss`` is the fallback where ``/proc`` does not
exist (macOS).
"""

from __future__ import annotations

import sys

__all__ = ["resident_bytes", "peak_resident_bytes"]


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int | None:
    """Resident memory of this process now (``VmRSS``); None where ``/proc`` does not exist."""
    return _status_bytes("VmRSS")


def peak_resident_bytes() -> int | None:
    """Peak resident memory of this process's own image (``VmHWM``; else ``ru_maxrss``); None if unknown."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):  # pragma: no cover - Windows
        return None
    return int(r if sys.platform == "darwin" else r * 1024)
