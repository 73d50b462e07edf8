"""Large inputs (issue 19, item 6): metadata-only ``deepad info``, --max-train-rows, progress on long steps."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import deepad
from deepad.cli import app
from deepad.persistence.summary import read_summary

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
FIXTURES = sorted(p.name for p in MODELS.iterdir() if p.is_dir())
SRC = Path(deepad.__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- deepad info reads metadata only
@pytest.mark.parametrize("name", FIXTURES)
def test_info_states_what_the_loaded_model_holds(name):
    """Every model the old code saved: info's counts are those of the model deepad.load gives."""
    result = run("info", MODELS / name)
    assert result.exit_code == 0, result.output
    model = deepad.load(MODELS / name)
    n = len(model.decision_scores_)
    flagged = int(model.labels_.sum())
    assert f"flags {flagged:,} of {n:,} training rows ({flagged / n:.2%})" in result.output
    assert f"Threshold:  {model.threshold_:.6g} " in result.output
    summary = read_summary(MODELS / name)
    assert (summary.training_rows, summary.flagged) == (n, flagged)
    if hasattr(model, "schema_"):  # the column summary read from the JSON is the Schema's own
        assert "Columns:\n  " + model.schema_.summary().replace("\n", "\n  ") in result.output
    if getattr(model, "calibration_scores_", None) is not None:
        assert f"against {len(model.calibration_scores_):,} held-out rows" in result.output


def test_info_never_reads_the_weights(tmp_path):
    """The weights' bytes are overwritten (header kept): info still works, loading fails."""
    model = tmp_path / "m"
    shutil.copytree(MODELS / "TabularDetector", model)
    for file in model.rglob("tensors.safetensors"):
        data = bytearray(file.read_bytes())
        size = int.from_bytes(data[:8], "little")
        data[8 + size :] = b"\xff" * (len(data) - 8 - size)
        file.write_bytes(bytes(data))
    shutil.rmtree(model / "detector_" / "deep_")  # a member the wrapped detector needs
    result = run("info", model)
    assert result.exit_code == 0, result.output
    assert "LocalGlobalEnsemble on a table" in result.output
    with pytest.raises(deepad.persistence.ModelFormatError):
        deepad.load(model)


def test_info_imports_neither_torch_nor_scikit_learn():
    code = (
        "import sys; from typer.testing import CliRunner; from deepad.cli import app; "
        f"r = CliRunner().invoke(app, ['info', {str(MODELS / 'AutoEncoder')!r}]); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy.stats', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_info_on_a_damaged_model_is_a_one_line_error(tmp_path):
    model = tmp_path / "m"
    shutil.copytree(MODELS / "KNN", model)
    (model / "tensors.safetensors").write_bytes(b"\x00" * 4)
    result = run("info", model)
    assert result.exit_code == 2 and "tensors.safetensors is damaged" in result.output
    assert run("info", tmp_path / "nothing").exit_code == 2


def test_info_of_a_new_model_counts_from_the_stored_rule(tmp_path):
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(500, 3)), columns=list("abc"))
    X.to_csv(tmp_path / "t.csv", index=False)
    out = run("train", tmp_path / "t.csv", "-o", tmp_path / "m", "-d", "KNN", "-c", "0.05")
    assert out.exit_code == 0, out.output
    assert "threshold" in out.output and "flags 25 of 500 training rows (5.00%)" in out.output
    assert "the 95th percentile of the leave-one-out training scores" in out.output
    info = run("info", tmp_path / "m")
    assert "flags 25 of 500 training rows (5.00%)" in info.output
    assert re.search(r"Rule: .*95th percentile of the leave-one-out training scores.*it flags 25 of 500", info.output)


# --------------------------------------------------------------------------- --max-train-rows
@pytest.fixture(scope="module")
def big_table(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(3000, 4)), columns=list("abcd"))
    df["label"] = (rng.uniform(size=3000) < 0.05).astype(int)
    df.loc[df["label"] == 1, "a"] += 6
    df.to_csv(d / "t.csv", index=False)
    return d


def test_max_train_rows_trains_on_a_seeded_sample_and_says_so(big_table):
    d = big_table
    args = ("train", d / "t.csv", "-d", "KNN", "-l", "label", "--max-train-rows", "500", "--seed", "3")
    out = run(*args, "-o", d / "m")
    assert out.exit_code == 0, out.output
    assert "note: trained on a uniform random sample of 500 of 3,000 rows (seed 3; --max-train-rows)" in out.output
    assert "Trained KNN on 500 rows" in out.output and "flags 50 of 500 training rows (10.00%)" in out.output
    assert "Training ROC-AUC against 'label'" in out.output  # the labels of the sampled rows
    model = deepad.load(d / "m")
    assert model.train_sample_ == {"rows": 500, "of": 3000, "seed": 3} and len(model.decision_scores_) == 500
    info = run("info", d / "m")
    assert "Sampled:    a uniform random sample of 500 of 3,000 rows (seed 3)" in info.output
    again = run(*args, "-o", d / "m2")
    assert again.exit_code == 0
    np.testing.assert_array_equal(deepad.load(d / "m2").decision_scores_, model.decision_scores_)  # seeded
    full = run("train", d / "t.csv", "-d", "KNN", "-x", "label", "-o", d / "m3", "--max-train-rows", "5000")
    assert full.exit_code == 0 and "note: trained on a uniform" not in full.output
    assert deepad.load(d / "m3").train_sample_ is None


