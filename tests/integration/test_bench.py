"""The benchmark harness: protocol functions, process isolation, resuming, reports and the CLI.

The tiny detectors below are imported by the benchmark's child processes
(as ``test_bench:Spy`` etc.), so this module's top-level imports stay light.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time

import numpy as np
import pytest


# --------------------------------------------------------------------------- detectors run in child processes
def _sha(X) -> str:
    return hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes()).hexdigest()


class Spy:
    """Records what ``fit`` received (rows, labels, seed) as one JSON line in ``log``."""

    _uses_labels = True

    def __init__(self, log: str = "", random_state=None):
        self.log = log
        self.random_state = random_state

    def get_params(self, deep=False):
        return {"log": self.log, "random_state": self.random_state}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X, y=None):
        rec = {
            "n": len(X),
            "sha": _sha(X),
            "y": None if y is None else np.asarray(y).tolist(),
            "random_state": self.random_state,
            "omp": os.environ.get("OMP_NUM_THREADS"),
        }
        with open(self.log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        self.center_ = X.mean(axis=0)
        return self

    def decision_function(self, X):
        return np.abs(np.asarray(X) - self.center_).sum(axis=1)


class Crash(Spy):
    def fit(self, X, y=None):
        raise RuntimeError("boom in fit")


class HardExit(Spy):
    def fit(self, X, y=None):
        os._exit(7)  # dies without a Python exception, like a segfault would


class Sleeper(Spy):
    def fit(self, X, y=None):
        time.sleep(60)
        return self


class ProbaOnly:
    """A supervised peer: predict_proba and no decision_function."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = np.clip(np.asarray(X)[:, 0], 0, 1)
        return np.column_stack([1 - p, p])


# --------------------------------------------------------------------------- fixtures
def _data(n_normal=180, n_anom=20, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n_normal, d)), rng.normal(4, 1, size=(n_anom, d))])
    y = np.r_[np.zeros(n_normal, int), np.ones(n_anom, int)]
    return X, y


@pytest.fixture
def tiny_npz(tmp_path):
    X, y = _data()
    path = tmp_path / "data" / "tiny.npz"
    path.parent.mkdir()
    np.savez(path, X=X, y=y)
    return path


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- protocol (no child processes)
def test_split_depends_only_on_seed_and_name_and_is_stratified():
    from deepad.bench.protocol import make_split

    X, y = _data(n_normal=300, n_anom=30)
    a, b = make_split(X, y, "tiny", 0), make_split(X.copy(), y.copy(), "tiny", 0)
    for f in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    other_seed, other_name = make_split(X, y, "tiny", 1), make_split(X, y, "tiny2", 0)
    assert not np.array_equal(a.X_test, other_seed.X_test)
    assert not np.array_equal(a.X_test, other_name.X_test)
    assert len(a.y_test) == 99 and len(a.y_train) == 231  # 30 % of 330
    assert a.y_test.sum() == 9 and a.y_train.sum() == 21  # stratified: 10 % anomalies in both
    # min-max fitted on train: train spans [0, 1] exactly; test is not clipped
    assert a.X_train.min() == 0.0 and a.X_train.max() == 1.0
    assert a.X_test.min() < 0.0 or a.X_test.max() > 1.0


def test_subsampling_is_stratified_seeded_and_only_above_max_rows():
    from deepad.bench.protocol import BenchmarkError, make_split

    X, y = _data(n_normal=2700, n_anom=300, d=3)
    s = make_split(X, y, "big", 0, max_rows=1000)
    assert s.subsampled and s.n_rows == 3000
    assert len(s.y_train) + len(s.y_test) == 1000
    assert s.y_train.sum() + s.y_test.sum() == 100  # anomaly rate kept at 10 %
    np.testing.assert_array_equal(s.X_test, make_split(X, y, "big", 0, max_rows=1000).X_test)
    full = make_split(X, y, "big", 0, max_rows=None)
    assert not full.subsampled and len(full.y_train) + len(full.y_test) == 3000
    assert not make_split(X, y, "big", 0, max_rows=3000).subsampled
    with pytest.raises(BenchmarkError, match="at least 2"):
        make_split(X[:50], np.r_[np.zeros(49, int), 1], "one_anomaly", 0)


