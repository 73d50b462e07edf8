"""Run a streaming detector over the NAB corpus and score it with deepad.bench.nab.

Protocol (causal, one file at a time): the detector is fitted on the file's
probationary period (the first 15 %, at most 750 rows -- NAB ignores
detections there), SPOT is initialised on those training scores, and the
rest of the file is streamed through :class:`deepad.stream.StreamScorer`
point by point (``--batch 1``); its *alerts* (after refractory suppression)
are the detections.  Reported next to it: the null detector (no alerts) and
a random detector (the same number of alerts per file at uniformly random
rows, seeded).

    DEEPAD_NUM_THREADS=1 .venv/bin/python benchmarks/run_nab.py /work/shared/datasets/nab \\
        --detector GRUForecaster --out benchmarks/results/nab
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")

from deepad.bench import nab  # noqa: E402
from deepad.stream import StreamScorer  # noqa: E402

DETECTORS = {
    "GRUForecaster": dict(window=32, hidden_dims=(32,), epochs=30, batch_size=64, validation_fraction=0.1,
                          patience=5, preprocessing="robust", random_state=0, device="cpu"),
    "TCNAutoEncoder": dict(window=32, hidden_dims=(16, 16), latent_dim=4, epochs=30, batch_size=64,
                           preprocessing="robust", random_state=0, device="cpu"),
    "RollingZScore": dict(window=64),
}


def run_file(name, params, values, probation, stream_kw, batch):
    import deepad.detectors as D

    det = getattr(D, name)(**params).fit(values[:probation])
    w = int(getattr(det, "window", 1))
    sc = StreamScorer(det, **stream_kw)
    if w > 1:
        sc.prime(values[max(probation - (w - 1), 0):probation])
    alerts = np.zeros(values.shape[0], dtype=bool)
    scores = np.full(values.shape[0], np.nan)
    for start in range(probation, values.shape[0], batch):
        u = sc.update(values[start:start + batch])
        alerts[start:start + len(u)] = u.alerts
        scores[start:start + len(u)] = u.scores
    return alerts, scores, sc.latency_per_point_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--detector", default="GRUForecaster", choices=sorted(DETECTORS))
    ap.add_argument("--params", default="{}", help="JSON overrides of the detector's parameters.")
    ap.add_argument("--risk", type=float, default=1e-4)
    ap.add_argument("--init-quantile", type=float, default=0.98)
    ap.add_argument("--refractory", type=int, default=300)
    ap.add_argument("--smoothing", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1, help="Points per update() call (1 = true streaming).")
    ap.add_argument("--categories", default=None, help="Comma-separated NAB categories (default: all present).")
    ap.add_argument("--out", default=None, help="Folder for results.json and summary.md.")
    args = ap.parse_args(argv)

    params = {**DETECTORS[args.detector], **json.loads(args.params)}
    stream_kw = dict(risk=args.risk, init_quantile=args.init_quantile, refractory=args.refractory,
                     smoothing=args.smoothing)
    cats = args.categories.split(",") if args.categories else None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    runs, rand, null, per_file, latencies, n_points = {}, {}, {}, {}, [], 0
    rng = np.random.default_rng(0)
    for key, df, wins in nab.load_corpus(args.root, cats):
        values = df[["value"]].to_numpy(dtype=np.float64)
        n = values.shape[0]
        probation = nab.probation_length(n)
        t0 = time.perf_counter()
        alerts, _, lat = run_file(args.detector, params, values, probation, stream_kw, args.batch)
        runs[key] = (alerts, wins, n)
        null[key] = (np.zeros(n, dtype=bool), wins, n)
        k = int(alerts.sum())
        r = np.zeros(n, dtype=bool)
        r[rng.choice(np.arange(probation, n), size=min(k, n - probation), replace=False)] = True
        rand[key] = (r, wins, n)
        latencies.append((lat, n - probation))
        n_points += n - probation
        per_file[key] = {"rows": n, "alerts": k, "windows": len(wins), "seconds": time.perf_counter() - t0,
                         "latency_ms": 1e3 * lat}
        print(f"{key:60s} rows={n:6d} alerts={k:3d} windows={len(wins)} {time.perf_counter() - t0:6.1f}s "
              f"{1e3 * lat:.3f} ms/pt", flush=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    table = {}
    for det_name, res in (("deepad " + args.detector, runs), ("null", null), ("random (same alert count)", rand)):
        row = {}
        for prof in nab.PROFILES:
            s = nab.score_corpus(res, prof)
            row[prof] = s["score"]
        s = nab.score_corpus(res, "standard")
        row.update(nab.window_metrics(s))
        row.update({"tp": s["tp"], "fp": s["fp"], "fn": s["fn"], "windows": s["windows"]})
        table[det_name] = row
    latency = sum(l * m for l, m in latencies) / max(n_points, 1)
    summary = {"detector": args.detector, "params": params, "stream": stream_kw, "batch": args.batch,
               "files": len(runs), "points_streamed": n_points, "wall_s": wall, "cpu_s": cpu,
               "latency_ms_per_point": 1e3 * latency, "threads": os.environ.get("DEEPAD_NUM_THREADS"),
               "scores": table, "per_file": per_file}
    lines = [f"# NAB ({len(runs)} files, {n_points} streamed points) -- {args.detector}", "",
             f"stream: {stream_kw}, batch={args.batch}; params: {params}", "",
             "| detector | standard | low FP | low FN | precision | recall | F1 | TP | FP | FN |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for det_name, row in table.items():
        lines.append(f"| {det_name} | {row['standard']:.1f} | {row['reward_low_FP_rate']:.1f} | "
                     f"{row['reward_low_FN_rate']:.1f} | {row['precision']:.2f} | {row['recall']:.2f} | "
                     f"{row['f1']:.2f} | {row['tp']} | {row['fp']} | {row['fn']} |")
    lines += ["", f"wall {wall:.1f} s, CPU {cpu:.1f} s (whole corpus, fit + stream), "
                  f"mean streaming latency {1e3 * latency:.3f} ms/point (batch {args.batch}, "
                  f"DEEPAD_NUM_THREADS={os.environ.get('DEEPAD_NUM_THREADS')})"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"results_{args.detector}.json").write_text(json.dumps(summary, indent=2, default=float))
        (out / f"summary_{args.detector}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
