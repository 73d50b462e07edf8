"""Drift: does the data a model scores still look like the data it learned from?  And re-calibrating when it does not.

A detector learns normal from history; when normal moves (a new product, a
replaced sensor, doubled traffic) its scores creep and the flag rate drifts
from the rate it was set to.  :func:`detect_drift` tests a fitted model
against new rows with no labels, in three sections:

* **features** -- one test per column of the saved schema, suited to its
  kind (numeric: Kolmogorov-Smirnov and Lepage's location-scale rank test,
  twice the smaller p-value, by default, or either alone, or KS with Mood's
  test -- ``numeric_test=``, checked by :func:`check_numeric_test`; categorical and boolean: chi-squared on the
  frequencies, unseen categories in their own cell; datetime: KS of hour,
  weekday and month; missing rate: Fisher's exact test), against the
  bounded training sample the model keeps, with Holm's or
  Benjamini-Hochberg's correction;
* **multivariate** -- on the encoded features the detector sees, a
  classifier two-sample test (held-out AUC of gradient boosting, exact
  rank-sum p-value) by default, or maximum mean discrepancy (Gaussian
  kernel, permutation p-value);
* **score** -- the new rows' anomaly scores against the model's reference
  scores (KS), the flag rate at ``threshold_`` (Fisher's exact test) and,
  with ``tail_quantiles=`` (checked by :func:`check_tail_quantiles`), an
  excess of new rows above chosen reference quantiles:
  conformal p-values make the no-drift flag rate known, so this is the
  sharpest signal for what the user cares about, the alarms.

The top level is ``drift`` (bool) and ``p_value``: Bonferroni over the
sections that ran.  :func:`recalibrate` re-fits the reference scores and
threshold on recent rows the user declares clean, so the conformal
false-alarm guarantee holds again.  ``deepad monitor`` is the command line.
See docs/drift.md.
"""

from deepad.drift._c2st import c2st_test
from deepad.drift._mmd import mmd_test
from deepad.drift._numeric import DEFAULT_NUMERIC_TEST, NUMERIC_TESTS, check_numeric_test
from deepad.drift._score import check_tail_quantiles
from deepad.drift._stats import CORRECTIONS
from deepad.drift.core import DEFAULT_MULTIVARIATE, MULTIVARIATE, DriftReport, detect_drift, score_drift
from deepad.drift.recalibrate import history, recalibrate
from deepad.drift.refit import refit

__all__ = [
    "DriftReport",
    "detect_drift",
    "score_drift",
    "NUMERIC_TESTS",
    "CORRECTIONS",
    "MULTIVARIATE",
    "DEFAULT_NUMERIC_TEST",
    "DEFAULT_MULTIVARIATE",
    "check_numeric_test",
    "check_tail_quantiles",
    "mmd_test",
    "c2st_test",
    "recalibrate",
    "history",
    "refit",
]