def test_default_caps_its_training_rows(big_table, monkeypatch):
    import deepad.cli.train as train_cli

    monkeypatch.setattr(train_cli, "DEFAULT_MAX_TRAIN_ROWS", 400)
    d = big_table
    out = run("train", d / "t.csv", "-x", "label", "-o", d / "dm", "--params", '{"deep_weight": 0}')
    assert out.exit_code == 0, out.output
    assert "sample of 400 of 3,000 rows (seed 0; DEFAULT's cap; --max-train-rows 0 trains on all)" in out.output
    out = run(
        "train", d / "t.csv", "-x", "label", "-o", d / "dm0", "--params", '{"deep_weight": 0}', "--max-train-rows", "0"
    )
    assert out.exit_code == 0 and "note: trained on a uniform" not in out.output
    assert len(deepad.load(d / "dm0").decision_scores_) == 3000
    named = run("train", d / "t.csv", "-x", "label", "-o", d / "dm1", "-d", "default", "-p", '{"deep_weight": 0}')
    assert named.exit_code == 0 and "sample of 400 of 3,000 rows" in named.output


def test_library_sample_and_its_errors():
    from deepad.detectors import KNN
    from deepad.pipeline import TabularDetector

    df = pd.DataFrame(np.random.default_rng(0).normal(size=(300, 3)), columns=list("abc"))
    model = TabularDetector(KNN(), max_train_rows=100, random_state=1).fit(df)
    assert model.train_sample_ == {"rows": 100, "of": 300, "seed": 1} and model.labels_.sum() == 10
    pd.testing.assert_frame_equal(
        df.iloc[model.sample_index].reset_index(drop=True),
        df.iloc[np.sort(np.random.default_rng(1).choice(300, 100, replace=False))].reset_index(drop=True),
    )
    with pytest.raises(ValueError, match="max_train_rows must be an integer >= 6"):
        TabularDetector(KNN(), max_train_rows=3).fit(df)
    with pytest.raises(TypeError, match="max_train_rows must be"):
        TabularDetector(KNN(), max_train_rows=1.5).fit(df)


# --------------------------------------------------------------------------- progress of long steps
@pytest.fixture
def no_progress_delay(monkeypatch):
    import deepad.data.progress

    monkeypatch.setattr(deepad.data.progress, "LOG_DELAY_S", 0.0)


def test_short_steps_leave_a_log_clean(capsys):
    from deepad.data.progress import show_progress
    from deepad.detectors import DEFAULT

    with show_progress():  # stderr is not a terminal here: bars appear only after 30 s
        DEFAULT(n_neighbors_global=20).fit(np.random.default_rng(0).normal(size=(300, 3)))
    assert capsys.readouterr().err == ""


def test_fit_progress_is_on_stderr_only_when_asked(capsys, no_progress_delay):
    from deepad.data.progress import show_progress
    from deepad.detectors import DEFAULT

    X = np.random.default_rng(0).normal(size=(300, 3))
    DEFAULT(n_neighbors_global=20).fit(X)
    assert capsys.readouterr().err == ""  # the library is silent by default
    with show_progress():
        DEFAULT(n_neighbors_global=20, deep_weight=0.25).fit(X)  # the deep view is off by default (issue 17)
    err = capsys.readouterr().err
    assert "DEFAULT on 300 rows: 20 nearest neighbours" in err and "deep view: random networks" in err
    assert "deep view: isolation trees" in err and "row" in err
    with show_progress():
        DEFAULT(n_neighbors_global=20, max_reference=100).fit(X)
    err = capsys.readouterr().err
    assert "DEFAULT on 300 rows: 20 nearest of 100 reference rows" in err and "deep view" not in err
    with show_progress(False):
        DEFAULT(n_neighbors_global=20).fit(X)
    assert capsys.readouterr().err == ""


def test_train_shows_progress_unless_quiet(big_table, no_progress_delay):
    d = big_table
    fast = ["--params", '{"deep_weight": 0, "n_neighbors_global": 20}']
    loud = CliRunner().invoke(app, ["train", str(d / "t.csv"), "-x", "label", "-o", str(d / "p1"), *fast])
    assert loud.exit_code == 0, loud.output
    assert "DEFAULT on 3,000 rows" in loud.stderr
    quiet = CliRunner().invoke(app, ["-q", "train", str(d / "t.csv"), "-x", "label", "-o", str(d / "p2"), *fast])
    assert quiet.exit_code == 0 and quiet.stderr == ""
