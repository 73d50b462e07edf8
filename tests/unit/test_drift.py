"""deepad.drift (issue 20): per-feature, multivariate and score drift of a fitted model against new rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepad
from deepad.data.schema import DataValidationError
from deepad.detectors import PCA, KNN
from deepad.drift import detect_drift, mmd_test
from deepad.drift._stats import adjust, family_p
from deepad.pipeline import TabularDetector

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def _table(n: int, seed: int) -> pd.DataFrame:
    """A mixed table: two correlated numbers, a number with holes, a category, a boolean, a timestamp."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, n)
    return pd.DataFrame(
        {
            "a": a,
            "b": 2.0 * a + rng.normal(0.0, 0.3, n),
            "c": np.where(rng.random(n) < 0.05, np.nan, rng.gamma(2.0, 3.0, n)),
            "shop": rng.choice(np.array(["x", "y", "z", "w"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1]),
            "flag": rng.random(n) < 0.3,
            "when": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86400 * 60, n), unit="s"),
        }
    )


@pytest.fixture(scope="module")
def model():
    # calibrated on held-out clean rows: the score section's reference is valid and counts in the verdict
    return TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(3000, 0)).calibrate(_table(1000, 99))


def _test(report, name):
    (hit,) = [f for f in report.features if f["name"] == name]
    return hit


def test_reference_sample_is_bounded_seeded_and_saved(model, tmp_path):
    ref, info = model.drift_reference_, model.drift_reference_info_
    assert ref.shape == (2000, 6) and info["rows"] == 2000 and info["of"] == 3000
    assert info["missing"][
        model.preprocessor.columns_.index(next(c for c in model.preprocessor.columns_ if c["name"] == "c"))
    ] == int(_table(3000, 0)["c"].isna().sum())
    model.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.drift_reference_, ref)
    assert loaded.drift_reference_info_ == info
    again = TabularDetector(PCA(), contamination=0.05, random_state=0).fit(_table(3000, 0))
    np.testing.assert_array_equal(again.drift_reference_, ref)  # the same seed, the same sample


def test_no_drift_on_fresh_rows_from_the_same_source(model):
    reports = [detect_drift(model, _table(800, seed)) for seed in range(1, 9)]
    assert sum(r.drift for r in reports) <= 1  # 5 % nominal; 8 trials
    r = reports[0]
    doc = r.to_dict()
    assert set(doc) >= {"drift", "p_value", "features", "score", "multivariate", "sections", "moved"}
    json.dumps(doc)  # JSON-able as it is
    assert {f["kind"] for f in r.features} == {"numeric", "categorical", "boolean", "datetime", "missing"}
    assert set(r.sections) == {"features", "multivariate", "score"}
    assert r.p_value == pytest.approx(min(1.0, 3 * min(r.sections.values())))


def test_mean_shift_of_one_column_is_found_with_its_size(model):
    new = _table(800, 1)
    new["c"] = new["c"] + 0.5 * np.nanstd(new["c"])
    r = detect_drift(model, new)
    assert r.drift and r.moved[0] == "c"
    hit = _test(r, "c")
    assert hit["test"] == "ks+lepage" and hit["mean_shift_std"] == pytest.approx(0.5, abs=0.12)  # the default
    assert hit["p_value"] == pytest.approx(min(1.0, 2 * min(hit["p_ks"], hit["p_lepage"])))
    assert hit["wasserstein_std"] > 0.3 and hit["psi"] > 0.05
    assert not _test(r, "a")["drift"]


def test_category_frequency_change_and_unseen_category(model):
    new = _table(800, 1)
    new.loc[new.index[:200], "shop"] = "w"  # w: 10 % -> ~33 %
    r = detect_drift(model, new)
    hit = _test(r, "shop")
    assert hit["drift"] and hit["test"] == "chi2"
    assert hit["top_changes"][0]["category"] == "w" and hit["top_changes"][0]["new_share"] > 0.3
    new = _table(800, 1)
    new.loc[new.index[:40], "shop"] = "brand-new"
    hit = _test(detect_drift(model, new), "shop")
    assert hit["drift"] and hit["unseen_share"] == pytest.approx(0.05)


