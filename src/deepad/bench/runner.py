"""Run a benchmark: one isolated child process per (data set, detector, setting, seed).

Why a child process per run: a detector that crashes the interpreter, leaks
memory or hangs must not end a 28-data-set run, and each run's memory and
thread use must be measured on its own.  Each child is a fresh interpreter
(``subprocess``, not ``fork``) started with

* ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``DEEPAD_NUM_THREADS`` (and friends) set to ``threads`` *before* NumPy or
  torch load, ``torch.set_num_threads(threads)`` when torch is loaded, and
  ``n_threads`` / ``n_jobs`` set to ``threads`` on the detector unless the
  user set them -- deepad, PyOD and scikit-learn models get the same CPU;
* a time-out on the whole child (start-up, import, fit and scoring);
  when it expires the child's process group is killed and an error row
  with status ``timeout`` is recorded;
* only the train part, the train labels the setting allows and the test
  features; test labels stay in the parent, which computes the metrics.

Measured per run (in the child):

``fit_s`` / ``score_s``
    wall-clock seconds of ``fit`` and of scoring the test part;
``fit_cpu_s``
    ``time.process_time()`` over ``fit``: CPU seconds of all the child's
    threads, so a 4-thread fit can show more CPU than wall time;
``peak_rss_mb``
    the child's peak resident memory, ``VmHWM`` from ``/proc/self/status``
    (interpreter + imports + data + model).  Not ``ru_maxrss``: on Linux a
    child started by fork+exec inherits its parent's high-water mark in
    ``ru_maxrss``, so a large parent would hide every child's real peak.
    ``ru_maxrss`` is the fallback where ``/proc`` does not exist;
``base_rss_mb``
    resident memory just before ``fit`` (after imports and data loading);
    ``peak_rss_mb - base_rss_mb`` approximates what fitting itself needed.

Results are appended to ``results.csv`` as each run finishes; running again
with the same ``out`` skips the (dataset, detector, params, setting,
labelled, seed) rows already there (errors too, unless ``retry_errors``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deepad.bench.protocol import (
    DEFAULT_MAX_ROWS,
    PROTOCOL_VERSION,
    TEST_SIZE,
    BenchmarkError,
    DatasetRef,
    DetectorSpec,
    LabelledSpec,
    find_datasets,
    load_dataset,
    make_split,
    parse_detectors,
    parse_labelled,
    parse_seeds,
    parse_settings,
    weak_labels,
)

from deepad.bench.results_io import (
    COLUMNS,
    KEY_COLUMNS,
    PROTOCOL_FILE,
    RESULTS_FILE,
    _append_row,
    _check_protocol,
    _read_rows,
    read_results,
    results_frame,
)
from deepad.data.memory import peak_resident_bytes, resident_bytes

__all__ = ["run_benchmark", "read_results", "results_frame", "KEY_COLUMNS", "COLUMNS", "RESULTS_FILE", "PROTOCOL_FILE"]

THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
    "DEEPAD_NUM_THREADS",
)


# --------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class _Task:
    ref: DatasetRef
    seed: int
    setting: str
    labelled: LabelledSpec | None
    spec: DetectorSpec

    @property
    def key(self) -> tuple[str, ...]:
        return (
            self.ref.name,
            self.spec.name,
            self.spec.params_json,
            self.setting,
            "" if self.labelled is None else str(self.labelled),
            str(self.seed),
        )


class _SplitStore:
    """Prepares each data set's splits once (in the parent) as .npy files the children read."""

    def __init__(self, root: Path, seeds: Sequence[int], labelled: Sequence[LabelledSpec], max_rows: int | None):
        self.root, self.seeds, self.labelled, self.max_rows = root, list(seeds), list(labelled), max_rows
        self.info: dict[tuple[str, int], dict[str, Any]] = {}

    def dir(self, name: str, seed: int) -> Path:
        return self.root / f"{name}__seed{seed}"

    def prepare(self, ref: DatasetRef) -> None:
        if (ref.name, self.seeds[0]) in self.info:
            return
        X, y = load_dataset(ref)
        for seed in self.seeds:
            sp = make_split(X, y, ref.name, seed, max_rows=self.max_rows)
            d = self.dir(ref.name, seed)
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / "X_train.npy", sp.X_train)
            np.save(d / "y_train.npy", sp.y_train)
            np.save(d / "X_test.npy", sp.X_test)
            n_lab = {}
            for spec in self.labelled:
                yw = weak_labels(sp.y_train, spec, sp.label_seed)
                np.save(d / f"yweak_{spec}.npy", yw)
                n_lab[str(spec)] = int((yw == 1).sum())
            self.info[(ref.name, seed)] = dict(
                y_test=sp.y_test, n_features=sp.X_train.shape[1], n_rows=sp.n_rows, n_labelled=n_lab
            )

    def release(self, name: str) -> None:
        for seed in self.seeds:
            shutil.rmtree(self.dir(name, seed), ignore_errors=True)
            self.info.pop((name, seed), None)


