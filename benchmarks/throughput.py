"""Scoring throughput of deepad against the bare computation it wraps (issue 18).

Target 3 -- neural inference: ``decision_function`` of AutoEncoder, VAE and
DeepSVDD against the bare ``torch.inference_mode()`` forward pass of the same
fitted module producing the same per-row score (the module's forward plus
the minimal score arithmetic, on rows already standardised and in float32,
at the best batch size of a small sweep).  One process, one thread; the two
are timed in interleaved repeats and the median is reported.

Targets 4 and 5 of issue 18 are NOT measured here yet (sections below are
placeholders).

    DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/throughput.py [--rows 400000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

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
            t, Xv = _timed(lambda: det._validate_for_scoring(X))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, rows {args.rows} x 30")
    print("== target 3: neural inference (decision_function / bare inference_mode forward) ==")
    print("ratio = bare median time / deepad median time; best = the same for the fastest repeat of each.")
    print("validate, standardise: deepad's validate_X and its batch-by-batch float64 standardisation alone (median s)")
    print(
        f"{'detector':<12} {'deepad rows/s':>14} {'bare rows/s':>12} {'batch':>6} {'ratio':>6} {'best':>5} "
        f"{'deepad s':>9} {'bare s':>7} {'validate':>9} {'standardise':>11} {'max rel diff':>13}"
    )
    for r in neural_inference(args.rows, args.repeats):
        print(
            f"{r['detector']:<12} {r['lib_rows_s']:>14,.0f} {r['bare_rows_s']:>12,.0f} {r['bare_batch']:>6} "
            f"{r['ratio']:>6.2f} {r['ratio_best']:>5.2f} {r['lib_s']:>9.3f} {r['bare_s']:>7.3f} "
            f"{r['validate_s']:>9.3f} {r['standardise_s']:>11.3f} {r['max_rel_diff']:>13.2e}"
        )
    print("== target 4: not yet measured ==")
    print("== target 5: not yet measured ==")


if __name__ == "__main__":
    main()
