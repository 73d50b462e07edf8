"""`deepad score --engine dask`: partitions scored on a 2-worker LocalCluster equal single-process scoring exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed")

import deepad  # noqa: E402
from deepad.detectors import AutoEncoder  # noqa: E402
from deepad.distributed import SUMMARY_FILE, plan_partitions, score_parquet  # noqa: E402
from deepad.pipeline import TabularDetector  # noqa: E402
from deepad.scoring import score_file  # noqa: E402

from data_fraud import make_fraud_frame  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    env = {"DEEPAD_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env, silence_logs=40
        ) as cl,
        distributed.Client(cl) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    train = make_fraud_frame(1500, seed=1).drop(columns=["is_fraud"])
    model = TabularDetector(
        AutoEncoder(epochs=4, hidden_dims=(16, 8), latent_dim=4, batch_size=128, random_state=0), contamination=0.02
    ).fit(train)
    model.save(d / "model")
    data = d / "data"
    data.mkdir()
    # two files, several row groups of uneven sizes
    a = make_fraud_frame(7000, seed=2, start_index=100_000)
    b = make_fraud_frame(5000, seed=3, start_index=200_000)
    pq.write_table(pa.Table.from_pandas(a, preserve_index=False), data / "a.parquet", row_group_size=1500)
    pq.write_table(pa.Table.from_pandas(b, preserve_index=False), data / "b.parquet", row_group_size=2200)
    # the single-process reference over the same rows, in the same order
    both = pd.concat([a, b], ignore_index=True)
    pq.write_table(pa.Table.from_pandas(both, preserve_index=False), d / "all.parquet")
    score_file(deepad.load(d / "model"), d / "all.parquet", d / "single.parquet")
    return {
        "dir": d,
        "model": d / "model",
        "data": data,
        "all": d / "all.parquet",
        "single": pq.read_table(d / "single.parquet").to_pandas(),
    }


def test_partition_plan_covers_every_row_once(work):
    parts = plan_partitions(work["data"], partition_rows=3000)
    assert sum(p.rows for p in parts) == 12_000
    assert [p.index for p in parts] == list(range(len(parts)))
    offsets = np.cumsum([0] + [p.rows for p in parts[:-1]])
    assert [p.row_offset for p in parts] == offsets.tolist()
    assert {os.path.basename(p.file) for p in parts} == {"a.parquet", "b.parquet"}
    for p in parts:
        groups = pq.ParquetFile(p.file).metadata
        assert p.rows == sum(groups.row_group(g).num_rows for g in p.row_groups) and p.skip == 0
        assert p.rows <= 3000
    assert len(plan_partitions(work["data"], partition_rows=10**9)) == 2  # at least one per file
    # a file that is one big row group is cut into slices of it
    big = plan_partitions(work["all"], partition_rows=5000)
    assert [(p.row_groups, p.skip, p.rows, p.row_offset) for p in big] == [
        ((0,), 0, 5000, 0),
        ((0,), 5000, 5000, 5000),
        ((0,), 10000, 2000, 10000),
    ]
    with pytest.raises(ValueError, match="Parquet"):
        plan_partitions(work["dir"] / "model" / "model.json")


def test_dask_scores_equal_single_process_exactly(work, cluster):
    out = work["dir"] / "out"
    summary = score_parquet(work["model"], work["data"], out, client=cluster, partition_rows=2500, batch_rows=1000)
    got = pq.read_table(out).to_pandas()  # part-00000, part-00001, ... in order; _deepad_score.json skipped
    expected = work["single"]
    assert list(got.columns) == ["transaction_id", "score", "p_value", "is_anomaly"]
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert np.array_equal(got["score"].to_numpy(), expected["score"].to_numpy())  # bit for bit
    assert summary.rows == 12_000 and summary.flagged == int(expected["is_anomaly"].sum())
    assert summary.partitions == len(plan_partitions(work["data"], 2500)) > 2
    # each worker process loaded the model once, however many partitions it scored
    assert summary.workers == 2 and set(summary.model_loads.values()) == {1}
    assert all(v > 0 for v in summary.peak_rss_bytes.values())
    meta = json.loads((out / SUMMARY_FILE).read_text())
    assert meta["rows"] == 12_000 and len(meta["files"]) == summary.partitions
    assert any("merchant_id" in n for n in summary.notes)  # unseen categories, merged over partitions
    # a second run (one file of a single row group, scored in slices of it) replaces the output and loads
    # nothing new (the per-worker cache)
    again = score_parquet(work["model"], work["all"], out, client=cluster, partition_rows=3500, batch_rows=1000)
    assert again.partitions == 4 and set(again.model_loads.values()) == {1}
    pd.testing.assert_frame_equal(pq.read_table(out).to_pandas(), expected, check_exact=True)
    assert not [p for p in os.listdir(work["dir"]) if p.startswith(".out")]  # no temporary directories left


def test_cli_engine_dask_with_a_scheduler_address(work, cluster):
    from typer.testing import CliRunner

    from deepad.cli import app

    out = work["dir"] / "cli-out"
    address = cluster.scheduler.address
    result = CliRunner().invoke(
        app,
        [
            "--quiet",
            "score",
            str(work["model"]),
            str(work["data"]),
            "-o",
            str(out),
            "--engine",
            "dask",
            "--scheduler",
            address,
            "--batch-rows",
            "2000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Scored 12,000 rows" in result.output and "2 partition(s)" in result.output
    pd.testing.assert_frame_equal(pq.read_table(out).to_pandas(), work["single"], check_exact=True)
    # user errors: one line, exit code 2
    bad = [
        (["--engine", "dask", "--scheduler", address], work["dir"] / "x.csv", "Parquet"),
        (["--scheduler", address], work["all"], "--engine dask"),
        (["--engine", "spark"], work["all"], "local or dask"),
    ]
    (work["dir"] / "x.csv").write_text("a,b\n1,2\n")
    for extra, data, message in bad:
        r = CliRunner().invoke(
            app, ["--quiet", "score", str(work["model"]), str(data), "-o", str(work["dir"] / "o2"), *extra]
        )
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    keep = work["dir"] / "not-ours"
    keep.mkdir()
    (keep / "precious.txt").write_text("keep me")
    r = CliRunner().invoke(
        app,
        [
            "--quiet",
            "score",
            str(work["model"]),
            str(work["all"]),
            "-o",
            str(keep),
            "--engine",
            "dask",
            "--scheduler",
            address,
        ],
    )
    assert r.exit_code == 2 and "refusing" in r.output
    assert (keep / "precious.txt").read_text() == "keep me"


def test_bad_values_fail_with_the_global_row_and_leave_no_output(work, cluster):
    data = work["dir"] / "bad"
    data.mkdir()
    a = make_fraud_frame(3000, seed=4)
    b = make_fraud_frame(3000, seed=5, start_index=3000)
    for df in (a, b):
        df["timestamp"] = df["timestamp"].astype(object)
    b.loc[1234, "timestamp"] = "not a date"  # global row 3000 + 1234
    pq.write_table(pa.Table.from_pandas(a, preserve_index=False), data / "a.parquet", row_group_size=1000)
    pq.write_table(pa.Table.from_pandas(b, preserve_index=False), data / "b.parquet", row_group_size=1000)
    out = work["dir"] / "bad-out"
    with pytest.raises(ValueError, match=r"timestamp.*row 4234"):
        score_parquet(work["model"], data, out, client=cluster, partition_rows=1000)
    assert not out.exists()
    assert not [p for p in os.listdir(work["dir"]) if p.startswith(".bad-out")]
    with pytest.raises(ValueError, match="lacks column"):
        pq.write_table(
            pa.Table.from_pandas(a.drop(columns=["amount"]), preserve_index=False), work["dir"] / "no-amount.parquet"
        )
        score_parquet(work["model"], work["dir"] / "no-amount.parquet", out, client=cluster)
