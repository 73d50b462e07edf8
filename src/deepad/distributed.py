"""Batch scoring of large Parquet data on a Dask cluster: ``deepad score MODEL DATA -o OUT --engine dask``.

Needs the ``dask`` extra: ``pip install 'deepad[dask]'``.

How it works:

1. The client reads only the Parquet *metadata* of ``source`` (a file or a
   directory of ``.parquet`` files) and cuts it into partitions of whole
   row groups (about ``partition_rows`` rows each), remembering each
   partition's first global row number.
2. Each partition is one task.  A worker reads its row groups, scores them
   in chunks of ``batch_rows`` with exactly the code single-process
   scoring uses (:meth:`TabularDetector.score_frame` and conformal
   p-values), and writes ``part-NNNNN.parquet``.  The model is loaded once
   per worker *process* and kept in a cache keyed by the model directory
   and its fingerprint, so a worker scoring 100 partitions loads it once.
3. When every part is written, the output directory is renamed into place
   (a failed run leaves no partial output) with a ``_deepad_score.json``
   summary; Parquet readers (pyarrow, pandas, Dask, Spark) skip files that
   start with ``_``.  Until then it is ``.OUT.<host>.<pid>.<random>.part/``
   next to ``OUT`` (:class:`deepad.data.writers.AtomicOutput`): an error or
   SIGINT/SIGTERM removes it, and the next run removes those a killed
   client left behind.

The output has the same columns and values as ``deepad score``'s single
file (id columns or a ``row`` column, ``score``, ``p_value``,
``is_anomaly``), in input order across ``part-00000``, ``part-00001``, ...;
scores are exactly equal, because deepad scoring does not depend on how
rows are batched.

A real cluster: ``--scheduler tcp://scheduler-host:8786``.  Every worker
must have deepad (same version) installed and must be able to read the
model directory, the input and the output directory's parent *at the same
paths* as the client (a shared or network file system; paths are made
absolute on the client).  Without ``--scheduler`` a
:class:`~dask.distributed.LocalCluster` with one single-threaded worker
process per core (at most 8) is started for the run, with the workers'
profiler off (:data:`WORKER_CONFIG`); on a cluster of your own, set the
same in the workers' Dask configuration.  Sizing partitions and workers:
``docs/scale-out.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence


__all__ = ["score_parquet", "plan_partitions", "Partition", "DaskScoreSummary", "SUMMARY_FILE", "WORKER_CONFIG"]

SUMMARY_FILE = "_deepad_score.json"
DEFAULT_PARTITION_ROWS = 500_000


@dataclass(frozen=True)
class Partition:
    index: int
    file: str
    row_groups: tuple[int, ...]
    row_offset: int
    rows: int
    skip: int = 0  # rows of the row groups to skip first (a row group larger than a partition is split)


@dataclass
class DaskScoreSummary:
    rows: int = 0
    flagged: int = 0
    seconds: float = 0.0  # scoring, from the first task submitted to the last part written
    startup_seconds: float = 0.0  # connecting to the scheduler / starting the local cluster
    load_seconds: float = 0.0  # importing deepad and loading the model on every worker
    #: CPU seconds (user + system) of the worker processes while they ran the tasks, summed: against one
    #: process's CPU seconds for the same rows, the cost of distributing (1.0 = none), whatever else runs
    cpu_seconds: float = 0.0
    output: str = ""
    partitions: int = 0
    workers: int = 0
    model_loads: dict[str, int] = field(default_factory=dict)  # worker address -> loads of this model
    peak_rss_bytes: dict[str, int] = field(default_factory=dict)  # worker address -> peak resident memory
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


# --------------------------------------------------------------------------- planning (client side)
def _parquet_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(
            p
            for p in source.rglob("*")
            if p.is_file()
            and p.suffix.lower() in (".parquet", ".pq")
            and not any(part.startswith((".", "_")) for part in p.relative_to(source).parts)
        )
        if not files:
            raise ValueError(f"{source} holds no .parquet files.")
        return files
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file")
    if source.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(
            f"{source}: the dask engine reads Parquet (a .parquet file or a directory of them); "
            "convert the data first, or score it with the default engine."
        )
    return [source]


def plan_partitions(source: str | os.PathLike, partition_rows: int = DEFAULT_PARTITION_ROWS) -> list[Partition]:
    """Partitions of at most ``partition_rows`` rows, with global row offsets.

    Small row groups of a file are grouped together; a row group larger
    than ``partition_rows`` is split into slices (each task then reads that
    row group and keeps its slice), so a file written as one huge row group
    is still scored in parallel.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if int(partition_rows) < 1:
        raise ValueError(f"partition_rows must be a positive number of rows, got {partition_rows}.")
    parts: list[Partition] = []
    offset = 0
    for file in _parquet_files(Path(source)):
        try:
            meta = pq.ParquetFile(file).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{file}: cannot read as Parquet: {exc}") from None
        group: list[int] = []
        rows = 0
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            if n == 0:
                continue
            if group and rows + n > partition_rows:
                parts.append(Partition(len(parts), str(file), tuple(group), offset, rows))
                offset += rows
                group, rows = [], 0
            if n > partition_rows:
                for start in range(0, n, partition_rows):
                    size = min(partition_rows, n - start)
                    parts.append(Partition(len(parts), str(file), (rg,), offset, size, skip=start))
                    offset += size
                continue
            group.append(rg)
            rows += n
        if group:
            parts.append(Partition(len(parts), str(file), tuple(group), offset, rows))
            offset += rows
    if not parts:
        raise ValueError(f"{source} has no data rows.")
    return parts