def test_weak_labels_budget_nesting_and_setting_inputs():
    from deepad.bench.protocol import LabelledSpec, fit_inputs, parse_labelled, weak_labels

    y = np.r_[np.zeros(80, int), np.ones(20, int)]
    specs = parse_labelled("0.01,0.25", "3")
    assert [str(s) for s in specs] == ["frac=0.01", "frac=0.25", "count=3"]
    small, large, three = (weak_labels(y, s, label_seed=5) for s in specs)
    assert (small == 1).sum() == 1  # round(0.2) = 0, but at least one
    assert (large == 1).sum() == 5 and (three == 1).sum() == 3
    assert set(np.unique(large)) == {-1, 1} and (y[large == 1] == 1).all()
    assert ((small == 1) <= (large == 1)).all()  # smaller budgets are subsets of larger ones
    assert LabelledSpec("count", 50).n_labelled(20) == 20
    X = np.arange(200.0).reshape(100, 2)
    Xf, yf = fit_inputs("oneclass", "detector", True, X, y, None)
    assert len(Xf) == 80 and yf is None
    Xf, yf = fit_inputs("unsupervised", "detector", True, X, y, None)
    assert len(Xf) == 100 and yf is None
    Xf, yf = fit_inputs("weak", "detector", False, X, y, large)
    assert yf is None  # detectors that cannot use labels run unsupervised
    Xf, yf = fit_inputs("weak", "peer", False, X, y, large)
    assert len(Xf) == 100 and yf.sum() == 5 and set(np.unique(yf)) == {0, 1}


def test_detector_specs_parse_json_params_and_classify_peers():
    from deepad.bench.protocol import BenchmarkError, estimator_kind, parse_detectors, parse_seeds

    specs = parse_detectors(
        'AutoEncoder:{"epochs": 5, "hidden_dims": [8, 4]},pyod.models.knn.KNN,KNN:{"n_neighbors":10,"method":"mean"}'
    )
    assert [s.name for s in specs] == ["AutoEncoder", "pyod.models.knn.KNN", "KNN"]
    assert specs[0].params == {"epochs": 5, "hidden_dims": [8, 4]}
    assert specs[2].params == {"method": "mean", "n_neighbors": 10}
    assert specs[1].label == "pyod.KNN"
    with pytest.raises(BenchmarkError, match="not valid JSON"):
        parse_detectors("KNN:{n_neighbors: 3}")
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds("3") == [0, 1, 2] and parse_seeds("4,7") == [4, 7]
    assert estimator_kind(ProbaOnly()) == "peer" and estimator_kind(Spy()) == "detector"


def test_csv_and_parquet_readers(tmp_path):
    import pandas as pd

    from deepad.bench.protocol import BenchmarkError, find_datasets, load_dataset

    X, y = _data(n_normal=30, n_anom=5, d=2)
    df = pd.DataFrame(X, columns=["a", "b"]).assign(is_anomaly=y)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    refs = find_datasets([tmp_path], label="is_anomaly")
    assert [r.name for r in refs] == ["p", "t"]
    for r in refs:
        Xr, yr = load_dataset(r)
        np.testing.assert_allclose(Xr, X)
        np.testing.assert_array_equal(yr, y)
    df.assign(city="x").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(BenchmarkError, match="non-numeric columns 'city'"):
        load_dataset(find_datasets([tmp_path / "bad.csv"], label="is_anomaly")[0])
    with pytest.raises(BenchmarkError, match="no label column 'label'"):
        load_dataset(find_datasets([tmp_path / "t.csv"])[0])


def test_average_ranks_and_nemenyi_cd():
    from deepad.bench.report import average_ranks, friedman_nemenyi

    auc = np.array([[0.9, 0.8, 0.7], [0.6, 0.9, 0.5], [0.8, 0.8, 0.6]])
    np.testing.assert_allclose(average_ranks(auc), [(1 + 2 + 1.5) / 3, (2 + 1 + 1.5) / 3, 3.0])
    chi2, p, cd = friedman_nemenyi(auc)
    assert 0 < p < 1 and chi2 > 0
    assert cd == pytest.approx(2.3437 * np.sqrt(3 * 4 / (6 * 3)), rel=1e-3)  # Demšar's q_0.05 for k=3


