"""Issue 19, item 7 on the command line: tune --exclude/--type, score --keep, detectors in --help."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import deepad
from deepad.cli import app


def _one_error(res) -> str:
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "Traceback" not in res.output, res.output
    return errors[0]


def _table(n=160, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    df = pd.DataFrame({"a": z[:, 0], "b": z[:, 1], "c": z[:, 0] * 2 + 0.1 * rng.normal(size=n)})
    df["code"] = rng.choice([1, 2, 3], n)
    df["noise"] = rng.normal(size=n) * 100
    df["label"] = 0
    df.loc[:11, ["a", "b"]] = [[8.0, -8.0]] * 12
    df.loc[:11, "label"] = 1
    return df


# --------------------------------------------------------------------------- tune --exclude / --type
def test_tune_exclude_and_type_as_train_takes_them(tmp_path):
    pytest.importorskip("optuna")
    path = tmp_path / "data.csv"
    _table().to_csv(path, index=False)
    runner = CliRunner()
    flags = ["--exclude", "noise", "--type", "code=categorical", "-l", "label"]
    res = runner.invoke(app, ["tune", str(path), "-d", "KNN", "-n", "2", "-o", str(tmp_path / "tuned"), *flags])
    assert res.exit_code == 0, res.output
    assert "Columns:" in res.output
    tuned = deepad.load(tmp_path / "tuned").schema_
    assert tuned.kinds["noise"] == "excluded" and tuned.kinds["code"] == "categorical"
    assert tuned.kinds["label"] == "excluded"
    res = runner.invoke(app, ["train", str(path), "-d", "KNN", "-o", str(tmp_path / "trained"), *flags])
    assert res.exit_code == 0, res.output
    assert deepad.load(tmp_path / "trained").schema_.kinds == tuned.kinds  # the same columns, the same kinds
    # comma-separated and repeated spellings, unlabelled path
    res = runner.invoke(
        app, ["tune", str(path), "-d", "KNN", "-n", "1", "-o", str(tmp_path / "t2"), "-x", "noise,code", "-x", "c"]
    )
    assert res.exit_code == 0, res.output
    kinds = deepad.load(tmp_path / "t2").schema_.kinds
    assert {c for c, k in kinds.items() if k == "excluded"} == {"c", "code", "noise"}


@pytest.mark.parametrize(
    "args, named",
    [
        (["--exclude", "nosuch"], "nosuch"),
        (["--type", "nosuch=numeric"], "nosuch"),
        (["--type", "code=colour"], "colour"),
        (["--type", "code"], "COLUMN=KIND"),
    ],
)
def test_tune_bad_exclude_or_type_is_one_line_error(tmp_path, args, named):
    pytest.importorskip("optuna")
    path = tmp_path / "data.csv"
    _table(60).to_csv(path, index=False)
    res = CliRunner().invoke(app, ["tune", str(path), "-d", "KNN", "-n", "1", "-o", str(tmp_path / "m"), *args])
    assert named in _one_error(res)
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- detectors in --help
def _help_text(args) -> str:
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())  # undo the help formatter's wrapping and padding


def test_train_help_lists_every_detector_with_its_main_parameters():
    import deepad.detectors as detectors
    from deepad.detectors.catalog import detector_catalog

    text = _help_text(["train", "--help"])
    catalog = detector_catalog()
    assert {d.name for d in catalog} == set(detectors.__all__) - {"DEFAULT"}
    for info in catalog:
        main = info.main_parameters()
        assert main or info.name == "PyODDetector"
        params = ", ".join(f"{k}={v!r}" for k, v in main.items())
        assert f"{info.name}" in text and params in text, (info.name, params)
    # the defaults are read from the classes, not typed into the help
    assert f"n_neighbors={detectors.KNN().n_neighbors}" in text
    assert "RollingZScore [time series]" in text and "DeepSAD [learns from labels]" in text
    assert "ConvAutoEncoder [images]" in text


def test_main_parameters_follow_init_order_and_leave_out_plumbing():
    from deepad.detectors import KNN
    from deepad.detectors.catalog import PLUMBING_PARAMETERS, describe_detector

    info = describe_detector("knn")
    assert info.name == "KNN" and info.input == "table" and not info.uses_labels
    assert list(info.main_parameters()) == ["n_neighbors", "method", "metric", "p"]
    assert set(info.parameters) == set(KNN().get_params())
    assert not PLUMBING_PARAMETERS & set(describe_detector("AutoEncoder").main_parameters(20))
    assert describe_detector("ConformalKNN").input == "time series"
    assert describe_detector("GANomaly").input == "images"
    assert describe_detector("DevNet").uses_labels


def test_click_help_keeps_one_detector_per_line():
    from deepad.cli.detectors import _epilog_text

    assert _epilog_text(["a [x]", "b"], "rich") == "a \\[x]\nb"
    assert _epilog_text(["a", "b"], None) == "\b\na\nb"


def test_detectors_command_lists_and_describes():
    text = _help_text(["detectors"])
    assert "LocalGlobalEnsemble (default)" in text and "Time series:" in text and "Images:" in text
    res = CliRunner().invoke(app, ["detectors", "autoencoder"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("AutoEncoder: Fully connected autoencoder")
    from deepad.detectors import AutoEncoder

    lines = [line.strip().split(None, 1) for line in res.output.splitlines()]
    for name, value in AutoEncoder().get_params().items():
        assert [name, repr(value) if isinstance(value, str) else str(value)] in lines, name
    res = CliRunner().invoke(app, ["detectors", "nosuch"])
    assert "unknown detector 'nosuch'" in _one_error(res) and "KNN" in res.output


# --------------------------------------------------------------------------- score --keep
@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    from data_fraud import make_fraud_frame

    d = tmp_path_factory.mktemp("keep")
    df = make_fraud_frame(600, seed=4)
    df["order_ref"] = [f"R{i:05d}" for i in range(len(df))]  # a join key the model never sees
    df.to_csv(d / "data.csv", index=False)
    res = CliRunner().invoke(
        app, ["-q", "train", str(d / "data.csv"), "-d", "KNN", "-l", "is_fraud", "-x", "order_ref", "-o", str(d / "m")]
    )
    assert res.exit_code == 0, res.output
    return d, df


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("out_ext", ["csv", "parquet"])
def test_score_keep_carries_columns_in_order_through_chunks(fraud, tmp_path, fmt, out_ext):
    d, df = fraud
    src = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        df.to_csv(src, index=False)
    elif fmt == "parquet":
        df.to_parquet(src, index=False)
    else:
        df.to_json(src, orient="records", lines=True, date_format="iso")
    out = tmp_path / f"scores.{out_ext}"
    args = ["-q", "score", str(d / "m"), str(src), "-o", str(out), "--batch-rows", "97"]
    res = CliRunner().invoke(app, [*args, "--keep", "order_ref,is_fraud", "-k", "country"])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out) if out_ext == "csv" else pd.read_parquet(out)
    assert list(got.columns) == ["transaction_id", "order_ref", "is_fraud", "country", "score", "p_value", "is_anomaly"]
    assert got["order_ref"].tolist() == df["order_ref"].tolist()
    assert got["is_fraud"].tolist() == df["is_fraud"].tolist() and got["country"].tolist() == df["country"].tolist()
    # the scores do not change when columns are kept, and the keys join back onto the table
    plain = tmp_path / f"plain.{out_ext}"
    # same chunks as above: on some CPUs BLAS rounds a chunk's last row differently (1e-16), which is not --keep's doing
    assert CliRunner().invoke(app, [*args[:4], "-o", str(plain), "--batch-rows", "97"]).exit_code == 0
    ref = pd.read_csv(plain) if out_ext == "csv" else pd.read_parquet(plain)
    np.testing.assert_array_equal(got["score"].to_numpy(), ref["score"].to_numpy())
    joined = df.merge(got[["order_ref", "is_fraud", "score"]], on=["order_ref", "is_fraud"], validate="one_to_one")
    assert len(joined) == len(df)


def test_score_keep_unknown_or_clashing_column_is_one_line_error_and_no_output(fraud, tmp_path):
    d, df = fraud
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(app, ["score", str(d / "m"), str(d / "data.csv"), "-o", str(out), "--keep", "nosuch"])
    message = _one_error(res)
    assert "'nosuch'" in message and "data.csv" in message and "'order_ref'" in message and "'amount'" in message
    assert not out.exists()
    clash = tmp_path / "clash.csv"
    df.assign(score=1.0).to_csv(clash, index=False)
    res = CliRunner().invoke(app, ["score", str(d / "m"), str(clash), "-o", str(out), "--keep", "score"])
    assert "'score'" in _one_error(res) and not out.exists()


def test_score_file_keep_in_the_library_and_for_plain_detectors(tmp_path):
    from deepad.detectors import KNN
    from deepad.scoring import score_file

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    model = KNN().fit(X)
    data = X.assign(key=np.arange(300) * 7, note=["x", "y", "z"] * 100)
    src = tmp_path / "d.parquet"
    data.to_parquet(src)
    summary = score_file(model, src, tmp_path / "o.parquet", batch_size=64, keep=["key", "note", "a"])
    got = pd.read_parquet(tmp_path / "o.parquet")
    assert list(got.columns) == ["row", "key", "note", "a", "score", "p_value", "is_anomaly"]
    assert got["key"].tolist() == data["key"].tolist() and got["a"].tolist() == data["a"].tolist()
    np.testing.assert_allclose(got["score"], model.decision_function(X))
    assert not any("ignored" in n for n in summary.notes)  # the kept columns are not reported as ignored
    from deepad.data import DataValidationError

    with pytest.raises(DataValidationError, match=r"\['nope'\] to keep are not in .*d.parquet.*'key'"):
        score_file(model, src, tmp_path / "o2.parquet", keep=["nope"])
    assert not (tmp_path / "o2.parquet").exists()


def test_score_keep_with_dask(fraud, tmp_path):
    distributed = pytest.importorskip("distributed")
    from deepad.distributed import score_parquet

    d, df = fraud
    src = tmp_path / "data.parquet"
    df.to_parquet(src, index=False)
    with (
        distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cl,
        distributed.Client(cl) as client,
    ):
        score_parquet(d / "m", src, tmp_path / "out", client=client, keep=["order_ref"], partition_rows=250)
    got = pd.read_parquet(sorted((tmp_path / "out").glob("part-*.parquet")))
    assert list(got.columns)[:2] == ["transaction_id", "order_ref"]
    assert got["order_ref"].tolist() == df["order_ref"].tolist()


# --------------------------------------------------------------------------- deepad report on the training data
def test_report_on_the_training_file_says_in_sample(fraud, tmp_path):
    from data_fraud import make_fraud_frame

    d, df = fraud
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["-q", "report", str(d / "m"), str(d / "data.csv"), "-l", "is_fraud", "-o", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "In-sample: these metrics are on the training data the model was fitted on" in html
    assert "The marked point is the model&#39;s threshold" in html
    new = make_fraud_frame(400, seed=9, start_index=50_000).assign(order_ref="x")
    new.to_csv(tmp_path / "new.csv", index=False)
    res = CliRunner().invoke(
        app, ["-q", "report", str(d / "m"), str(tmp_path / "new.csv"), "-l", "is_fraud", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "In-sample" not in out.read_text() and "Out-of-sample" in out.read_text()


@pytest.mark.parametrize("command", ["tune", "demo"])
def test_table_commands_help_lists_the_table_detectors_only(command):
    from deepad.detectors.catalog import detector_catalog

    text = _help_text([command, "--help"])
    for info in detector_catalog():
        assert (f" {info.name}:" in text or f" {info.name} [" in text) == (info.input == "table"), info.name