# --------------------------------------------------------------------------- the worker side
_CACHE: dict[tuple, Any] = {}
_CACHE_LOCK = threading.Lock()
_LOADS: dict[str, int] = {}


def _model_fingerprint(path: Path) -> tuple:
    from deepad.persistence import CONFIG

    d, c = os.stat(path), os.stat(path / CONFIG)
    return (d.st_ino, d.st_mtime_ns, c.st_ino, c.st_mtime_ns, c.st_size)


def _cached_model(model_dir: str, fingerprint: tuple):
    """The model at ``model_dir``, loaded once per worker process (per version)."""
    key = (model_dir, fingerprint)
    model = _CACHE.get(key)
    if model is not None:
        return model
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            import deepad

            if _model_fingerprint(Path(model_dir)) != fingerprint:
                raise RuntimeError(f"the model at {model_dir} changed after scoring started; run again.")
            model = deepad.load(model_dir)
            for old in [k for k in _CACHE if k[0] == model_dir]:  # an older version of this model
                del _CACHE[old]
            _CACHE[key] = model
            _LOADS[model_dir] = _LOADS.get(model_dir, 0) + 1
    return model


def _preload(model_dir: str, fingerprint: tuple, sample: str | None = None, read: list[str] | None = None) -> int:
    """Load the model on this worker and score a few rows of ``sample`` (warms every import and lazy set-up)."""
    model = _cached_model(model_dir, fingerprint)
    if sample is not None:
        import pyarrow.parquet as pq

        from deepad.data.readers import _arrow_to_pandas
        from deepad.pipeline import TabularDetector

        batch = next(pq.ParquetFile(sample).iter_batches(batch_size=64, columns=read))
        rows = _arrow_to_pandas(batch)
        if isinstance(model, TabularDetector):
            model.score_frame(rows, warn_extra=False)
        else:
            model.decision_function(rows)
    return os.getpid()


def _cpu_seconds() -> float:
    """CPU seconds of this process so far, every thread (the worker's own and Arrow's readers) included."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss() -> int:
    from deepad.data.memory import peak_resident_bytes

    return peak_resident_bytes() or 0


def _score_partition(
    model_dir: str,
    fingerprint: tuple,
    part: Partition,
    out_dir: str,
    read: list[str] | None,
    id_columns: list[str],
    batch_rows: int,
    keep: list[str] = (),
) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepad.data.preprocessing import ScoringReport
    from deepad.data.readers import _arrow_to_pandas
    from deepad.data.writers import TableWriter as _Writer
    from deepad.pipeline import TabularDetector
    from deepad.scoring import score_chunk_columns

    cpu0 = _cpu_seconds()
    model = _cached_model(model_dir, fingerprint)
    tabular = isinstance(model, TabularDetector)
    reference = model.p_value_reference
    threshold = float(model.threshold_)
    report = ScoringReport()
    pf = pq.ParquetFile(part.file, pre_buffer=False)  # as deepad.data.readers: pre-buffered ranges stay in memory
    writer = _Writer(
        Path(out_dir) / f"part-{part.index:05d}.parquet", "parquet", make_parent=False, plain=id_columns or ["row"]
    )
    flagged = done = 0
    first, stop = part.skip, part.skip + part.rows
    try:
        pos = 0
        for batch in pf.iter_batches(batch_size=batch_rows, row_groups=list(part.row_groups), columns=read):
            b0, pos = pos, pos + batch.num_rows
            if pos <= first:
                continue
            if b0 >= stop:
                break
            lo, hi = max(first - b0, 0), min(stop, pos) - b0
            chunk = _arrow_to_pandas(batch.slice(lo, hi - lo))
            offset = part.row_offset + b0 + lo - first
            cols, flags = score_chunk_columns(
                model,
                chunk,
                offset,
                tabular=tabular,
                reference=reference,
                threshold=threshold,
                id_columns=id_columns,
                report=report,
                keep=keep,
            )
            writer.write(pa.table(cols))
            flagged += int(flags.sum())
            done += len(chunk)
        if done != part.rows:
            raise RuntimeError(
                f"{part.file} changed while it was being scored ({done} rows read, {part.rows} expected); run again."
            )
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    from distributed import get_worker

    try:
        address = get_worker().address
    except ValueError:  # not on a worker (tests calling it directly)
        address = f"pid-{os.getpid()}"
    return {
        "index": part.index,
        "rows": done,
        "flagged": flagged,
        "report": asdict(report),
        "worker": address,
        "loads": _LOADS.get(model_dir, 0),
        "peak_rss": _peak_rss(),
        "cpu_seconds": _cpu_seconds() - cpu0,
    }


# --------------------------------------------------------------------------- the driver
def _merge_report(into, part: dict) -> None:
    """Add a partition's :class:`ScoringReport` (as a dict) into ``into``: the run's notes read as one file's."""
    into.rows += part["rows"]
    for what in ("unseen", "unexpected_missing"):
        totals = getattr(into, what)
        for col, n in part[what].items():
            totals[col] = totals.get(col, 0) + n
    for col, values in part["unseen_examples"].items():
        ex = into.unseen_examples.setdefault(col, [])
        for v in values:
            if v not in ex and len(ex) < 3:
                ex.append(v)


