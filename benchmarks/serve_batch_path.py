"""CPU cost of the service's scoring path for 1,000-record requests, without HTTP, against in-process scoring.

Issue 18, target 2, in the part the service controls: for each body kind (JSON records, JSON column arrays,
CSV, Parquet) the CPU milliseconds of ``deepad.serve.scoring._score_body`` -- reading and validating the body,
the table's preprocessing, the model, the p-values and the JSON answer -- against ``model.decision_function``
on the same rows as a DataFrame, interleaved in one process, one thread.  CPU time (``time.process_time``), not
wall time, so that other jobs on a shared machine move both sides alike; the HTTP layer (Uvicorn, h11, the
client) is what ``benchmarks/load_test.py`` adds on top.

    PYTHONPATH=src DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/serve_batch_path.py --repeats 20
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def request_bodies(frame) -> dict[str, tuple[str, bytes]]:
    """``frame``'s rows as each request body the service takes: name -> (Content-Type, body)."""
    records = json.loads(frame.to_json(orient="records"))
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    return {
        "JSON records": ("application/json", json.dumps(records).encode()),
        "JSON columns": (
            "application/json",
            json.dumps({"columns": {c: [r[c] for r in records] for c in records[0]}}).encode(),
        ),
        "CSV": ("text/csv", frame.to_csv(index=False).encode()),
        "Parquet": ("application/vnd.apache.parquet", parquet.getvalue()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000, help="rows per request")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--model", choices=["ae", "default"], default="ae")
    args = ap.parse_args()

    import deepad
    from deepad.data.synthetic import make_fraud_frame
    from deepad.detectors import AutoEncoder
    from deepad.detectors.ensemble import LocalGlobalEnsemble
    from deepad.pipeline import TabularDetector
    from deepad.serve.bodies import _Limits
    from deepad.serve.registry import ModelRegistry
    from deepad.serve.scoring import _score_body

    tmp = Path(tempfile.mkdtemp(prefix="deepad-serve-path-"))
    train = make_fraud_frame(5000, seed=1).drop(columns=["is_fraud"])
    det = (
        AutoEncoder(epochs=10, hidden_dims=(64, 32), latent_dim=8, random_state=0)
        if args.model == "ae"
        else LocalGlobalEnsemble(deep_weight=0)
    )
    TabularDetector(det, contamination=0.01).fit(train).save(tmp / "m")
    model = deepad.load(tmp / "m")
    loaded = ModelRegistry.from_root(tmp).get("m")

    frame = make_fraud_frame(args.rows, seed=9, start_index=1_000_000).drop(columns=["is_fraud"])
    bodies = request_bodies(frame)
    limits = _Limits()
    calls = {"in-process decision_function": lambda: model.decision_function(frame)}
    for name, (media, body) in bodies.items():
        calls[name] = lambda m=media, b=body: _score_body(b, m, loaded, limits, "none", 3)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for f in calls.values():
        f()  # warm-up
    for _ in range(args.repeats):
        for name, f in calls.items():
            c0 = time.process_time()
            f()
            times[name].append(time.process_time() - c0)
    ref = float(np.median(times["in-process decision_function"]))
    print(
        f"{args.model}, {args.rows:,} rows per request, {args.repeats} interleaved repeats, one thread, "
        f"load average {os.getloadavg()[0]:.1f}; CPU ms per request (median); ratio = in-process / service path"
    )
    for name, t in times.items():
        med = float(np.median(t))
        print(f"  {name:<32} {1000 * med:8.2f} ms   x in-process {ref / med:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
