"""Scoring throughput of deepad against the bare computation it wraps (issue 18, targets 3-5), side by side.

Target 3 -- neural inference: ``decision_function`` of AutoEncoder, VAE and
DeepSVDD against the bare ``torch.inference_mode()`` forward pass of the same
fitted module producing the same per-row score (the module's forward plus
the minimal score arithmetic, on rows already standardised and in float32,
at the best batch size of a small sweep).  One process, one thread; the two
are timed in interleaved repeats and the median is reported.

Target 4 -- ``deepad score`` on a Parquet file of the mixed fraud-like table
(``deepad.data.synthetic.make_fraud_frame``, generated once in chunks into
``--data-dir``) for the AutoEncoder and the DEFAULT model
(``LocalGlobalEnsemble(deep_weight=0)``), each a ``TabularDetector`` trained
on 20,000 rows: rows/s of the ``deepad score`` subprocess (whole run, and its
own scoring loop) against in-process ``detector_.decision_function`` on the
same rows already encoded (65,536-row chunks, measured before and after the
subprocess, median), and the subprocess's peak RSS (``wait4``) per file size.

Target 5 -- Dask: ``deepad.distributed.score_parquet`` on a local cluster of
1 and of 2 single-threaded workers against ``score_file`` in one process
with one thread, on the same Parquet file; outputs compared value by value.

    DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/throughput.py            # everything, full sizes
    python benchmarks/throughput.py --sections 4 --score-rows 1000000,5000000 --models ae
    python benchmarks/throughput.py --sections 5 --dask-rows 2000000 --workers 1,2     # a short run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepad.detectors import VAE, AutoEncoder, DeepSVDD  # noqa: E402

BARE_BATCHES = (1024, 4096, 16384)


def _bare_score(det, module: torch.nn.Module):
    """The per-row score of ``det`` as bare torch arithmetic on a standardised float32 batch."""
    name = type(det).__name__
    if name == "AutoEncoder":
        return lambda x: ((module(x) - x) ** 2).mean(dim=1)
    if name == "VAE":
        eps = torch.as_tensor(det.mc_noise_)

        def vae(x):
            mu, logvar = module.encode(x)
            recon = module.decode_shared(mu, logvar, eps)
            nll = 0.5 * (recon - x.unsqueeze(1)).pow(2).sum(dim=-1).mean(dim=1)
            return nll + module.kl_divergence(mu, logvar)

        return vae
    if name == "DeepSVDD":
        center = torch.as_tensor(det.center_)
        r2 = float(det.radius_) ** 2
        return lambda x: (module(x) - center).pow(2).sum(dim=1) - r2
    raise ValueError(name)


def _bare(score, Xs: torch.Tensor, batch: int) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([score(xb) for xb in Xs.split(batch)]).numpy()


def _standardise_only(det, Xv: np.ndarray) -> None:
    """The library's batch-by-batch standardisation alone (the part the bare pass gets for free)."""
    if not hasattr(det, "_batch_transform"):  # deepad before issue 18: the whole array at once
        det._transform(Xv)
        return
    bs = det._inference_batch_size
    prepare = det._batch_transform(bs)
    for start in range(0, Xv.shape[0], bs):
        prepare(Xv[start : start + bs], start)


def _validate_only(det, X: np.ndarray) -> np.ndarray:
    """The validation ``decision_function`` runs (since issue 18 without the NaN test where the batches make it)."""
    if getattr(det, "_checks_finite", False):
        return det._validate_for_scoring(X, finite=False)
    return det._validate_for_scoring(X)


def _timed(f) -> tuple[float, object]:
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def neural_inference(rows: int, repeats: int, fit_rows: int = 20_000, d: int = 30) -> list[dict]:
    """Target 3: decision_function vs the bare forward pass, per detector."""
    rng = np.random.default_rng(0)
    X_fit = rng.standard_normal((fit_rows, d)) * rng.uniform(0.5, 3.0, d) + rng.uniform(-5, 5, d)
    X = rng.standard_normal((rows, d)) * rng.uniform(0.5, 3.0, d) + rng.uniform(-5, 5, d)
    detectors = [
        AutoEncoder(epochs=2, random_state=0),
        VAE(epochs=2, random_state=0),
        DeepSVDD(epochs=2, pretrain_epochs=1, random_state=0),
    ]
    results = []
    for det in detectors:
        det.fit(X_fit)
        module = det.module_.eval()
        score = _bare_score(det, module)
        Xs = torch.as_tensor(det._transform(X))  # standardised float32, prepared outside the timing
        # best bare batch size from a short sweep
        sweep = {b: min(_timed(lambda b=b: _bare(score, Xs, b))[0] for _ in range(2)) for b in BARE_BATCHES}
        best = min(sweep, key=sweep.get)
        lib, bare, valid, prep = [], [], [], []
        for _ in range(repeats):  # interleaved
            t, s_lib = _timed(lambda: det.decision_function(X))
            lib.append(t)
            t, s_bare = _timed(lambda: _bare(score, Xs, best))
            bare.append(t)
            t, Xv = _timed(lambda: _validate_only(det, X))
            valid.append(t)
            prep.append(_timed(lambda: _standardise_only(det, Xv))[0])
        diff = float(np.max(np.abs(s_lib - s_bare.astype(np.float64)) / np.maximum(np.abs(s_bare), 1e-30)))
        results.append(
            {
                "detector": type(det).__name__,
                "lib_rows_s": rows / float(np.median(lib)),
                "bare_rows_s": rows / float(np.median(bare)),
                "bare_batch": best,
                "ratio": float(np.median(bare)) / float(np.median(lib)),
                "ratio_best": float(np.min(bare)) / float(np.min(lib)),
                "validate_s": float(np.median(valid)),
                "standardise_s": float(np.median(prep)),
                "lib_s": float(np.median(lib)),
                "bare_s": float(np.median(bare)),
                "max_rel_diff": diff,
            }
        )
    return results