def _prepare_output(out: Path, during: str | None = None):
    """The run's part directory next to ``out`` (an :class:`~deepad.data.writers.AtomicOutput`).

    Creating it removes the part directories of ``out`` left by clients that
    were killed (and logs what it removed).
    """
    from deepad.data.writers import AtomicOutput

    if out.exists():
        if out.is_file():
            raise ValueError(f"the output {out} is a file; the dask engine writes a directory of Parquet parts.")
        entries = list(out.iterdir())
        if entries and not (out / SUMMARY_FILE).is_file():
            raise FileExistsError(
                f"{out} exists and is not an earlier `deepad score --engine dask` output; "
                "refusing to replace it. Choose a new output directory."
            )
    output = AtomicOutput(out, directory=True, during=during)
    os.chmod(output.path, output.mode)  # the workers' parts go in here: readable as the umask allows, as on commit
    return output


def _discard_output(tmp: Path, patience_s: float = 30.0) -> None:
    """Remove the unfinished output directory after a failure.

    Cancelling the futures does not stop partitions already running on the
    workers: one may still create its part file while the directory is being
    removed, so a single ``rmtree`` can leave the directory behind.  Retry
    until it is gone (a worker cannot recreate it: parts are written with
    ``make_parent=False``), for at most ``patience_s`` seconds.
    """
    deadline = time.monotonic() + patience_s
    while True:
        shutil.rmtree(tmp, ignore_errors=True)
        if not tmp.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.1)


#: Dask settings of the local cluster's workers.  The worker's statistical profiler walks the task thread's
#: stack every 10 ms while holding the GIL; on a CPU-bound scoring task that made one worker take twice the
#: time of the same function in a plain process (docs/scale-out.md).  The GIL monitor samples every 1 ms.
#: ``MALLOC_TRIM_THRESHOLD_``, which Dask's nannies set for their workers by default, turns off glibc's
#: adaptive mmap threshold: every chunk's arrays (megabytes) were then mapped fresh and faulted in page by
#: page, 26x the page faults of a plain process and twice its CPU time (2M rows: 10.6 against 5.8 CPU s,
#: 4.8 of them in the kernel); ``None`` leaves it unset (docs/scale-out.md).
WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


def _local_cluster(n_workers: int | None):
    import dask
    from distributed import LocalCluster

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = int(n_workers) if n_workers else max(1, min(8, cores))
    one = {"DEEPAD_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    # A nanny writes its pre-spawn variables into this process's own environment, which its workers inherit, and
    # leaves them there: after an earlier default cluster in this process, MALLOC_TRIM_THRESHOLD_ would reach ours.
    inherited = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set(WORKER_CONFIG):  # the nannies hand the configuration to their worker processes
            return LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, env=one, silence_logs=40
            )
    finally:
        if inherited is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = inherited


