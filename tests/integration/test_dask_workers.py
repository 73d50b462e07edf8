"""The local cluster `deepad score --engine dask` starts runs its workers without the Dask profiler and without
Dask's ``MALLOC_TRIM_THRESHOLD_`` (issue 18)."""

from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

from deepad.distributed import WORKER_CONFIG, _local_cluster  # noqa: E402


def _worker_settings(dask_worker):
    import os

    import dask

    return {
        "config": {key: dask.config.get(key) for key in WORKER_CONFIG},
        "env": {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "DEEPAD_NUM_THREADS")},
        "profiling": "profile" in dask_worker.periodic_callbacks,
        "threads": dask_worker.state.nthreads,
    }


def test_local_cluster_workers_run_without_the_profiler():
    """The profiler sampled the scoring thread's stack every 10 ms: one worker took 2x the plain-process time."""
    import os

    import dask

    # as a default Dask cluster started earlier in this process leaves it
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"
    try:
        with _local_cluster(1) as cluster, distributed.Client(cluster) as client:
            settings = list(client.run(_worker_settings).values())
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # this process's environment is given back
    finally:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    # MALLOC_TRIM_THRESHOLD_ (Dask's default for nannies) doubled the CPU time of scoring in page faults
    env = {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "DEEPAD_NUM_THREADS": "1"}
    assert settings == [{"config": WORKER_CONFIG, "env": env, "profiling": False, "threads": 1}]
    # the client's own configuration is left as it was
    assert dask.config.get("distributed.worker.profile.enabled") is True
    assert dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_") == 65536


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepad.data.synthetic import make_fraud_frame
    from deepad.detectors import AutoEncoder
    from deepad.pipeline import TabularDetector

    d = tmp_path_factory.mktemp("partitions")
    train = make_fraud_frame(600, seed=1).drop(columns=["is_fraud"])
    TabularDetector(AutoEncoder(epochs=1, hidden_dims=(8,), latent_dim=2, random_state=0)).fit(train).save(d / "model")
    rows = make_fraud_frame(3000, seed=2, start_index=10_000).drop(columns=["is_fraud"])
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), d / "data.parquet", row_group_size=500)
    return d


def test_cli_partition_rows_sets_the_partitions(small):
    import json

    from typer.testing import CliRunner

    from deepad.cli import app
    from deepad.distributed import SUMMARY_FILE

    out = small / "scores"
    args = ["score", str(small / "model"), str(small / "data.parquet"), "-o", str(out), "--engine", "dask"]
    result = CliRunner().invoke(app, [*args, "--partition-rows", "1000"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["partitions"] == 3 and summary["rows"] == 3000  # row groups of 500, two per partition
    assert summary["cpu_seconds"] > 0  # the workers' CPU time during their tasks
    assert "3 partition(s)" in result.output


def test_cli_partition_rows_needs_the_dask_engine(small):
    from typer.testing import CliRunner

    from deepad.cli import app

    args = ["score", str(small / "model"), str(small / "data.parquet"), "-o", str(small / "local.parquet")]
    result = CliRunner().invoke(app, [*args, "--partition-rows", "1000"])
    assert result.exit_code == 2
    assert "--partition-rows needs --engine dask" in result.output
    assert not (small / "local.parquet").exists()