# --------------------------------------------------------------------------- shared: data and models
def _fraud_parquet(data_dir: Path, rows: int) -> Path:
    """The mixed fraud-like table, ``rows`` rows, generated once in chunks (memory stays flat)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dask_scoring import generate

    path = data_dir / f"fraud-{rows}.parquet"
    if not path.exists():
        tmp = path.with_suffix(".part")
        generate(tmp, rows, 250_000)
        os.replace(tmp, path)
    return path


def _model(data_dir: Path, name: str) -> Path:
    """``ae``: TabularDetector(AutoEncoder); ``default``: TabularDetector(LocalGlobalEnsemble(deep_weight=0))."""
    from deepad.data.synthetic import make_fraud_frame
    from deepad.detectors import AutoEncoder
    from deepad.detectors.ensemble import LocalGlobalEnsemble
    from deepad.pipeline import TabularDetector

    path = data_dir / f"model-{name}"
    if not path.exists():
        train = make_fraud_frame(20_000, seed=1).drop(columns=["is_fraud"])
        det = AutoEncoder(epochs=10, random_state=0) if name == "ae" else LocalGlobalEnsemble(deep_weight=0)
        TabularDetector(det, contamination=0.01).fit(train).save(path)
    return path


#: ``deepad`` run as ``python -c``, printing its own peak resident memory (``VmHWM``) when it exits: the
#: ``ru_maxrss`` ``wait4`` gives for a child includes the high-water mark of this (larger) parent it was forked from
CLI = (
    "import atexit, sys\n"
    "from deepad.data.memory import peak_resident_bytes\n"
    "atexit.register(lambda: print(f'__peak_rss__ {peak_resident_bytes()}', file=sys.stderr, flush=True))\n"
    "from deepad.cli import app\n"
    "sys.exit(app())"
)


def _child(cmd: list[str], env: dict) -> tuple[int, float, float, float, str]:
    """(exit code, wall s, CPU s (user + system), peak RSS MiB, output) of a child process: CPU from ``wait4``,
    the peak from the child's own ``__peak_rss__`` line (:data:`CLI`), else ``wait4``'s ``ru_maxrss``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    cpu = usage.ru_utime + usage.ru_stime
    text = out.decode(errors="replace")
    own = re.search(r"__peak_rss__ (\d+)", text)
    rss = int(own.group(1)) / 2**20 if own else usage.ru_maxrss / 1024
    return proc.returncode, time.perf_counter() - t0, cpu, rss, text


# --------------------------------------------------------------------------- target 4
def _decision_rate(model_dir: Path, data: Path, rows: int) -> tuple[float, float]:
    """Rows per wall second and per CPU second of in-process ``detector_.decision_function`` on the file's
    first ``rows`` rows, already encoded (the model's ``deepad score`` chunks of 65,536 rows)."""
    import pyarrow.parquet as pq

    import deepad
    from deepad.data.readers import _arrow_to_pandas

    model = deepad.load(model_dir)
    encoded, seconds, cpu = [], 0.0, 0.0
    for batch in pq.ParquetFile(data).iter_batches(batch_size=65_536):
        encoded.append(model.preprocessor.transform(_arrow_to_pandas(batch)))
        if sum(len(z) for z in encoded) >= rows:
            break
    for Z in encoded:
        t0, c0 = time.perf_counter(), time.process_time()
        model.detector_.decision_function(Z)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
    n = sum(len(z) for z in encoded)
    return n / seconds, n / cpu