def score_parquet(
    model_dir: str | os.PathLike,
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    client=None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    batch_rows: int = 65_536,
    progress: bool = False,
    keep: Sequence[str] = (),
) -> DaskScoreSummary:
    """Score Parquet data with the model at ``model_dir`` on Dask; write Parquet parts to directory ``out``.

    ``keep``: columns carried to the output, as :func:`deepad.scoring.score_file` does.

    ``client``: a ``dask.distributed.Client`` to use; else ``scheduler``
    (an address such as ``tcp://host:8786``) is connected to; else a local
    cluster of ``n_workers`` processes is started and closed again.  See
    the module docstring for what workers need.
    """
    import deepad
    from deepad.data.writers import OutputWriteError
    from deepad.data.writers import same_file as _same_file
    from deepad.scoring import column_plan

    during = f"scoring {os.fspath(source)}"
    model_dir = Path(model_dir).resolve()
    source = Path(source).resolve()
    out = Path(out).resolve()
    if int(batch_rows) < 1:
        raise ValueError(f"batch_rows must be a positive number of rows, got {batch_rows}.")
    if _same_file(source, out) or out in source.parents:
        raise ValueError(f"the output {out} would overwrite the input {source}; choose another directory.")
    model = deepad.load(model_dir)  # validates the model and gives the columns to read
    fingerprint = _model_fingerprint(model_dir)  # workers load exactly this version
    parts = plan_partitions(source, partition_rows)
    import pyarrow.parquet as pq

    columns = list(pq.ParquetFile(parts[0].file).schema_arrow.names)
    summary = DaskScoreSummary(output=str(out), partitions=len(parts))
    plan = column_plan(model, columns, str(source), keep=keep)
    summary.notes.extend(plan.notes())
    id_columns, read = plan.id_columns, plan.read
    del model

    output = _prepare_output(out, during)
    tmp = output.path
    cluster = own_client = None
    t0 = time.perf_counter()
    try:
        if client is None:
            from distributed import Client

            if scheduler:
                client = own_client = Client(scheduler)
            else:
                cluster = _local_cluster(n_workers)
                client = own_client = Client(cluster)
        summary.startup_seconds = time.perf_counter() - t0
        # Load the model once on every worker now (workers that join later load it with their first task).
        t0 = time.perf_counter()
        workers = list(client.scheduler_info().get("workers", {}))
        client.gather(
            [
                client.submit(
                    _preload,
                    str(model_dir),
                    fingerprint,
                    parts[0].file,
                    read,
                    workers=[w],
                    allow_other_workers=False,
                    pure=False,
                )
                for w in workers
            ]
        )
        summary.load_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        from distributed import as_completed

        futures = [
            client.submit(
                _score_partition,
                str(model_dir),
                fingerprint,
                part,
                str(tmp),
                read,
                id_columns,
                int(batch_rows),
                plan.keep,
                pure=False,
            )
            for part in parts
        ]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=sum(p.rows for p in parts),
                unit="row",
                unit_scale=True,
                desc="scoring",
                leave=False,
                dynamic_ncols=True,
            )
        results = []
        try:
            for fut in as_completed(futures):
                try:
                    r = fut.result()
                except OutputWriteError as exc:  # a worker's part file: name the output directory
                    raise OutputWriteError.of(out, exc, during) from exc
                results.append(r)
                if bar is not None:
                    bar.update(r["rows"])
        except BaseException:
            client.cancel(futures)
            raise
        finally:
            if bar is not None:
                bar.close()
        summary.seconds = time.perf_counter() - t0
        from deepad.data.preprocessing import ScoringReport

        report = ScoringReport()
        for r in sorted(results, key=lambda r: r["index"]):
            summary.rows += r["rows"]
            summary.flagged += r["flagged"]
            summary.cpu_seconds += r["cpu_seconds"]
            summary.model_loads[r["worker"]] = max(summary.model_loads.get(r["worker"], 0), r["loads"])
            summary.peak_rss_bytes[r["worker"]] = max(summary.peak_rss_bytes.get(r["worker"], 0), r["peak_rss"])
            _merge_report(report, r["report"])
        summary.notes.extend(report.notes())
        summary.workers = len(summary.model_loads)
        meta = {k: v for k, v in asdict(summary).items() if k not in ("peak_rss_bytes",)}
        meta.update(
            model=str(model_dir),
            source=str(source),
            files=[f"part-{p.index:05d}.parquet" for p in parts],
            deepad=deepad.__version__,
        )
        with output.writing():
            (tmp / SUMMARY_FILE).write_text(json.dumps(meta, indent=2, default=str))
        output.commit()
    except BaseException:
        _discard_output(tmp)
        raise
    finally:
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()
    return summary
