"""Multivariate series (issue 21): MultiSeriesKNN's detection and per-column attribution on sensors with known
culprits, its stream, persistence and errors, and the synthetic generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepad
import deepad.detectors as D
from deepad.data.synthetic import make_sensor_series
from deepad.stream import StreamScorer
from deepad.thresholds import conformal_p_values_columns, conformal_p_values_sorted

TRAIN = 3000


@pytest.fixture(scope="module")
def sensors():
    frame, faults = make_sensor_series(seed=0, train=TRAIN)
    cols = [c for c in frame.columns if c != "timestamp"]
    return frame[cols], faults


@pytest.fixture(scope="module")
def model(sensors):
    values, _ = sensors
    return D.MultiSeriesKNN(contamination=1e-4).fit(values.iloc[:TRAIN])


def _replay(model, X, batch=256):
    sc = StreamScorer(model, threshold="fixed", refractory=16, rearm=16)
    ups = [sc.update(X[i : i + batch]) for i in range(0, X.shape[0], batch)]
    alerts = np.concatenate([u.alerts for u in ups])
    columns = [c for u in ups for c in u.columns]
    return np.concatenate([u.scores for u in ups]), alerts, columns


# --------------------------------------------------------------------------- the generator
def test_sensor_series_has_known_faults_that_keep_the_marginals(sensors):
    values, faults = sensors
    assert values.shape == (6000, 6) and len(faults) == 8
    assert (faults["start"] >= TRAIN).all() and (faults["end"] - faults["start"] == 40).all()
    assert list(faults["kind"]) == ["shift", "decouple"] * 4
    assert set(faults.loc[faults.kind == "shift", "columns"]) == {"sensor_3"}
    assert set(faults.loc[faults.kind == "decouple", "columns"]) == {"sensor_1,sensor_2"}
    train = values.iloc[:TRAIN]
    assert train.corr().to_numpy()[np.triu_indices(6, 1)].min() > 0.5  # correlated sensors
    dec = np.concatenate([np.arange(f.start, f.end) for f in faults.itertuples() if f.kind == "decouple"])
    # the decoupled sensor stays in its range (|z| under 3 of its training spread) while its partner parts from it
    z = (values["sensor_2"].iloc[dec] - train["sensor_2"].mean()) / train["sensor_2"].std()
    assert np.abs(z).max() < 3.0
    gap_train = (train["sensor_2"] - train["sensor_1"]).std()
    gap_fault = (values["sensor_2"].iloc[dec] - values["sensor_1"].iloc[dec]).std()
    assert gap_fault > 1.5 * gap_train
    with pytest.raises(ValueError, match="different sensors"):
        make_sensor_series(culprit=9)


# --------------------------------------------------------------------------- detection and attribution
def test_alerts_land_in_the_fault_windows_and_name_the_culprits(sensors, model):
    values, faults = sensors
    X = values.to_numpy()[TRAIN:]
    _, alerts, columns = _replay(model, X)
    rows = np.flatnonzero(alerts)
    spans = [(f.start - TRAIN, f.end - TRAIN + model.window - 1, f) for f in faults.itertuples()]
    hit = {f.Index for a, b, f in spans if any(a <= r < b for r in rows)}
    assert hit == set(range(len(faults)))  # every fault raised an alert
    inside = [(r, f) for r in rows for a, b, f in spans if a <= r < b]
    assert len(inside) >= 0.75 * len(rows)  # most alerts are in fault windows
    right = [set(list(columns[r])[: len(f.columns.split(","))]) == set(f.columns.split(",")) for r, f in inside]
    assert np.mean(right) >= 0.9
    shift = [ok for ok, (r, f) in zip(right, inside) if f.kind == "shift"]
    decouple = [ok for ok, (r, f) in zip(right, inside) if f.kind == "decouple"]
    assert shift and decouple and np.mean(shift) >= 0.9 and np.mean(decouple) >= 0.9
    assert all(columns[i] is None for i in np.flatnonzero(~alerts))  # attribution only on alerts


def test_the_correlation_break_is_invisible_to_each_sensor_alone(sensors):
    """Without the cross-column residual (cross=False), the decoupling faults (marginals unchanged) go unnoticed;
    with it they are found: the residual is what sees a broken correlation."""
    values, faults = sensors
    X = values.to_numpy()[TRAIN:]
    alone = D.MultiSeriesKNN(cross=False, contamination=1e-4).fit(values.iloc[:TRAIN])
    s = alone.decision_function(np.vstack([values.to_numpy()[TRAIN - 15 : TRAIN], X]))[15:]
    dec = [f for f in faults.itertuples() if f.kind == "decouple"]
    found = sum(bool((s[f.start - TRAIN : f.end - TRAIN] > alone.threshold_).any()) for f in dec)
    assert found <= 1, found


def test_stream_equals_whole_series_scores_and_columns(sensors, model):
    values, _ = sensors
    X = values.to_numpy()[TRAIN - 200 : TRAIN + 400]
    whole = model.decision_function(X)
    sc = StreamScorer(model, threshold="fixed")
    one = np.array([sc.update(r).scores[0] for r in X])
    assert np.isnan(one[: model.window - 1]).all()
    np.testing.assert_allclose(one[model.window - 1 :], whole[model.window - 1 :], rtol=1e-9, atol=1e-12)
    cs = model.column_scores(X)
    assert cs.shape == X.shape and (cs >= 0).all() and (cs <= 1).all()
    i = int(np.argmax(whole))
    att = model.column_attribution(X[i - model.window + 1 : i + 1], top=3)
    assert list(att) == [model.column_names()[j] for j in np.argsort(-cs[i])[:3]]
    np.testing.assert_allclose(list(att.values()), np.sort(cs[i])[::-1][:3], atol=1e-6)
    # the combined score is high exactly when some column's is: it is a calibrated function of the maximum
    order = np.argsort(cs[model.window - 1 :].max(axis=1))
    assert (np.diff(whole[model.window - 1 :][order]) >= -1e-12).all()


def test_records_carry_the_columns_on_alerts_only(sensors, model):
    values, faults = sensors
    f = faults.iloc[0]
    X = values.to_numpy()[f.start - 100 : f.start + 20]
    sc = StreamScorer(model, threshold="fixed", rearm=16)
    u = sc.update(X)
    recs = u.records(list(range(len(X))))
    alerts = [r for r in recs if r["alert"]]
    assert alerts and all("columns" in r for r in alerts) and all("columns" not in r for r in recs if not r["alert"])
    assert next(iter(alerts[0]["columns"])) == "sensor_3"


def test_save_load_keeps_scores_and_training_scores_are_leave_out(tmp_path, sensors, model):
    values, _ = sensors
    X = values.to_numpy()[TRAIN : TRAIN + 300]
    model.save(tmp_path / "m")
    back = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(back.decision_function(X), model.decision_function(X))
    np.testing.assert_array_equal(back.column_scores(X), model.column_scores(X))
    assert back.column_names() == [f"sensor_{j}" for j in range(6)]
    # leave-out: training windows do not find themselves, so about `contamination` of them would alarm, not none
    in_sample = model.decision_function(values.iloc[:TRAIN])
    assert model.decision_scores_.mean() > in_sample.mean()
    assert model.training_scores_kind() == "leave-out training scores"


def test_one_column_and_arrays_work():
    rng = np.random.default_rng(1)
    x = np.sin(np.arange(1500) / 9.0)[:, None] + 0.05 * rng.normal(size=(1500, 1))
    x[1300:1310] += 1.5
    det = D.MultiSeriesKNN(window=8, contamination=1e-3).fit(x[:1000])
    assert det.coef_ is None and det.column_names() == ["x0"]
    s = det.decision_function(x)
    assert s[1300:1318].max() > det.threshold_ and s[1000:1290].max() <= s[1300:1318].max()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"window": 1}, "window"),
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"memory": 1}, "memory"),
        ({"ridge": -1.0}, "ridge"),
        ({"contamination": 0.9}, "contamination"),
    ],
)
def test_bad_parameters_are_clear(params, message):
    X = np.random.default_rng(0).normal(size=(300, 3))
    with pytest.raises(ValueError, match=message):
        D.MultiSeriesKNN(**params).fit(X)


def test_bad_scoring_input_is_clear(model, sensors):
    values, _ = sensors
    X = values.to_numpy()[:40].copy()
    with pytest.raises(ValueError, match="6"):
        model.decision_function(X[:, :5])
    X[20, 2] = np.nan
    with pytest.raises(ValueError, match="NaN|finite|missing"):
        model.decision_function(X)
    with pytest.raises(ValueError, match="NaN"):
        StreamScorer(model, threshold="fixed").update(X[20])
    with pytest.raises(ValueError, match="window=16"):
        model.column_scores(values.to_numpy()[:5])


def test_per_column_conformal_p_values_match_the_one_column_rule():
    rng = np.random.default_rng(0)
    ref = np.sort(rng.normal(size=(50, 3)), axis=0)
    s = rng.normal(size=(7, 3))
    s[0] = ref[10]  # ties count as at least as large
    p = conformal_p_values_columns(ref, s)
    for j in range(3):
        np.testing.assert_array_equal(p[:, j], conformal_p_values_sorted(ref[:, j], s[:, j]))


def test_frame_with_names_streams_by_name(sensors, model):
    values, _ = sensors
    with pytest.raises(ValueError, match="sensor"):
        model.decision_function(pd.DataFrame(values.iloc[:40].to_numpy(), columns=[f"s{j}" for j in range(6)]))


def test_a_saved_stream_resumes_with_the_same_scores_and_columns(tmp_path, sensors, model):
    values, faults = sensors
    f = faults.iloc[2]
    X = values.to_numpy()[f.start - 60 : f.start + 30]
    whole = StreamScorer(model, threshold="fixed", rearm=16).update(X)
    first = StreamScorer(model, threshold="fixed", rearm=16)
    first.update(X[:50])
    first.save(tmp_path / "st")
    rest = StreamScorer.load(tmp_path / "st").update(X[50:])
    np.testing.assert_allclose(rest.scores, whole.scores[50:], rtol=1e-9)
    assert rest.columns == whole.columns[50:] and any(c is not None for c in rest.columns)