# --------------------------------------------------------------------------- end to end (child processes)
def test_settings_fit_the_right_rows_identically_for_every_detector(tiny_npz, tmp_path):
    import pandas as pd

    from deepad.bench import run_benchmark
    from deepad.bench.protocol import find_datasets, load_dataset, make_split, weak_labels, LabelledSpec

    # one detector in every setting, and a second one (same class, other params) in oneclass
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    df = run_benchmark(
        [tiny_npz.parent],
        [(Spy, {"log": str(logs[0])})],
        setting="unsupervised,weak",
        labelled_count="3",
        seeds=[1],
        out=tmp_path / "out",
        jobs=2,
        quiet=True,
        report=False,
        timeout=120,
    )
    df2 = run_benchmark(
        [tiny_npz.parent],
        [(Spy, {"log": str(p)}) for p in logs],
        setting="oneclass",
        seeds=[1],
        out=tmp_path / "out",
        jobs=2,
        quiet=True,
        report=False,
        timeout=120,
    )
    df = pd.concat([df, df2], ignore_index=True)
    assert len(df) == 4 and (df["status"] == "ok").all(), df["error"].tolist()
    X, y = load_dataset(find_datasets([tiny_npz])[0])
    sp = make_split(X, y, "tiny", 1)
    expected_weak = weak_labels(sp.y_train, LabelledSpec("count", 3), sp.label_seed).tolist()
    recs = [[json.loads(line) for line in p.read_text().splitlines()] for p in logs]
    assert [len(r) for r in recs] == [3, 1]
    by = {
        ("weak" if r["y"] is not None else "oneclass" if r["n"] < len(sp.y_train) else "unsupervised"): r
        for r in recs[0]
    }
    assert by["unsupervised"]["sha"] == _sha(sp.X_train) and by["unsupervised"]["n"] == len(sp.y_train)
    assert by["oneclass"]["sha"] == _sha(sp.X_train[sp.y_train == 0])  # normal train rows only
    assert by["oneclass"]["n"] == int((sp.y_train == 0).sum())
    assert by["weak"]["sha"] == _sha(sp.X_train) and by["weak"]["y"] == expected_weak
    assert all(r["random_state"] == 1 and r["omp"] == "1" for r in recs[0] + recs[1])
    # paired: the second detector saw exactly the same rows
    assert recs[1][0]["sha"] == by["oneclass"]["sha"]
    weak = df[df["setting"] == "weak"]
    assert (weak["n_labelled"] == 3).all() and weak["used_labels"].all()
    assert (df.loc[df["setting"] == "oneclass", "n_fit"] == int((sp.y_train == 0).sum())).all()
    assert (df["n_test"] == len(sp.y_test)).all()


def test_crashes_become_error_rows_and_rerun_resumes(tiny_npz, tmp_path):
    from deepad.bench import run_benchmark

    out = tmp_path / "out"
    dets = [Crash, HardExit, (Spy, {"log": str(tmp_path / "spy.jsonl")})]
    df = run_benchmark(tiny_npz, dets, setting="oneclass", seeds=1, out=out, jobs=2, quiet=True, timeout=120)
    st = dict(zip(df["detector"], df["status"]))
    err = dict(zip(df["detector"], df["error"]))
    assert st == {"test_bench:Crash": "error", "test_bench:HardExit": "error", "test_bench:Spy": "ok"}
    assert "RuntimeError: boom in fit" in err["test_bench:Crash"]
    assert "exit code 7" in err["test_bench:HardExit"]
    ok = df[df["status"] == "ok"].iloc[0]
    assert 0.5 < ok["roc_auc"] <= 1 and 0 < ok["auc_pr"] <= 1 and ok["peak_rss_mb"] > 0 and ok["fit_s"] >= 0
    rows = _rows(out / "results.csv")
    assert len(rows) == 3
    md = (out / "summary.md").read_text()
    assert "## Setting: oneclass" in md and "## Failed runs" in md and "boom in fit" in md
    assert (out / "plot_oneclass.png").stat().st_size > 1000

    # same request again: nothing runs, nothing is appended
    df2 = run_benchmark(tiny_npz, dets, setting="oneclass", seeds=1, out=out, quiet=True)
    assert len(_rows(out / "results.csv")) == 3 and len(df2) == 3
    assert len((tmp_path / "spy.jsonl").read_text().splitlines()) == 1

    # drop the finished row: only that run is repeated
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if r["status"] != "ok")
    run_benchmark(tiny_npz, dets, setting="oneclass", seeds=1, out=out, quiet=True, report=False)
    new = _rows(out / "results.csv")
    assert len(new) == 3 and new[-1]["detector"] == "test_bench:Spy" and new[-1]["status"] == "ok"
    assert float(new[-1]["roc_auc"]) == pytest.approx(ok["roc_auc"])  # reproducible
    assert len((tmp_path / "spy.jsonl").read_text().splitlines()) == 2


