"""One-hot columns scaled by rarity (issue 19): a rare category lies as far out as a tail value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from deepad.data import TabularPreprocessor


def _table(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cat = np.array(["common"] * (n - 10 - 100) + ["mid"] * 100 + ["rare"] * 10)
    rng.shuffle(cat)
    return pd.DataFrame({"x": rng.normal(size=n), "c": cat})


def test_rarity_puts_a_category_at_its_normal_tail_quantile():
    df = _table()
    prep = TabularPreprocessor()
    Z = prep.fit_transform(df)
    names = list(prep.feature_names_out_)
    for level, p in (("rare", 0.01), ("mid", 0.1), ("common", 0.89)):
        j = names.index(f"c={level}")
        has = (df["c"] == level).to_numpy()
        # a row with the category: isf(p / 2) units out; without it: centred on the frequency
        np.testing.assert_allclose(Z[has, j], norm.isf(p / 2))
        np.testing.assert_allclose(Z[:, j].mean(), 0.0, atol=1e-12)
    # never seen in training: __other__ has frequency half a row
    j = names.index("c=__other__")
    z = prep.transform(pd.DataFrame({"x": [0.0], "c": ["never seen"]}))[0, j]
    np.testing.assert_allclose(z, norm.isf(0.5 / len(df) / 2))
    assert np.isfinite(Z).all()


def test_onehot_keeps_plain_indicators_and_numeric_only_tables_are_unaffected():
    df = _table()
    Z = TabularPreprocessor(category_encoding="onehot").fit_transform(df)
    hot = Z[:, 1:]
    assert set(np.unique(hot)) == {0.0, 1.0}
    numeric = df[["x"]].assign(y=np.arange(len(df), dtype=float))
    a = TabularPreprocessor().fit_transform(numeric)
    b = TabularPreprocessor(category_encoding="onehot").fit_transform(numeric)
    assert np.array_equal(a, b)


def test_state_round_trips_and_old_state_means_onehot():
    df = _table()
    prep = TabularPreprocessor()
    Z = prep.fit_transform(df)
    state = prep.to_state()
    assert state["params"]["category_encoding"] == "rarity"
    assert np.array_equal(TabularPreprocessor.from_state(state).transform(df), Z)
    old = TabularPreprocessor(category_encoding="onehot")
    Z_old = old.fit_transform(df)
    state = old.to_state()
    del state["params"]["category_encoding"]  # saved before the option existed
    back = TabularPreprocessor.from_state(state)
    assert back.category_encoding == "onehot"
    assert np.array_equal(back.transform(df), Z_old)


def test_bad_category_encoding_is_named():
    with pytest.raises(ValueError, match="category_encoding must be one of"):
        TabularPreprocessor(category_encoding="ordinal").fit(_table())


def test_knn_sees_a_rare_category():
    """The detection effect: with plain 0/1 indicators a kNN distance barely moves for a rare category."""
    from deepad.detectors import KNN
    from deepad.pipeline import TabularDetector

    rng = np.random.default_rng(1)
    n = 2000
    train = pd.DataFrame(
        {f"x{i}": rng.normal(size=n) for i in range(10)} | {"c": rng.choice(["a", "b", "r"], n, p=[0.7, 0.298, 0.002])}
    )
    test = pd.DataFrame({f"x{i}": rng.normal(size=200) for i in range(10)} | {"c": ["a"] * 200})
    test.loc[:99, "c"] = "r"
    y = np.r_[np.ones(100), np.zeros(100)]
    from sklearn.metrics import roc_auc_score

    auc = {}
    for enc in ("rarity", "onehot"):
        model = TabularDetector(KNN(), category_encoding=enc).fit(train)
        auc[enc] = roc_auc_score(y, model.decision_function(test))
    assert auc["rarity"] > 0.99 and auc["onehot"] < 0.9  # measured 1.0 and 0.85


def test_cli_train_category_encoding(tmp_path):
    import deepad
    from typer.testing import CliRunner

    from deepad.cli import app
    from deepad.data.synthetic import write_fraud_csv

    data = write_fraud_csv(tmp_path / "tx.csv", 300)
    runner = CliRunner()
    for enc in ("onehot", "rarity"):
        args = ["--quiet", "train", str(data), "-o", str(tmp_path / enc), "-d", "KNN", "--label-column", "is_fraud"]
        result = runner.invoke(app, args + ["--category-encoding", enc])
        assert result.exit_code == 0, result.output
        assert deepad.load(tmp_path / enc).preprocessor.category_encoding == enc
    bad = runner.invoke(app, ["--quiet", "train", str(data), "-o", str(tmp_path / "bad"), "--category-encoding", "x"])
    assert bad.exit_code == 2 and "category_encoding must be one of ('rarity', 'onehot'), got 'x'" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "bad").exists()


def test_a_model_saved_before_the_option_says_onehot_and_refits_so(tmp_path):
    """Saved params lack category_encoding: the loaded model reports, and refits with, the 0/1 it was built with."""
    from pathlib import Path

    import deepad
    from deepad.pipeline import TabularDetector

    old = deepad.load(Path(__file__).resolve().parents[1] / "fixtures" / "models" / "cli_train_table")
    assert old.get_params()["category_encoding"] == "onehot"
    frame = pd.DataFrame(
        {"amount": np.linspace(1, 50, 60), "country": ["US"] * 55 + ["FR"] * 5, "n": np.arange(60) % 7}
    )
    new = TabularDetector(contamination=0.1).fit(frame)
    assert new.get_params()["category_encoding"] == "rarity"
    new.save(tmp_path / "m")
    assert deepad.load(tmp_path / "m").get_params()["category_encoding"] == "rarity"  # a saved value wins