def test_rising_missing_rate_is_its_own_test(model):
    new = _table(800, 1)
    new.loc[new.index[:120], "a"] = np.nan  # a never had holes in training
    r = detect_drift(model, new)
    hit = _test(r, "a (missing rate)")
    assert hit["drift"] and hit["reference_rate"] == 0.0 and hit["new_rate"] == pytest.approx(0.15)
    assert "a (missing rate)" in r.moved


def test_broken_correlation_is_seen_by_the_joint_tests_only(model):
    new = _table(800, 1)
    new["b"] = np.random.default_rng(5).permutation(new["b"].to_numpy())  # same marginals, no correlation
    r = detect_drift(model, new)
    assert not _test(r, "a")["drift"] and not _test(r, "b")["drift"]
    # the joint tests see it: MMD on the encoded features, and the PCA detector's scores (its residuals explode)
    assert r.multivariate["p_value"] < 0.05 and r.score["flag_rate"]["new_rate"] > 0.5 and r.drift
    assert r.moved == []


def test_score_drift_finds_a_doubled_flag_rate(model):
    new = _table(800, 1)
    rng = np.random.default_rng(3)
    extreme = rng.random(len(new)) < 0.06  # about 6 % more rows far out: the flag rate roughly doubles
    new.loc[extreme, "b"] = new.loc[extreme, "b"] + 6.0
    r = detect_drift(model, new)
    rate = r.score["flag_rate"]
    assert rate["new_rate"] > 1.8 * rate["reference_rate"] and rate["p_value"] < 1e-4
    assert r.score["drift"] and r.drift


def test_bh_correction_and_the_adjustments():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(adjust(p, "holm"), [0.04, 0.09, 0.09, 0.5])
    np.testing.assert_allclose(adjust(p, "bh"), [0.04, 0.0533333, 0.0533333, 0.5], rtol=1e-5)
    assert family_p(p, "holm") == pytest.approx(0.04) and family_p(np.array([]), "bh") == 1.0
    with pytest.raises(ValueError, match="correction"):
        adjust(p, "fdr")


def test_bad_input_gives_the_errors_scoring_gives(model):
    new = _table(50, 1)
    with pytest.raises(DataValidationError, match="missing column.*'shop'"):
        detect_drift(model, new.drop(columns=["shop"]))
    new["a"] = new["a"].astype(object)
    new.loc[3, "a"] = "abc"
    with pytest.raises(DataValidationError, match="column 'a'.*row 3"):
        detect_drift(model, new)
    with pytest.raises(ValueError, match="alpha"):
        detect_drift(model, _table(50, 1), alpha=2)
    with pytest.raises(ValueError, match="correction"):
        detect_drift(model, _table(50, 1), correction="bonferroni")


def test_model_saved_before_the_reference_reports_what_it_can():
    old = deepad.load(FIXTURES / "TabularDetector")
    assert getattr(old, "drift_reference_", None) is None
    X = pd.read_csv(FIXTURES / "TabularDetector.input.csv")
    r = detect_drift(old, X)
    assert "saved before" in r.unavailable["features"] and "multivariate" in r.unavailable
    assert {f["kind"] for f in r.features} <= {"categorical", "missing"} and r.features  # counts the state keeps
    assert r.score is not None and "score" not in r.sections  # its leave-one-out training scores: not held out
    assert "score" in detect_drift(old, X, score_in_verdict=True).sections  # still measured, voted when asked


def test_array_detector_gets_the_score_section_only():
    rng = np.random.default_rng(0)
    det = KNN(n_neighbors=5, contamination=0.05).fit(rng.normal(size=(600, 3)))
    shifted = rng.normal(size=(400, 3)) + np.array([0.0, 0.0, 1.5])
    with pytest.warns(UserWarning, match="no section is in the verdict"):  # leave-one-out scores: not held out
        loo = detect_drift(det, shifted)
    assert loo.score["held_out"] is False and not loo.drift and "leave-one-out" in loo.unavailable["score"]
    det.calibrate(rng.normal(size=(600, 3)))
    r = detect_drift(det, shifted)
    assert set(r.sections) == {"score"} and "features" in r.unavailable
    assert r.drift and r.score["flag_rate"]["new_rate"] > 0.2
    assert "only 600 reference scores" in r.score["note"]  # a small reference says how loosely it knows the rate