def test_timeout_is_recorded(tiny_npz, tmp_path):
    from deepad.bench import run_benchmark

    t0 = time.monotonic()
    df = run_benchmark(tiny_npz, [Sleeper], setting="unsupervised", seeds=1, out=None, timeout=1.5, quiet=True)
    assert time.monotonic() - t0 < 30
    assert df["status"].tolist() == ["timeout"] and "1.5 s" in df["error"].iloc[0]


def test_bad_requests_fail_before_running(tiny_npz, tmp_path):
    from deepad.bench import BenchmarkError, run_benchmark

    with pytest.raises(BenchmarkError, match="unknown deepad detector 'NoSuchThing'"):
        run_benchmark(tiny_npz, "NoSuchThing", out=tmp_path / "o")
    with pytest.raises(BenchmarkError, match="weak setting only"):
        run_benchmark(tiny_npz, [ProbaOnly], setting="oneclass", out=tmp_path / "o")
    with pytest.raises(BenchmarkError, match="has no parameter"):
        run_benchmark(tiny_npz, 'AutoEncoder:{"epochz": 3}', out=tmp_path / "o")


def test_cli_bench_with_autoencoder(tiny_npz, tmp_path):
    from typer.testing import CliRunner

    from deepad.cli import app

    out = tmp_path / "cli"
    det = 'AutoEncoder:{"epochs":3,"hidden_dims":[8],"latent_dim":2,"validation_fraction":0}'
    res = CliRunner().invoke(
        app,
        [
            "bench",
            str(tiny_npz),
            "--detectors",
            det,
            "--setting",
            "oneclass",
            "--seeds",
            "1",
            "--out",
            str(out),
            "--quiet",
            "--timeout",
            "300",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "1 runs: 1 ok" in res.output
    rows = _rows(out / "results.csv")
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["detector"] == "AutoEncoder"
    assert 0 <= float(rows[0]["roc_auc"]) <= 1
    assert "AutoEncoder" in (out / "summary.md").read_text()
    bad = CliRunner().invoke(app, ["bench", str(tmp_path / "missing.npz"), "--out", str(out)])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_catboost_peer_gets_the_run_seed_and_thread_count():
    """CatBoost's get_params lists only the parameters set, so injection also reads the signature."""
    pytest.importorskip("catboost")
    from deepad.bench import protocol as P

    cls = P.resolve_detector_class("catboost.CatBoostClassifier")
    est, injected = P.build_estimator(cls, {"verbose": 0}, seed=7, threads=1)
    assert injected == {"random_state": 7, "thread_count": 1}
    assert P.estimator_kind(est) == "peer"
    assert est.get_params()["random_state"] == 7


def test_one_seed_parser_zero_seeds_is_an_error_in_every_benchmark(monkeypatch, tmp_path, tiny_npz):
    """`--seeds 0` is refused by the table and the image benchmark alike (deepad.bench.protocol.parse_seeds)."""
    import deepad.data.images as images_data
    from deepad.bench.images import run_mnist_benchmark
    from deepad.bench.protocol import BenchmarkError, parse_seeds
    from typer.testing import CliRunner

    from deepad.cli import app

    assert parse_seeds("0,5,5") == [0, 5] and parse_seeds([2]) == [2]
    for bad in (0, "0", "", []):
        with pytest.raises(BenchmarkError, match="gives no seeds"):
            parse_seeds(bad)
    rng = np.random.default_rng(0)
    monkeypatch.setattr(images_data, "read_mnist", lambda data: (rng.random((20, 28, 28)), np.arange(20) % 10))
    for seeds in (0, "0"):
        with pytest.raises(BenchmarkError, match="gives no seeds"):
            run_mnist_benchmark("fake-mnist", "ConvAutoEncoder", seeds=seeds)
    table = CliRunner().invoke(app, ["bench", str(tiny_npz), "--seeds", "0", "-o", str(tmp_path / "o")])
    image = CliRunner().invoke(
        app, ["bench", "--images", "mnist", "--data", "fake-mnist", "--seeds", "0", "-o", str(tmp_path / "o")]
    )
    for r in (table, image):
        assert r.exit_code == 2 and "gives no seeds" in r.output and "Traceback" not in r.output, r.output