# --------------------------------------------------------------------------- the child
def _mib(n_bytes: int | None) -> float | None:
    return None if n_bytes is None else n_bytes / 2**20


def _warm_torch_optimizer(torch) -> None:
    """Pay torch's one-time lazy import on the first ``optimizer.step()`` before any clock starts (protocol item 8)."""
    param = torch.nn.Parameter(torch.zeros(1))
    param.grad = torch.ones(1)
    torch.optim.Adam([param]).step()


def _child_main(task_path: str) -> None:
    """Entry point of a run's child process: fit, score, write ``scores.npy`` and ``result.json``."""
    task = json.loads(Path(task_path).read_text())
    result: dict[str, Any] = {"status": "error"}
    try:
        from deepad.bench import protocol as P

        threads = int(task["threads"])
        cls = P.resolve_detector_class(task["detector"])
        if "torch" in sys.modules:
            import torch

            torch.set_num_threads(threads)
            _warm_torch_optimizer(torch)
        d = Path(task["split_dir"])
        X_train, y_train = np.load(d / "X_train.npy"), np.load(d / "y_train.npy")
        est, injected = P.build_estimator(
            cls, task["params"], seed=int(task["seed"]), threads=threads, n_features=int(X_train.shape[1])
        )
        kind = P.estimator_kind(est)
        y_weak = np.load(d / f"yweak_{task['labelled']}.npy") if task["labelled"] else None
        uses_labels = bool(getattr(est, "_uses_labels", False))
        X_fit, y_fit = P.fit_inputs(task["setting"], kind, uses_labels, X_train, y_train, y_weak)
        X_test = np.load(d / "X_test.npy")
        del X_train
        base = _mib(resident_bytes())
        t0, c0 = time.perf_counter(), time.process_time()
        if y_fit is None:
            est.fit(X_fit)
        else:
            est.fit(X_fit, y_fit)
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        scores = P.anomaly_scores(est, kind, X_test)
        score_s = time.perf_counter() - t0
        if scores.shape != (X_test.shape[0],):
            raise RuntimeError(f"scoring returned shape {scores.shape} for {X_test.shape[0]} test rows.")
        if not np.isfinite(scores).all():
            raise RuntimeError(f"{int((~np.isfinite(scores)).sum())} non-finite anomaly scores.")
        np.save(task["scores"], scores)
        result = dict(
            status="ok",
            fit_s=fit_s,
            score_s=score_s,
            fit_cpu_s=fit_cpu,
            base_rss_mb=base,
            n_fit=int(X_fit.shape[0]),
            used_labels=y_fit is not None,
            kind=kind,
            injected=injected,
        )
    except BaseException as exc:  # noqa: BLE001 - everything becomes an error row
        traceback.print_exc()
        msg = " ".join(str(exc).split()) or "(no message)"
        result = {"status": "error", "error": f"{type(exc).__name__}: {msg}"[:500]}
    finally:
        result["peak_rss_mb"] = _mib(peak_resident_bytes())
        tmp = Path(task["result"] + ".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(task["result"])


_CHILD_CODE = "import sys; from deepad.bench.runner import _child_main; _child_main(sys.argv[1])"


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for k in THREAD_ENV:
        env[k] = str(threads)
    env["DEEPAD_QUIET"] = "1"
    env["PYTHONHASHSEED"] = "0"
    # Whatever the parent can import (deepad from a source tree, a test module's
    # detector), the child can too -- the same thing multiprocessing's spawn does.
    paths = [os.getcwd() if p == "" else p for p in sys.path]
    extra = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([p for p in paths if p] + ([extra] if extra else [])))
    return env


