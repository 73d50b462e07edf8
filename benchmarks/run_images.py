"""One-class MNIST with the convolutional detectors -- a thin wrapper of :func:`deepad.bench.images.run_mnist_benchmark`.

The same protocol as ``deepad bench --images mnist --data DIR`` (see
:mod:`deepad.bench.images`); this script also writes one anomaly-map example
(``anomaly_map_example.png``: a ConvAutoEncoder trained on one digit, its most
and least anomalous test images with their maps) and puts the command into
RESULTS.md.

    DEEPAD_NUM_THREADS=1 .venv/bin/python benchmarks/run_images.py /work/shared/datasets/mnist \\
        --detectors ConvAutoEncoder,ConvVAE,ConvDeepSVDD --seeds 3 --out benchmarks/results/images-mnist
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("DEEPAD_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from deepad.bench.images import mnist_markdown, mnist_split, run_mnist_benchmark  # noqa: E402


def anomaly_map_example(data: str, out: Path, *, digit: int = 3, seed: int = 0) -> Path:
    """Train the default ConvAutoEncoder on ``digit``; save a grid: normal test images vs the top anomalies, with maps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    import deepad.detectors as D
    from deepad.data.images import read_mnist

    X, y = read_mnist(data)
    train, test, y_test = mnist_split(y, digit, seed)
    det = D.ConvAutoEncoder(random_state=seed).fit(X[train])
    s = det.decision_function(X[test])
    normal = test[y_test == 0][np.argsort(s[y_test == 0])[:3]]  # most typical held-out digits
    anomalous = test[np.argsort(-s)[:5]]  # highest scores overall
    picks = np.concatenate([normal, anomalous])
    maps, recon = det.anomaly_map(X[picks]), det.reconstruct(X[picks])
    scores = det.decision_function(X[picks])
    fig = Figure(figsize=(1.6 * len(picks), 5.2), dpi=100)
    fig.subplots_adjust(left=0.08, right=0.99, top=0.86, bottom=0.02, wspace=0.05, hspace=0.12)
    vmax = float(maps.max())
    for j, idx in enumerate(picks):
        for r, (img, cmap, kw) in enumerate(
            [
                (X[idx, 0], "gray", dict(vmin=0, vmax=1)),
                (np.clip(recon[j, 0], 0, 1), "gray", dict(vmin=0, vmax=1)),
                (maps[j], "inferno", dict(vmin=0, vmax=vmax)),
            ]
        ):
            ax = fig.add_subplot(3, len(picks), r * len(picks) + j + 1)
            ax.imshow(img, cmap=cmap, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(
                    f"{'normal' if y[idx] == digit else 'anomaly'} ({y[idx]})\nscore {scores[j]:.3f}", fontsize=8
                )
            if j == 0:
                ax.set_ylabel(["image", "reconstruction", "anomaly map"][r], fontsize=8)
    fig.suptitle(
        f"ConvAutoEncoder trained on digit {digit} (seed {seed}): 3 most typical held-out {digit}s, "
        "then the 5 highest-scoring test images",
        fontsize=9,
    )
    FigureCanvasAgg(fig)
    path = out / "anomaly_map_example.png"
    fig.savefig(path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--detectors", default="ConvAutoEncoder")
    ap.add_argument("--seeds", default="3", help="number of seeds (3 = seeds 0, 1, 2) or a comma-separated list")
    ap.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--out", default="benchmarks/results/images-mnist")
    ap.add_argument("--example-digit", type=int, default=3)
    ap.add_argument("--no-example", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    seeds = list(range(int(args.seeds))) if args.seeds.isdigit() else [int(s) for s in args.seeds.split(",")]
    df = run_mnist_benchmark(
        args.data,
        args.detectors,
        digits=[int(d) for d in args.digits.split(",")],
        seeds=seeds,
        out=out,
        progress=lambda r: print(
            r["detector"], r["digit"], r["seed"], r.get("roc_auc"), r.get("fit_seconds"), r["error"], flush=True
        ),
    )
    command = (
        "DEEPAD_NUM_THREADS="
        + os.environ["DEEPAD_NUM_THREADS"]
        + " .venv/bin/python benchmarks/run_images.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    text = mnist_markdown(df) + f"\nCommand: `{command}`\n"
    if not args.no_example:
        png = anomaly_map_example(args.data, out, digit=args.example_digit)
        text += f"\n![anomaly maps]({png.name})\n"
    (out / "RESULTS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