def test_in_sample_reference_keeps_the_score_section_out_of_the_verdict():
    from deepad.detectors import IsolationForest

    # few rows: every tree holds every training row, so those rows score low and new normal rows look "drifted"
    small = _table(60, 0)[["a", "b"]]
    model = TabularDetector(IsolationForest(n_estimators=50, random_state=0), contamination=0.05, random_state=0)
    model.fit(small)
    new = _table(400, 3)[["a", "b"]]
    r = detect_drift(model, new)
    assert r.score["held_out"] is False and r.score["in_verdict"] is False and r.score["drift"] is None
    assert "score" not in r.sections and set(r.sections) == {"features", "multivariate"}
    assert "not held out" in r.unavailable["score"] and "score_in_verdict=True" in r.unavailable["score"]
    assert r.p_value == pytest.approx(min(1.0, 2 * min(r.sections.values())))
    assert "not in the verdict" in r.summary()
    assert r.score["distribution"]["median_shift_std"] > 0.1  # the bias the rule guards against, measured
    asked = detect_drift(model, new, score_in_verdict=True)
    assert "score" in asked.sections and asked.score["in_verdict"] is True and asked.score["drift"] is not None
    assert asked.sections["score"] == r.score["p_value"]
    # calibrated on held-out clean rows, the section is back in the verdict by default
    model.calibrate(_table(200, 4)[["a", "b"]])
    back = detect_drift(model, new)
    assert back.score["held_out"] is True and "score" in back.sections and "score" not in back.unavailable
    off = detect_drift(model, new, score_in_verdict=False)
    assert "score" not in off.sections and "score_in_verdict=False" in off.unavailable["score"]


def test_bare_in_sample_detector_warns_that_nothing_is_in_the_verdict():
    from deepad.detectors import IsolationForest

    rng = np.random.default_rng(0)
    det = IsolationForest(n_estimators=30, random_state=0, contamination=0.05).fit(rng.normal(size=(300, 3)))
    with pytest.warns(UserWarning, match="no section is in the verdict"):
        r = detect_drift(det, rng.normal(size=(200, 3)) + 3.0)
    assert r.drift is False and r.p_value == 1.0 and r.sections == {} and "no section" in r.rule
    assert r.score["p_value"] < 1e-6  # still measured and reported
    assert detect_drift(det, rng.normal(size=(200, 3)) + 3.0, score_in_verdict=True).drift


def test_mmd_permutation_p_value():
    rng = np.random.default_rng(0)
    same = [
        mmd_test(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)), random_state=i)["p_value"] for i in range(20)
    ]
    assert np.mean(np.array(same) <= 0.05) <= 0.15 and min(same) >= 1 / 501
    shifted = mmd_test(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 0.4)
    assert shifted["p_value"] < 0.01 and shifted["statistic"] > 0 and shifted["bandwidth"] > 0


# --------------------------------------------------------------------------- recalibrate
def _shifted(n: int, seed: int) -> pd.DataFrame:
    """Normal has moved: every number larger and more spread out, the shop mix changed; still clean."""
    new = _table(n, seed)
    new["a"] = 0.6 + 1.3 * new["a"]
    new["b"] = 2.0 * new["a"] + np.random.default_rng(seed + 100).normal(0.0, 0.6, n)
    new["c"] = new["c"] * 1.4
    return new


def test_recalibrate_brings_the_false_alarm_rate_back_within_the_conformal_bound(model, tmp_path):
    from deepad.drift import history, recalibrate
    from sklearn.base import clone

    m = clone(model).fit(_table(3000, 0))
    later = _shifted(6000, 21)  # "more shifted clean data": rows after the recalibration window
    before = float(m.predict(later).mean())
    assert before > 0.12  # the 5 % model now flags far too much
    clean = _shifted(1500, 20)
    recalibrate(m, clean, note="new sensor", path=tmp_path / "m")
    n, a = len(clean), 0.05
    after = float(m.predict(later).mean())
    # conformal: the rate a calibration set of n rows gives is about Beta around a, sd sqrt(a(1-a)/n); plus binomial
    bound = a + 3 * np.sqrt(a * (1 - a) / n) + 3 * np.sqrt(a * (1 - a) / len(later))
    assert after <= bound and after > a / 2
    assert detect_drift(m, _shifted(800, 22)).score["drift"] is False  # the score section compares with the new rows
    loaded = deepad.load(tmp_path / "m")
    steps = history(loaded)
    assert [e["action"] for e in steps] == ["fit", "recalibrate"] and steps[-1]["version"] == 2
    assert steps[-1]["rows"] == 1500 and steps[-1]["fpr"] == a and steps[-1]["note"] == "new sensor"
    assert steps[-1]["threshold"] == loaded.threshold_ and steps[-1]["threshold_before"] < loaded.threshold_
    np.testing.assert_array_equal(loaded.predict(later), m.predict(later))


