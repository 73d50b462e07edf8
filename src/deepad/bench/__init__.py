"""``deepad bench``: a reproducible evaluation harness for labelled anomaly data.

Quick start::

    from deepad.bench import run_benchmark
    df = run_benchmark("/data/adbench", "AutoEncoder,pyod.models.iforest.IForest",
                       setting="oneclass", seeds=3, out="bench-out")

The protocol (subsampling, split, scaling, settings, seeds) is fixed and
documented in :mod:`deepad.bench.protocol`; process isolation, time-outs,
threads, measurements and resuming in :mod:`deepad.bench.runner`; tables,
statistics and plots in :mod:`deepad.bench.report`.
"""

from deepad.bench.protocol import PROTOCOL_VERSION, SETTINGS, BenchmarkError, DetectorSpec, make_split
from deepad.bench.report import markdown_report, summarize, write_report
from deepad.bench.runner import COLUMNS, KEY_COLUMNS, read_results, run_benchmark

__all__ = [
    "run_benchmark",
    "read_results",
    "write_report",
    "markdown_report",
    "summarize",
    "make_split",
    "DetectorSpec",
    "BenchmarkError",
    "SETTINGS",
    "PROTOCOL_VERSION",
    "COLUMNS",
    "KEY_COLUMNS",
]
