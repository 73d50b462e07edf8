"""deepad.tune: Optuna search (labelled validation and synthetic-injection objectives) and `deepad tune`."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("optuna")

import deepad  # noqa: E402
from deepad.tune import synthetic_anomalies, tune  # noqa: E402

TINY_AE = {
    "epochs": ["int", 2, 2],
    "hidden_dims": ["choice", [[8, 4], [16]]],
    "latent_dim": ["int", 2, 3],
    "lr": ["log", 1e-3, 1e-2],
}


def _correlated(n=200, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    return np.c_[z, z[:, 0] * 2 + 0.1 * rng.normal(size=n), z[:, 1] - z[:, 0] + 0.1 * rng.normal(size=n)]


def test_same_seed_same_trials_and_best_params():
    X = _correlated()
    a = tune("KNN", X, n_trials=4, random_state=3)
    b = tune("KNN", X, n_trials=4, random_state=3)
    assert a.best_params == b.best_params
    assert a.best_value == b.best_value
    assert a.trials["value"].tolist() == b.trials["value"].tolist()
    assert len(a.trials) == 4 and set(a.best_params) == {"n_neighbors", "method"}


def test_labelled_validation_picks_the_better_config():
    # Two normal clusters of 100 rows; anomalies sit half-way between them.  KNN with k=1 flags them; with
    # k=150 the k-th neighbour of every normal row is in the other cluster, so the anomalies score *lower*.
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(100, 2)) * 0.3, rng.normal(size=(100, 2)) * 0.3 + [10, 0]]
    X_val = np.r_[
        rng.normal(size=(30, 2)) * 0.3,
        rng.normal(size=(30, 2)) * 0.3 + [10, 0],
        rng.normal(size=(10, 2)) * 0.3 + [5, 0],
    ]
    y_val = np.r_[np.zeros(60), np.ones(10)]
    res = tune(
        "KNN",
        X,
        X_val=X_val,
        y_val=y_val,
        search_space={"n_neighbors": ["choice", [150, 1]]},
        n_trials=4,
        random_state=0,
    )
    tried = set(res.trials["params_n_neighbors"].astype(str))
    assert tried == {"150", "1"}  # both configs were evaluated
    assert res.best_params == {"n_neighbors": 1}
    assert res.best_value > 0.95
    assert res.trials["value"].min() < 0.5  # the other one is clearly worse
    assert res.model.get_params()["n_neighbors"] == 1
    ap = tune(
        "KNN",
        X,
        X_val=X_val,
        y_val=y_val,
        search_space={"n_neighbors": ["choice", [150, 1]]},
        n_trials=4,
        random_state=0,
        metric="average_precision",
    )
    assert ap.best_params == {"n_neighbors": 1} and ap.metric == "average_precision"


def test_synthetic_injection_objective_is_deterministic_and_informative():
    X = _correlated()
    a = tune("KNN", X, search_space={"n_neighbors": ["int", 2, 20]}, n_trials=3, random_state=1)
    b = tune("KNN", X, search_space={"n_neighbors": ["int", 2, 20]}, n_trials=3, random_state=1)
    assert a.trials["value"].tolist() == b.trials["value"].tolist()
    assert a.best_value > 0.7  # easy data: the synthetic anomalies are separable
    assert "synthetic" in a.objective
    # the anomalies themselves: deterministic, one per row, and actually different from their sources
    rows = X[:30]
    s1, s2 = synthetic_anomalies(X[30:], rows, seed=5), synthetic_anomalies(X[30:], rows, seed=5)
    np.testing.assert_array_equal(s1, s2)
    assert s1.shape == rows.shape and (np.abs(s1 - rows).sum(axis=1) > 0).mean() > 0.9


def test_synthetic_anomalies_on_mixed_frames_keep_column_types():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"amount": rng.gamma(2, 10, 60), "n": rng.integers(0, 9, 60), "cat": rng.choice(["a", "b", "c"], 60)}
    )
    out = synthetic_anomalies(df, df.iloc[:30], seed=0)
    assert list(out.columns) == list(df.columns) and len(out) == 30
    assert set(out["cat"]) <= {"a", "b", "c"}
    assert pd.api.types.is_integer_dtype(out["n"])


def test_tuned_autoencoder_saves_loads_and_scores(tmp_path):
    X = _correlated(150)
    res = tune("AutoEncoder", X, search_space=TINY_AE, n_trials=3, random_state=0)
    assert res.model.get_params()["epochs"] == 2
    assert res.model.get_params()["latent_dim"] == res.best_params["latent_dim"]
    assert isinstance(res.best_params["hidden_dims"], tuple)
    res.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.decision_function(X[:20]), res.model.decision_function(X[:20]), rtol=1e-5)


@pytest.mark.parametrize(
    "space, name",
    [
        ({"n_neighbors": ["int", 10, 2]}, "n_neighbors"),
        ({"n_neighbors": ["integer", 2, 10]}, "n_neighbors"),
        ({"n_neighbors": ["int", 2.5, 10]}, "n_neighbors"),
        ({"nope": ["int", 2, 10]}, "nope"),
        ({"method": ["choice", []]}, "method"),
        ({"method": "largest"}, "method"),
        ({"p": ["log", 0, 2]}, "p"),
    ],
)
def test_bad_search_space_names_the_parameter(space, name):
    with pytest.raises(ValueError, match=name):
        tune("KNN", _correlated(60), search_space=space, n_trials=1)


def test_bad_arguments():
    X = _correlated(60)
    with pytest.raises(ValueError, match="metric"):
        tune("KNN", X, metric="f1", n_trials=1)
    with pytest.raises(ValueError, match="unknown detector"):
        tune("NoSuchDetector", X, n_trials=1)
    with pytest.raises(ValueError, match="X_val"):
        tune("KNN", X, y_val=np.zeros(3), n_trials=1)
    with pytest.raises(ValueError, match="y_val"):
        tune("KNN", X, X_val=X[:5], y_val=np.zeros(5), n_trials=1)


def test_missing_optuna_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r"deepad\[tune\]"):
        tune("KNN", _correlated(60), n_trials=1)


def test_cli_tune(tmp_path):
    from typer.testing import CliRunner

    from deepad.cli import app

    rng = np.random.default_rng(0)
    X = _correlated(160)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["kind"] = rng.choice(["x", "y"], len(df))
    df["label"] = 0
    df.loc[:11, ["a", "b"]] = [[8.0, -8.0]] * 12
    df.loc[:11, "label"] = 1
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    runner = CliRunner()
    out = tmp_path / "model"
    res = runner.invoke(
        app,
        [
            "tune",
            str(path),
            "--detector",
            "knn",
            "--label-column",
            "label",
            "--trials",
            "3",
            "-o",
            str(out),
            "--space",
            '{"n_neighbors": ["int", 2, 10]}',
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Best parameters" in res.output and "n_neighbors" in res.output
    model = deepad.load(out)
    assert len(model.decision_scores_) == len(df) and "refitted on all 160 rows" in res.output  # validation rows too
    scores = model.decision_function(df.drop(columns=["label"]))
    assert scores[:12].min() > np.median(scores[12:])
    # unlabelled path (synthetic injection)
    res = runner.invoke(app, ["tune", str(path), "-d", "KNN", "-n", "2", "-o", str(tmp_path / "m2")])
    assert res.exit_code == 0, res.output
    assert "synthetic" in res.output
    # bad input: exit 2 with one line
    for args in (
        ["--label-column", "nope"],
        ["--space", "{bad json"],
        ["--space", '{"k": ["int", 1, 3]}'],
        ["--metric", "f1"],
    ):
        res = runner.invoke(app, ["tune", str(path), "-d", "KNN", "-n", "1", "-o", str(tmp_path / "m3"), *args])
        assert res.exit_code == 2, (args, res.output)
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in res.output, res.output