def test_recalibrate_refuses_too_few_rows_and_bad_rates(model):
    from deepad.drift import recalibrate
    from sklearn.base import clone

    m = clone(model).fit(_table(600, 0))
    with pytest.raises(ValueError, match="needs at least 99 clean rows"):
        recalibrate(m, _table(50, 1), fpr=0.01)
    with pytest.raises(ValueError, match="fpr must be in"):
        recalibrate(m, _table(200, 1), fpr=1.5)
    with pytest.raises(DataValidationError, match="missing column"):
        recalibrate(m, _table(200, 1).drop(columns=["a"]))


# --------------------------------------------------------------------------- online score drift in streams
def test_stream_drift_events_saved_and_resumed(tmp_path):
    from deepad.stream import PValueCUSUM, StreamScorer

    rng = np.random.default_rng(0)
    det = KNN(n_neighbors=5, contamination=0.05).fit(rng.normal(size=(800, 3)))
    det.calibrate(rng.normal(size=(1000, 3)))  # held-out reference: the p-values of new normal points are uniform
    calm, moved = rng.normal(size=(3000, 3)), rng.normal(size=(400, 3)) + np.array([1.0, 0.0, 0.0])

    def events(updates):
        return [e for u in updates for e in u.drift_events]

    sc = StreamScorer(det, threshold="fixed", drift=True)
    quiet = events([sc.update(calm[i : i + 500]) for i in range(0, 3000, 500)])
    assert len(quiet) <= 1  # median run between false events ~8,000 points
    loud = sc.update(moved[:200]).drift_events
    assert loud and loud[0]["direction"] == "up" and loud[0]["index"] < 100
    assert loud[0]["points"] == 3000 + loud[0]["index"] + 1
    # sinking scores (points at the centre of the training data) are the other side
    low = StreamScorer(det, threshold="fixed", drift=True).update(np.zeros((200, 3)) + 0.01 * calm[:200])
    assert low.drift_events and low.drift_events[0]["direction"] == "down"
    # saved mid-stream and resumed: the same events as the uninterrupted stream
    whole = StreamScorer(det, threshold="fixed", drift=True)
    whole.update(calm[:1500])
    expected = whole.update(moved).drift_events
    first = StreamScorer(det, threshold="fixed", drift=True)
    first.update(calm[:1500])
    first.save(tmp_path / "s")
    resumed = StreamScorer.load(tmp_path / "s")
    assert isinstance(resumed.drift, PValueCUSUM) and resumed.drift.n == 1500
    assert resumed.update(moved).drift_events == expected
    # a stream saved without drift (or before it existed) resumes without it
    plain = StreamScorer(det, threshold="fixed")
    plain.update(calm[:10])
    plain.save(tmp_path / "p")
    state = json.loads((tmp_path / "p" / "stream.json").read_text())
    del state["drift"]
    (tmp_path / "p" / "stream.json").write_text(json.dumps(state))
    again = StreamScorer.load(tmp_path / "p")
    assert again.drift is None and again.update(calm[:5]).drift_events is None


def test_one_drift_event_per_episode():
    from deepad.stream import PValueCUSUM

    d = PValueCUSUM()
    tiny = [1e-3] * 200  # x = 6.9 per point: a long drift upwards
    events = [d.step(p) for p in tiny]
    assert events.count("up") == 1 and events.index("up") == 2 and d.up == 24.0  # capped at twice the threshold
    events = [d.step(0.6) for _ in range(300)]  # back to normal-looking p-values: the episode ends...
    assert "up" not in events and not d.up_on
    assert [d.step(p) for p in tiny].count("up") == 1  # ...and the next drift is a new event
