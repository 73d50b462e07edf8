"""Detection with one-hot columns scaled by rarity vs plain 0/1 indicators (issue 19, ``category_encoding``).

Data: ``deepad example``'s fraud table (:func:`deepad.data.synthetic.make_fraud_frame`, 1 % planted
frauds, label ``is_fraud``).  Unsupervised as ``deepad train``/``score`` are used: fit on one table
(labels dropped), score a fresh one of another seed; ROC-AUC and average precision per detector,
encoding and seed.  Detectors that standardize or min-max their input themselves (the neural ones,
DEFAULT) and those invariant to per-feature affine maps (IsolationForest, HBOS, ECOD) should not
move; distance-based ones (KNN, LOF, OneClassSVM) do.

    DEEPAD_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/category_encoding.py --rows 3000 --seeds 0,1
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

ALL = [
    "DEFAULT",
    "KNN",
    "LOF",
    "OneClassSVM",
    "IsolationForest",
    "ECOD",
    "HBOS",
    "PCA",
    "AutoEncoder",
    "VAE",
    "DeepSVDD",
    "ALAD",
    "DeepIsolationForest",
    "DAGMM",
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--detectors", default=",".join(ALL))
    args = parser.parse_args(argv)
    from deepad.data.synthetic import make_fraud_frame
    from deepad.pipeline import TabularDetector

    import explanations  # the benchmark next to this file: same detector construction

    records = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        train = make_fraud_frame(args.rows, seed=seed).drop(columns=["is_fraud"])
        test = make_fraud_frame(args.rows, seed=seed + 1000)
        y = test.pop("is_fraud").to_numpy()
        for name in args.detectors.split(","):
            for enc in ("onehot", "rarity"):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = TabularDetector(explanations.make_detector(name, seed), category_encoding=enc).fit(train)
                    s = model.decision_function(test)
                row = dict(detector=name, encoding=enc, seed=seed, seconds=time.perf_counter() - t0)
                row.update(auc=roc_auc_score(y, s), ap=average_precision_score(y, s))
                records.append(row)
                print(f"{name:20s} {enc:7s} seed {seed}  auc {row['auc']:.3f}  ap {row['ap']:.3f}", flush=True)
    df = pd.DataFrame(records)
    wide = df.pivot_table(index="detector", columns="encoding", values=["auc", "ap"], aggfunc="mean")
    print(wide.reindex([d for d in args.detectors.split(",")]).round(3).to_string())


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
