"""Does DAGMM learn the planted mixed table of benchmarks/explanations.py?  Detection ROC-AUC for a few settings (issue 19).

    DEEPAD_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/dagmm_planted.py

Measured (seed 0): defaults 0.619 (10 % flagged); preprocessing="standard" 0.439; latent_dim=2,
n_components=2 0.732 (33 %); epochs=300 0.619.
"""

from pathlib import Path
import sys
import warnings
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import explanations as E
from sklearn.metrics import roc_auc_score
from deepad.pipeline import TabularDetector
from deepad.detectors import DAGMM

rng = np.random.default_rng(0)
clean = E.normal_rows(2000, rng)
stats = {c: (float(clean[c].median()), float(clean[c].std())) for c in E.NUMERIC}
ks = np.repeat([1, 2, 3], 40)
test, planted = E.plant(E.normal_rows(ks.size, rng), ks, stats, rng)
normal = E.normal_rows(480, rng)
y = np.r_[np.ones(len(test)), np.zeros(len(normal))]
for kw in [dict(), dict(preprocessing="standard"), dict(latent_dim=2, n_components=2), dict(epochs=300)]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = TabularDetector(DAGMM(random_state=0, **kw)).fit(clean)
    s = np.r_[m.decision_function(test), m.decision_function(normal)]
    print(
        kw,
        "auc %.3f" % roc_auc_score(y, s),
        "flagged %.2f" % (m.decision_function(test) > m.threshold_).mean(),
        flush=True,
    )