def score_cli(data_dir: Path, models: list[str], sizes: list[int], decision_rows: dict[str, int]) -> list[dict]:
    """Target 4: the ``deepad score`` subprocess against in-process decision_function on encoded rows."""
    env = {**os.environ, "DEEPAD_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    deepad_cli = [sys.executable, "-c", CLI]
    results = []
    for name in models:
        model = _model(data_dir, name)
        files = {n: _fraud_parquet(data_dir, n) for n in sizes}
        rates = [_decision_rate(model, files[sizes[0]], decision_rows[name])]
        for n in sizes:
            out = data_dir / f"scores-{name}-{n}.parquet"
            rc, wall, cpu, rss, text = _child([*deepad_cli, "score", str(model), str(files[n]), "-o", str(out)], env)
            if rc != 0:
                raise RuntimeError(f"deepad score failed ({rc}):\n{text[-2000:]}")
            loop = float(re.search(r"Scored [\d,]+ rows in ([\d.]+) s", text).group(1))
            rates.append(_decision_rate(model, files[sizes[0]], decision_rows[name]))
            row = {"model": name, "rows": n, "wall_s": wall, "cpu_s": cpu, "loop_s": loop, "peak_rss_mib": rss}
            results.append(row)
            out.unlink(missing_ok=True)
        rate = float(np.median([r[0] for r in rates]))
        cpu_rate = float(np.median([r[1] for r in rates]))
        for r in results:
            if r["model"] == name:
                r.update(
                    decision_rows_s=rate,
                    decision_rows_cpu_s=cpu_rate,
                    cli_rows_s=r["rows"] / r["wall_s"],
                    ratio=r["rows"] / r["wall_s"] / rate,
                    ratio_loop=r["rows"] / r["loop_s"] / rate,
                    ratio_cpu=r["rows"] / r["cpu_s"] / cpu_rate,
                )
    return results


# --------------------------------------------------------------------------- target 5
SINGLE = r"""
import json, sys, time
import deepad
from deepad.scoring import score_file
model = deepad.load(sys.argv[1])
t0, c0 = time.perf_counter(), time.process_time()
s = score_file(model, sys.argv[2], sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "rows": s.rows}))
"""


def dask_scaling(data_dir: Path, rows: int, workers: list[int], partition_rows: int) -> dict:
    """Target 5: score_parquet on local clusters of k single-threaded workers vs one process with one thread."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dask_scoring import compare

    from deepad.distributed import score_parquet

    model, data = _model(data_dir, "ae"), _fraud_parquet(data_dir, rows)
    env = {**os.environ, "DEEPAD_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    single_out = data_dir / "dask-single.parquet"
    proc = subprocess.run(
        [sys.executable, "-c", SINGLE, str(model), str(data), str(single_out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    done = json.loads(proc.stdout.strip().splitlines()[-1])
    single = done["seconds"]
    result = {"rows": rows, "single_s": single, "single_cpu_s": done["cpu"], "dask": []}
    for k in workers:
        parts = data_dir / f"dask-{k}w"
        shutil.rmtree(parts, ignore_errors=True)
        s = score_parquet(model, data, parts, n_workers=k, partition_rows=partition_rows)
        same = compare(single_out, parts)
        result["dask"].append(
            {
                "workers": k,
                "seconds": s.seconds,
                "startup_s": s.startup_seconds,
                "load_s": s.load_seconds,
                "partitions": s.partitions,
                "speedup": single / s.seconds,
                "cpu_s": s.cpu_seconds,
                "cpu_ratio": done["cpu"] / s.cpu_seconds,
                "identical": same["identical"],
                "peak_rss_mib": max(s.peak_rss_bytes.values()) / 2**20,
            }
        )
        shutil.rmtree(parts, ignore_errors=True)
    single_out.unlink(missing_ok=True)
    return result


# --------------------------------------------------------------------------- the report
def _print_target3(rows: int, repeats: int) -> None:
    print(f"== target 3: neural inference, {rows:,} x 30 rows (decision_function / bare inference_mode forward) ==")
    print("ratio = bare median time / deepad median time; best = the same for the fastest repeat of each.")
    print("validate, standardise: deepad's validate_X (as decision_function runs it) and its batch-by-batch")
    print("float64 standardisation alone (median s)")
    print(
        f"{'detector':<12} {'deepad rows/s':>14} {'bare rows/s':>12} {'batch':>6} {'ratio':>6} {'best':>5} "
        f"{'deepad s':>9} {'bare s':>7} {'validate':>9} {'standardise':>11} {'max rel diff':>13}"
    )
    for r in neural_inference(rows, repeats):
        print(
            f"{r['detector']:<12} {r['lib_rows_s']:>14,.0f} {r['bare_rows_s']:>12,.0f} {r['bare_batch']:>6} "
            f"{r['ratio']:>6.2f} {r['ratio_best']:>5.2f} {r['lib_s']:>9.3f} {r['bare_s']:>7.3f} "
            f"{r['validate_s']:>9.3f} {r['standardise_s']:>11.3f} {r['max_rel_diff']:>13.2e}"
        )


def _print_target4(results: list[dict]) -> None:
    print("== target 4: deepad score on Parquet vs in-process decision_function on the encoded rows ==")
    print("ratio = deepad score rows/s (whole subprocess, imports and model load included) / decision_function rows/s;")
    print("loop = the same for the scoring loop alone (the 'Scored ... in X s' it prints). Target: ratio >= 0.5.")
    print("cpu = the same per CPU second (user + system; Arrow's reader threads included): on a machine shared with")
    print("other work, wall-clock rates measured minutes apart are not comparable, CPU seconds much more so.")
    print(
        f"{'model':<8} {'rows':>10} {'decision rows/s':>16} {'score rows/s':>13} {'ratio':>6} {'loop':>5} "
        f"{'cpu':>5} {'wall s':>7} {'cpu s':>6} {'peak RSS MiB':>13}"
    )
    for r in results:
        print(
            f"{r['model']:<8} {r['rows']:>10,} {r['decision_rows_s']:>16,.0f} {r['cli_rows_s']:>13,.0f} "
            f"{r['ratio']:>6.2f} {r['ratio_loop']:>5.2f} {r['ratio_cpu']:>5.2f} {r['wall_s']:>7.1f} "
            f"{r['cpu_s']:>6.1f} {r['peak_rss_mib']:>13.0f}"
        )
    for name in dict.fromkeys(r["model"] for r in results):
        rss = [r["peak_rss_mib"] for r in results if r["model"] == name]
        print(f"{name}: peak RSS {min(rss):.0f}-{max(rss):.0f} MiB over {len(rss)} file size(s)")


def _print_target5(result: dict) -> None:
    print(f"== target 5: Dask local cluster vs one process (1 thread), {result['rows']:,} rows ==")
    print("speedup = single-process seconds / Dask seconds (scoring, after cluster start and model load).")
    print("cpu = single-process CPU seconds / the workers' CPU seconds during their tasks: the cost of")
    print("distributing, measurable on a loaded machine (1.00 = none; the speed-up cannot exceed workers x cpu).")
    print(f"single process: {result['single_s']:.1f} s, {result['single_cpu_s']:.1f} CPU s")
    print(
        f"{'workers':>7} {'dask s':>7} {'speedup':>8} {'cpu s':>6} {'cpu':>5} {'startup s':>10} {'load s':>7} "
        f"{'partitions':>10} {'peak RSS MiB/worker':>20} {'identical':>9}"
    )
    for d in result["dask"]:
        print(
            f"{d['workers']:>7} {d['seconds']:>7.1f} {d['speedup']:>8.2f} {d['cpu_s']:>6.1f} {d['cpu_ratio']:>5.2f} "
            f"{d['startup_s']:>10.1f} {d['load_s']:>7.1f} {d['partitions']:>10} {d['peak_rss_mib']:>20.0f} "
            f"{str(d['identical']):>9}"
        )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other work shares them)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="3,4,5", help="targets to run, comma-separated (3, 4, 5)")
    ap.add_argument("--rows", type=int, default=400_000, help="target 3: rows scored")
    ap.add_argument("--repeats", type=int, default=5, help="target 3: interleaved repeats")
    ap.add_argument("--score-rows", default="1000000,5000000", help="target 4: Parquet sizes, comma-separated")
    ap.add_argument("--models", default="ae,default", help="target 4: ae, default")
    ap.add_argument("--decision-rows", type=int, default=262_144, help="target 4: rows of the in-process rate (ae)")
    ap.add_argument(
        "--default-decision-rows", type=int, default=20_000, help="target 4: the same for DEFAULT (1,400 rows/s)"
    )
    ap.add_argument("--dask-rows", type=int, default=20_000_000, help="target 5: Parquet rows")
    ap.add_argument("--workers", default="1,2", help="target 5: worker counts, comma-separated")
    ap.add_argument("--partition-rows", type=int, default=500_000, help="target 5: rows per Dask partition")
    ap.add_argument("--data-dir", default="/tmp/deepad-throughput", help="generated data and models (kept)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sections = {s.strip() for s in args.sections.split(",")}
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    if "3" in sections:
        _print_target3(args.rows, args.repeats)
    if "4" in sections:
        sizes = [int(n) for n in args.score_rows.split(",")]
        models = [m.strip() for m in args.models.split(",")]
        rows = {"ae": args.decision_rows, "default": args.default_decision_rows}
        _print_target4(score_cli(data_dir, models, sizes, rows))
    if "5" in sections:
        workers = [int(k) for k in args.workers.split(",")]
        _print_target5(dask_scaling(data_dir, args.dask_rows, workers, args.partition_rows))


if __name__ == "__main__":
    main()