def _kill(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# --------------------------------------------------------------------------- results file
def run_benchmark(
    data,
    detectors,
    *,
    setting: str | Sequence[str] = "oneclass",
    seeds: int | str | Sequence[int] = 3,
    out: str | Path | None = None,
    labelled: str | Sequence[float] | None = None,
    labelled_count: str | Sequence[int] | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    timeout: float = 3600.0,
    threads: int = 1,
    jobs: int = 1,
    label: str = "label",
    retry_errors: bool = False,
    quiet: bool | None = None,
    report: bool = True,
):
    """Evaluate detectors on labelled data sets under the fixed protocol of :mod:`deepad.bench.protocol`.

    Parameters
    ----------
    data:
        ADBench ``.npz`` files, CSV/Parquet files with a ``label`` column, or folders of them.
    detectors:
        ``"AutoEncoder,pyod.models.iforest.IForest"``, or a list of names,
        ``Name:{json params}`` strings, classes or ``(name_or_class, params)`` pairs.
    setting:
        ``"unsupervised"``, ``"oneclass"``, ``"weak"`` (or several, comma-separated / a list).
    seeds:
        a count (``3`` = seeds 0, 1, 2) or a list of seeds.
    out:
        folder for ``results.csv``, ``summary.md`` and plots; re-running with
        the same folder resumes.  ``None`` keeps results in memory only.
    labelled, labelled_count:
        weak setting: fractions (``"0.01,0.05"``) and/or counts (``"5,10"``) of
        train anomalies that are labelled; default ``0.05``.
    max_rows:
        larger data sets are subsampled (stratified) to this many rows; ``None`` never subsamples.
    timeout:
        seconds allowed per run (child start-up included).
    threads:
        CPU threads per run (BLAS/OpenMP, torch, ``n_jobs``); 1 by default so that runs are comparable.
    jobs:
        runs executed in parallel.
    label:
        label column of CSV/Parquet files (1 = anomaly).
    retry_errors:
        re-run keys whose recorded result is an error or time-out.
    quiet:
        no progress bar (default: the ``DEEPAD_QUIET`` environment variable).
    report:
        write ``summary.md`` and the plots into ``out`` when done.

    Returns
    -------
    pandas.DataFrame
        one row per requested run (those found in ``out`` included), columns :data:`COLUMNS`.
    """
    refs = find_datasets(data, label=label)
    specs = parse_detectors(detectors)
    settings = parse_settings(setting)
    seed_list = parse_seeds(seeds)
    lab_specs = parse_labelled(labelled, labelled_count) if "weak" in settings else []
    if (labelled or labelled_count) and "weak" not in settings:
        raise BenchmarkError("--labelled / --labelled-count apply to the weak setting only.")
    if int(threads) < 1 or int(jobs) < 1:
        raise BenchmarkError(f"threads and jobs must be at least 1; got threads={threads}, jobs={jobs}.")
    if not float(timeout) > 0:
        raise BenchmarkError(f"timeout must be positive; got {timeout}.")
    if quiet is None:
        quiet = os.environ.get("DEEPAD_QUIET") == "1"

    # Resolve every detector now: a typo should be one clear error, not a column of error rows.
    from deepad.bench.protocol import build_estimator, estimator_kind, resolve_detector_class

    for spec in specs:
        est, _ = build_estimator(resolve_detector_class(spec.name), spec.params, seed=0, threads=int(threads))
        if estimator_kind(est) == "peer" and settings != ["weak"]:
            raise BenchmarkError(
                f"{spec.label} is a supervised classifier (predict_proba, no decision_function); "
                "it needs labels and runs in the weak setting only."
            )

    tasks: list[_Task] = []
    for ref in refs:
        for seed in seed_list:
            for st in settings:
                for lab in lab_specs if st == "weak" else [None]:
                    tasks.extend(_Task(ref, seed, st, lab, spec) for spec in specs)
    requested = {t.key for t in tasks}

    out_dir = Path(out) if out is not None else None
    memory_rows: list[dict[str, Any]] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        _check_protocol(out_dir, {"protocol_version": PROTOCOL_VERSION, "max_rows": max_rows, "test_size": TEST_SIZE})
        results_path = out_dir / RESULTS_FILE
        existing = _read_rows(results_path)
    else:
        results_path, existing = None, []
    last: dict[tuple[str, ...], str] = {}
    for r in existing:
        last[tuple(r[c] for c in KEY_COLUMNS)] = r["status"]
    pending = deque(t for t in tasks if not (t.key in last and (last[t.key] == "ok" or not retry_errors)))
    n_skipped = len(tasks) - len(pending)

    left_per_dataset: dict[str, int] = {}
    for t in pending:
        left_per_dataset[t.ref.name] = left_per_dataset.get(t.ref.name, 0) + 1

    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(pending),
        unit="run",
        disable=bool(quiet),
        dynamic_ncols=True,
        desc="deepad bench" + (f" ({n_skipped} done before)" if n_skipped else ""),
    )
    tmp_root = Path(tempfile.mkdtemp(prefix="deepad-bench-"))
    store = _SplitStore(tmp_root / "splits", seed_list, lab_specs, max_rows)
    env = _child_env(int(threads))
    running: dict[int, tuple[subprocess.Popen, _Task, float, Path, Any]] = {}
    counter = 0

    def finish(task: _Task, row: dict[str, Any]) -> None:
        row.update(zip(KEY_COLUMNS, task.key))
        row["threads"] = int(threads)
        row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if results_path is not None:
            _append_row(results_path, row)
        else:
            memory_rows.append({k: row.get(k) for k in COLUMNS})
        if row["status"] != "ok" and not quiet:
            bar.write(
                f"{task.ref.name} / {task.spec.label} / {task.setting} / seed {task.seed}: "
                f"{row['status']}: {row.get('error', '')}"
            )
        bar.set_postfix_str(f"{task.ref.name} {task.spec.label} s{task.seed}: {row['status']}", refresh=False)
        bar.update(1)
        left_per_dataset[task.ref.name] -= 1
        if left_per_dataset[task.ref.name] == 0:
            store.release(task.ref.name)

    def collect(proc, task: _Task, start: float, run_dir: Path, log, timed_out: bool) -> None:
        log.close()
        info = store.info[(task.ref.name, task.seed)]
        y_test = info["y_test"]
        row: dict[str, Any] = dict(
            n_test=len(y_test),
            n_features=info["n_features"],
            n_rows=info["n_rows"],
            test_anomaly_rate=round(float(y_test.mean()), 6),
            n_labelled=info["n_labelled"].get(str(task.labelled)) if task.labelled else None,
            wall_s=round(time.monotonic() - start, 3),
        )
        res_path = run_dir / "result.json"
        res = json.loads(res_path.read_text()) if res_path.exists() else None
        if timed_out:
            row.update(status="timeout", error=f"timed out after {timeout:g} s")
        elif res is None:
            tail = _tail(run_dir / "log.txt")
            row.update(
                status="error",
                error=f"child process died (exit code {proc.returncode})" + (f": {tail}" if tail else ""),
            )
        elif res["status"] != "ok":
            row.update(status="error", error=res.get("error", "unknown error"), peak_rss_mb=_r(res.get("peak_rss_mb")))
        else:
            from sklearn.metrics import average_precision_score, roc_auc_score

            scores = np.load(run_dir / "scores.npy")
            row.update(
                status="ok",
                roc_auc=round(float(roc_auc_score(y_test, scores)), 6),
                auc_pr=round(float(average_precision_score(y_test, scores)), 6),
                fit_s=_r(res["fit_s"]),
                score_s=_r(res["score_s"]),
                fit_cpu_s=_r(res["fit_cpu_s"]),
                peak_rss_mb=_r(res.get("peak_rss_mb")),
                base_rss_mb=_r(res.get("base_rss_mb")),
                n_fit=res["n_fit"],
                used_labels=bool(res["used_labels"]),
            )
        shutil.rmtree(run_dir, ignore_errors=True)
        finish(task, row)

    try:
        while pending or running:
            while pending and len(running) < int(jobs):
                task = pending.popleft()
                store.prepare(task.ref)
                counter += 1
                run_dir = tmp_root / f"run{counter}"
                run_dir.mkdir()
                task_file = run_dir / "task.json"
                task_file.write_text(
                    json.dumps(
                        dict(
                            detector=task.spec.name,
                            params=task.spec.params,
                            seed=task.seed,
                            threads=int(threads),
                            setting=task.setting,
                            labelled=str(task.labelled) if task.labelled else "",
                            split_dir=str(store.dir(task.ref.name, task.seed)),
                            result=str(run_dir / "result.json"),
                            scores=str(run_dir / "scores.npy"),
                        )
                    )
                )
                log = open(run_dir / "log.txt", "wb")
                proc = subprocess.Popen(
                    [sys.executable, "-c", _CHILD_CODE, str(task_file)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=hasattr(os, "killpg"),
                )
                running[proc.pid] = (proc, task, time.monotonic(), run_dir, log)
            time.sleep(0.02)
            for pid, (proc, task, start, run_dir, log) in list(running.items()):
                if proc.poll() is not None:
                    del running[pid]
                    collect(proc, task, start, run_dir, log, timed_out=False)
                elif time.monotonic() - start > float(timeout):
                    _kill(proc)
                    del running[pid]
                    collect(proc, task, start, run_dir, log, timed_out=True)
    finally:
        for proc, _task, _s, _d, log in running.values():
            _kill(proc)
            log.close()
        bar.close()
        shutil.rmtree(tmp_root, ignore_errors=True)

    if results_path is not None:
        all_rows = results_frame(_read_rows(results_path))
        if report:
            from deepad.bench.report import write_report

            write_report(all_rows, out_dir)
    else:
        all_rows = results_frame(memory_rows)
    mask = all_rows[KEY_COLUMNS].astype(str).apply(tuple, axis=1).isin(requested) if len(all_rows) else []
    return all_rows[mask].reset_index(drop=True) if len(all_rows) else all_rows


def _r(v, nd: int = 4):
    return None if v is None else round(float(v), nd)


def _tail(path: Path, n: int = 300) -> str:
    try:
        text = path.read_bytes()[-4000:].decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-3:])[-n:]
