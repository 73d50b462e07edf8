"""deepad.drift (issue 20): the classifier two-sample test, refit / warm start, and the stream CUSUM on autocorrelation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import deepad
from deepad.detectors import AutoEncoder, DeepSVDD, IsolationForest
from deepad.drift import c2st_test, detect_drift, history, recalibrate, refit
from deepad.pipeline import TabularDetector
from deepad.stream import PValueCUSUM


def _table(n: int, seed: int, shops=("x", "y", "z")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    return pd.DataFrame({"a": a, "b": 2.0 * a + rng.normal(0.0, 0.3, n), "shop": rng.choice(list(shops), n)})


# --------------------------------------------------------------------------- classifier two-sample test
def test_c2st_holds_its_level_and_sees_a_scale_change():
    rng = np.random.default_rng(0)
    null = [
        c2st_test(rng.normal(size=(100, 3)), rng.normal(size=(100, 3)), random_state=i)["p_value"] for i in range(25)
    ]
    assert np.mean(np.array(null) <= 0.05) <= 0.2 and 0.3 < np.mean(null) < 0.7  # uniform-ish under no drift
    X, Y = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    Y[:, 1] *= 2.0  # a scale change: the means stay, a classifier still tells them apart
    r = c2st_test(X, Y)
    assert r["p_value"] < 1e-3 and r["statistic"] > 0.6 and r["test_rows"] == 400 and r["train_rows"] == 400
    assert c2st_test(X[:3], Y[:3])["p_value"] is None  # too few rows: skipped, said why
    with pytest.raises(ValueError, match="test_fraction"):
        c2st_test(X, Y, test_fraction=1.0)


def test_detect_drift_takes_c2st_or_both_as_the_multivariate_section():
    model = TabularDetector(IsolationForest(n_estimators=50), contamination=0.05, random_state=0).fit(_table(1500, 0))
    model.calibrate(_table(500, 77))  # held-out reference scores: the score section is in the verdict
    new = _table(600, 1)
    new["b"] = np.random.default_rng(5).permutation(new["b"].to_numpy())  # a broken correlation: joint only
    c2 = detect_drift(model, new, multivariate="c2st")
    assert c2.multivariate["test"] == "c2st" and c2.multivariate["p_value"] < 1e-3 and c2.drift
    both = detect_drift(model, new, multivariate="both")
    mv = both.multivariate
    assert mv["test"] == "mmd+c2st" and mv["mmd"]["test"] == "mmd" and mv["c2st"]["test"] == "c2st"
    assert mv["p_value"] == pytest.approx(min(1.0, 2 * min(mv["mmd"]["p_value"], mv["c2st"]["p_value"])))
    assert both.sections["multivariate"] == mv["p_value"]
    plain = detect_drift(model, new, multivariate=True)
    assert plain.multivariate["test"] == "c2st" and plain.multivariate == c2.multivariate  # the default
    assert detect_drift(model, new, multivariate="mmd").multivariate["test"] == "mmd"
    # a weighted Bonferroni over the sections: min p_s / w_s, the weights normalised over the sections that ran
    wb = detect_drift(model, new, weights={"features": 2, "multivariate": 1, "score": 1})
    p = plain.sections
    assert wb.p_value == pytest.approx(min(1.0, p["features"] / 0.5, p["multivariate"] / 0.25, p["score"] / 0.25))
    assert "weighted Bonferroni" in wb.rule and plain.p_value == min(1.0, 3 * min(p.values()))
    with pytest.raises(ValueError, match="no positive weight"):
        detect_drift(model, new, weights={"other": 1.0})
    with pytest.raises(ValueError, match="multivariate must be"):
        detect_drift(model, new, multivariate="energy")


# --------------------------------------------------------------------------- refit and warm start
def _ae(**kw):
    return AutoEncoder(epochs=3, hidden_dims=(8,), latent_dim=2, validation_fraction=0.0, random_state=0, **kw)


def test_warm_start_continues_from_the_saved_weights_and_records_the_version(tmp_path):
    old = TabularDetector(_ae(), contamination=0.05, random_state=0).fit(_table(600, 0))
    recalibrate(old, _table(300, 9), fpr=0.05)  # version 2
    recent = _table(900, 1)
    recent[["a", "b"]] += 0.5
    new = refit(old, recent, retain=400, params={"epochs": 1}, note="after the sensor swap", path=tmp_path / "m")
    steps = history(deepad.load(tmp_path / "m"))
    assert [s["action"] for s in steps] == ["fit", "recalibrate", "warm-start"] and steps[-1]["version"] == 3
    e = steps[-1]
    assert (
        e["rows"] == 400
        and e["retain"] == 400
        and e["params"] == {"epochs": 1}
        and e["note"] == "after the sensor swap"
    )
    assert e["reason"] == "continued training from the saved weights" and e["rule"] == "fpr"
    assert new.detector_.n_epochs_ == 1 and old.detector_.n_epochs_ == 3  # the old model is not changed
    # one epoch from the saved weights starts where the old network was: far closer to it than a fresh network
    o, w = old.detector_.module_.state_dict(), new.detector_.module_.state_dict()
    fresh = refit(old, recent, retain=400, params={"epochs": 1}, warm_start=False).detector_.module_.state_dict()
    k = "encoder.0.weight" if "encoder.0.weight" in o else next(iter(o))
    assert torch.dist(w[k], o[k]) < 0.5 * torch.dist(fresh[k], o[k])
    assert history(refit(old, recent, warm_start=False))[-1]["action"] == "refit"
    # the retained rows are the last ones, and the threshold rule is the old model's (fpr 5 %)
    again = refit(old, recent.iloc[-400:].reset_index(drop=True), params={"epochs": 1})
    np.testing.assert_allclose(again.decision_scores_, new.decision_scores_, rtol=1e-5)
    assert new.threshold_method_["method"] == "fpr" and new.threshold_method_["fpr"] == 0.05


def test_warm_start_maps_a_changed_category_layout_by_name():
    old = TabularDetector(_ae(), contamination=0.05, random_state=0).fit(_table(600, 0, shops=("x", "y", "z")))
    new = refit(old, _table(600, 1, shops=("x", "y", "w")), params={"epochs": 1})
    e = history(new)[-1]
    assert e["action"] == "warm-start" and "mapped by name" in e["reason"]
    names_old, names_new = list(old.feature_names_out_), list(new.feature_names_out_)
    assert names_old != names_new
    # the input weights of the features both models have start from the saved ones: after one epoch they are far
    # closer to them than a fresh network's
    fresh = refit(old, _table(600, 1, shops=("x", "y", "w")), params={"epochs": 1}, warm_start=False)
    W_old = old.detector_.module_.state_dict()
    key = next(k for k, v in W_old.items() if v.dim() == 2 and v.shape[1] == len(names_old))
    kept = [n for n in names_new if n in names_old]
    cols_old = [names_old.index(n) for n in kept]
    cols_new = [names_new.index(n) for n in kept]
    warm_w = new.detector_.module_.state_dict()[key][:, cols_new]
    fresh_w = fresh.detector_.module_.state_dict()[key][:, cols_new]
    assert torch.dist(warm_w, W_old[key][:, cols_old]) < 0.5 * torch.dist(fresh_w, W_old[key][:, cols_old])


def test_refit_says_when_it_cannot_warm_start():
    forest = TabularDetector(IsolationForest(n_estimators=30), contamination=0.05, random_state=0).fit(_table(400, 0))
    e = history(refit(forest, _table(400, 1)))[-1]
    assert e["action"] == "refit" and "no network weights" in e["reason"]
    svdd = TabularDetector(
        DeepSVDD(epochs=1, hidden_dims=(8,), latent_dim=2, validation_fraction=0.0), contamination=0.05
    ).fit(_table(300, 0))
    e = history(refit(svdd, _table(300, 1)))[-1]
    assert e["action"] == "refit" and "before training" in e["reason"]
    with pytest.raises(ValueError, match="retain must be"):
        refit(forest, _table(400, 1), retain=0)


# --------------------------------------------------------------------------- the stream CUSUM on autocorrelation
def _ar1(n: int, phi: float, seed: int) -> np.ndarray:
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    return lfilter([1.0], [1.0, -phi], rng.standard_normal(n) * np.sqrt(1 - phi**2))


def _events(p: np.ndarray, **kw) -> list[str]:
    c = PValueCUSUM(**kw)
    return [e for e in (c.step(float(x)) for x in p) if e]


def test_autocorrelation_correction_stops_false_events_and_still_detects():
    from deepad.thresholds import conformal_p_values

    ref = np.random.default_rng(1).standard_normal(2000)
    p = conformal_p_values(ref, _ar1(20_000, 0.8, 2))  # uniform p-values, but autocorrelated
    assert len(_events(p)) >= 20  # the plain CUSUM: one false event every few hundred points
    assert len(_events(p, autocorrelation=True)) <= 2
    iid = conformal_p_values(ref, np.random.default_rng(3).standard_normal(20_000))
    assert len(_events(iid, autocorrelation=True)) <= 3  # no cost on independent points
    moved = conformal_p_values(ref, _ar1(3000, 0.8, 4) + 1.0)
    assert "up" in _events(moved, autocorrelation=True)  # a real shift is still found


def test_autocorrelation_state_is_saved_and_old_states_resume():
    c = PValueCUSUM(autocorrelation=True)
    for x in np.random.default_rng(0).random(500):
        c.step(float(x))
    state = json.loads(json.dumps(c.state()))
    back = PValueCUSUM.from_state(state)
    assert back.autocorrelation.state() == c.autocorrelation.state() and back.n == 500
    ps = np.random.default_rng(1).random(300)
    assert [c.step(float(x)) for x in ps] == [back.step(float(x)) for x in ps] and c.up == back.up
    old = {k: v for k, v in state.items() if k != "autocorrelation"}
    assert PValueCUSUM.from_state(old).autocorrelation is None  # a state saved before: the plain CUSUM, as it was


# --------------------------------------------------------------------------- per-column rank tests, score tails
def _column(values):
    from deepad.drift._numeric import ColumnReference

    return ColumnReference(np.asarray(values, dtype=np.float64))


def test_numeric_tests_match_scipy_and_hold_their_level_under_no_drift():
    from scipy import stats

    from deepad.drift._numeric import numeric_tests

    rng = np.random.default_rng(0)
    for n, m in [(1500, 400), (60, 40)]:  # Smirnov's asymptotic p-value and scipy's exact one
        ref, new = rng.normal(size=n), rng.normal(0.1, 1.1, size=m)
        (r,) = numeric_tests([_column(ref)], [new], "ks")
        assert r["p_ks"] == pytest.approx(stats.ks_2samp(ref, new, method="asymp" if n * m > 10_000 else "auto").pvalue)
        assert r["wasserstein_std"] == pytest.approx(stats.wasserstein_distance(ref, new) / ref.std())
    # 400 no-drift pairs: a continuous column and a tied (integer) one; each test's rate at 5 % near 5 %
    p = {k: [] for k in ("p_ks", "p_lepage", "p_mood", "p_wilcoxon")}
    for i in range(400):
        for scale in (None, 1.5):
            ref, new = rng.normal(size=300), rng.normal(size=60)
            if scale:
                ref, new = np.round(ref * scale), np.round(new * scale)
            (r,) = numeric_tests([_column(ref)], [new], "ks+lepage")
            for k in p:
                p[k].append(r[k])
    for k in ("p_lepage", "p_mood", "p_wilcoxon"):
        v = np.array(p[k])
        assert 0.025 <= np.mean(v <= 0.05) <= 0.075, k
        assert 0.15 <= np.mean(v <= 0.25) <= 0.35, k  # uniform-ish, not only in the tail
    assert np.mean(np.array(p["p_ks"]) <= 0.05) <= 0.075  # KS: conservative on ties


def test_lepage_sees_a_scale_change_that_ks_misses():
    from deepad.drift._numeric import numeric_tests

    rng = np.random.default_rng(1)
    ref = rng.normal(size=1500)
    found = {"p_ks": 0, "p_lepage": 0}
    for _ in range(40):
        (r,) = numeric_tests([_column(ref)], [1.25 * rng.normal(size=300)], "ks+lepage")
        for k in found:
            found[k] += r[k] <= 0.05 / 20  # a Bonferroni share of 20 columns
        assert r["test"] == "ks+lepage" and r["p_value"] == pytest.approx(min(1.0, 2 * min(r["p_ks"], r["p_lepage"])))
        assert r["std_ratio"] == pytest.approx(1.25, abs=0.15) and r["mood_z"] > 0
    assert found["p_lepage"] >= 30 and found["p_ks"] <= found["p_lepage"] - 10
    with pytest.raises(ValueError, match="numeric_test must be one of"):
        numeric_tests([_column(ref)], [ref], "anderson")


def test_tail_exceedance_test_is_exact_and_sees_a_few_far_rows():
    from deepad.drift._score import tail_test

    rng = np.random.default_rng(2)
    for n, m in [(200, 15), (40, 40)]:
        p = np.array([tail_test(rng.random(n), rng.random(m), 0.9)["p_value"] for _ in range(1500)])
        assert np.mean(p <= 0.05) <= 0.06 and np.mean(p <= 0.2) >= 0.12  # exact: at most the level, not far below
    ref = rng.normal(size=500)
    new = np.concatenate([rng.normal(size=45), rng.normal(6.0, 1.0, size=5)])  # 10 % of the rows far out
    r = tail_test(ref, new, 0.99)
    assert r["new_count"] >= 5 and r["expected_count"] == pytest.approx(50 * 5 / 501)
    assert r["p_value"] < 1e-3
    assert tail_test(ref, rng.normal(size=50) - 3.0, 0.99)["p_value"] == 1.0  # one-sided: fewer far rows is not it


def test_score_drift_refuses_a_tail_quantile_outside_0_1_and_numeric_test_is_case_insensitive():
    from deepad.drift import check_numeric_test, check_tail_quantiles, score_drift

    rng = np.random.default_rng(4)
    det = IsolationForest(n_estimators=20, random_state=0, contamination=0.05).fit(rng.normal(size=(300, 2)))
    scores = det.decision_function(rng.normal(size=(100, 2)))
    with pytest.raises(ValueError, match=r"tail_quantiles must be numbers strictly between 0 and 1, got 1\.5"):
        score_drift(det, scores, tail_quantiles=(1.5,))
    with pytest.raises(ValueError, match="lists 0.9 twice"):
        score_drift(det, scores, tail_quantiles=(0.9, 0.9))
    with pytest.raises(ValueError, match="got 0.99"):
        score_drift(det, scores, tail_quantiles=0.99)  # a bare number, not a list
    tails = score_drift(det, scores, tail_quantiles=[0.99, 0.9])["tails"]
    assert [t["quantile"] for t in tails] == [0.99, 0.9]  # in the order given
    assert check_tail_quantiles(np.array([0.5])) == (0.5,) and check_numeric_test("KS+Mood") == "ks+mood"
    with pytest.raises(ValueError, match="--numeric-test must be one of ks, lepage, ks\\+lepage, ks\\+mood, got 't'"):
        check_numeric_test("t", what="--numeric-test")


def test_detect_drift_reports_every_part_and_reuses_the_prepared_reference():
    from deepad.drift.core import _CACHE

    model = TabularDetector(IsolationForest(random_state=0), contamination=0.05, random_state=0).fit(_table(1500, 0))
    new = _table(400, 1)
    new["a"] = 1.3 * new["a"]
    r = detect_drift(model, new, numeric_test="ks+lepage", tail_quantiles=(0.9, 0.99))
    (a,) = [f for f in r.features if f["name"] == "a"]
    assert a["drift"] and a["p_lepage"] < a["p_ks"] and {"p_mood", "p_wilcoxon", "wasserstein_std"} <= set(a)
    tails = r.score["tails"]
    assert [t["quantile"] for t in tails] == [0.9, 0.99]
    ps = [r.score["distribution"]["p_value"], r.score["flag_rate"]["p_value"]] + [t["p_value"] for t in tails]
    assert r.score["p_value"] == pytest.approx(min(1.0, 4 * min(ps)))
    assert set(r.seconds) == {"prepare", "features", "multivariate", "score"}
    cached = _CACHE[model]["Z_ref"]
    again = detect_drift(model, new, numeric_test="ks+lepage", tail_quantiles=(0.9, 0.99))
    assert _CACHE[model]["Z_ref"] is cached and again.to_dict() == r.to_dict()  # same verdict from the cache
    ks = detect_drift(model, new, numeric_test="ks", tail_quantiles=())
    (a_ks,) = [f for f in ks.features if f["name"] == "a"]
    assert a_ks["test"] == "ks" and a_ks["p_value"] == a["p_ks"] and ks.score["tails"] == []
    with pytest.raises(ValueError, match="numeric_test must be one of"):
        detect_drift(model, new, numeric_test="t")


def test_multivariate_section_leaves_out_frequency_encodings_so_a_long_tail_of_ids_is_not_drift():
    # the fraud table's merchant ids have a long tail: a quarter of fresh rows carry ids never seen in training,
    # while every training row's id was counted in its own __logfreq -- a classifier tells them apart by that alone
    from data_fraud import make_fraud_frame

    from deepad.data.reference import counted_features
    from deepad.drift.core import _encoded_reference

    model = TabularDetector(IsolationForest(n_estimators=50), exclude=["is_fraud"], random_state=0)
    model.fit(make_fraud_frame(2500, seed=1))
    mask = counted_features(model.preprocessor)
    names = model.preprocessor.feature_names_out_
    assert [n for n, m in zip(names, mask) if m] == ["merchant_category__logfreq", "merchant_id__logfreq"]
    fresh = [make_fraud_frame(1200, seed=s, start_index=10_000 * s).drop(columns=["is_fraud"]) for s in (2, 3, 4)]
    with_counts = c2st_test(_encoded_reference(model), model.transform(fresh[0]))
    assert with_counts["statistic"] > 0.6 and with_counts["p_value"] < 1e-6  # what the section used to see
    aucs = []
    for new in fresh:
        r = detect_drift(model, new, multivariate="both")
        for test in ("mmd", "c2st"):
            assert r.multivariate[test]["features"] == model.n_features_out_ - 2
        aucs.append(r.multivariate["c2st"]["statistic"])
    assert max(aucs) < 0.58 and np.mean(aucs) < 0.54  # no-drift rows: a classifier cannot tell (0.5)
