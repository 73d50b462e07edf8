"""Issue 15, items 8 and 9 (ENOSPC): no half file survives a kill, and a full disk names the output.

* SIGTERM during ``deepad score`` removes the part file and exits 143 (as Ctrl-C cleans up).
* SIGKILL cannot be handled: the next write of the same output removes the parts of dead processes
  and says so, and leaves alone those of processes still running.  Same for the Dask engine's part
  directories and the HTML report's part file (one writer: ``deepad.data.writers.AtomicOutput``).
* ENOSPC while writing is ``error: cannot write the output OUT: No space left on device ...``, exit 2,
  and leaves no part.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from deepad.cli import app
from deepad.data.synthetic import make_fraud_frame
from deepad.data.writers import OutputWriteError, part_prefix
from deepad.detectors import HBOS
from deepad.data.writers import write_frame_atomic
from deepad.pipeline import TabularDetector

BIG_ROWS = 200_000


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("half_files")
    train = make_fraud_frame(500, seed=1).drop(columns=["is_fraud"])
    TabularDetector(HBOS(), contamination=0.01).fit(train).save(d / "model")  # fast to fit and to score
    make_fraud_frame(2000, seed=2, start_index=10_000).to_csv(d / "small.csv", index=False)
    return {"dir": d, "model": d / "model", "small": d / "small.csv"}


@pytest.fixture(scope="module")
def big_csv(work):
    """200,000 rows: a few seconds of scoring in chunks of 500, time enough to kill the run mid-write."""
    path = work["dir"] / "big.csv"
    make_fraud_frame(BIG_ROWS, seed=3, start_index=100_000).to_csv(path, index=False)
    return path


def run(*args):
    result = CliRunner().invoke(app, ["--quiet", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def make_part(out: Path, pid: int, tag: str, *, directory: bool = False) -> Path:
    """A part of ``out`` as a process ``pid`` of this host names it (``tag``: its random part)."""
    part = out.parent / f"{part_prefix(out, pid)}{tag}.part"
    if directory:
        part.mkdir()
        (part / "part-00000.parquet").write_bytes(b"half a part")
    else:
        part.write_text("half a file\n")
    return part


def parts_of(out: Path) -> set[str]:
    return {p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")}


def start_score(work, data: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, DEEPAD_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepad.cli",
            "--quiet",
            "score",
            str(work["model"]),
            str(data),
            "-o",
            str(out),
            "--batch-rows",
            "500",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_new_part(proc: subprocess.Popen, out: Path, before: set[str], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = parts_of(out) - before
        if new:
            return new.pop()
        assert proc.poll() is None, f"deepad score ended before writing: {proc.communicate()}"
        time.sleep(0.005)
    proc.kill()
    pytest.fail("deepad score wrote no part file")


# --------------------------------------------------------------------------- item 8: kills
def test_sigterm_during_score_removes_its_part_and_exits_143(work, big_csv, tmp_path):
    out = tmp_path / "scores.csv"
    out.write_text("previous results\n")
    stale = make_part(out, dead_pid(), "deadbeef")
    live = make_part(out, os.getpid(), "livelive")  # this test runs: that write may still be in progress
    proc = start_score(work, big_csv, out)
    try:
        mine = wait_for_new_part(proc, out, {stale.name, live.name})
        assert mine.startswith(part_prefix(out, proc.pid))  # the owner is in the name
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    assert out.read_text() == "previous results\n"  # the old output is untouched
    assert parts_of(out) == {live.name}  # its own part and the stale one are gone
    assert f"removed the stale partial output {stale}" in stderr  # and it says what it removed


def test_part_left_by_sigkill_is_removed_by_the_next_score(work, big_csv, tmp_path, caplog):
    out = tmp_path / "scores.csv"
    proc = start_score(work, big_csv, out)
    try:
        left = wait_for_new_part(proc, out, set())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert parts_of(out) == {left} and not out.exists()  # SIGKILL cannot be cleaned up after
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = make_part(out, sleeper.pid, "busybusy")  # another process writing the same output now
        with caplog.at_level(logging.WARNING, logger="deepad.writers"):
            result = run("score", work["model"], work["small"], "-o", out)
        assert result.exit_code == 0, result.output
        assert parts_of(out) == {busy.name}  # the dead process's part is gone, the running one's stays
    finally:
        sleeper.kill()
        sleeper.wait()
    assert len(pd.read_csv(out)) == 2000
    removed = [r.getMessage() for r in caplog.records if r.name == "deepad.writers"]
    assert removed == [
        f"removed the stale partial output {out.parent / left}, left by process {proc.pid}, which is no longer running"
    ]


def test_dask_output_removes_stale_part_directories(tmp_path, caplog):
    from deepad.distributed import _prepare_output

    out = tmp_path / "scored"
    stale = make_part(out, dead_pid(), "deadbeef", directory=True)
    live = make_part(out, os.getppid(), "livelive", directory=True)
    other_output = make_part(tmp_path / "scored2", dead_pid(), "deadbeef", directory=True)  # not this output's
    with caplog.at_level(logging.WARNING, logger="deepad.writers"):
        output = _prepare_output(out)
    try:
        assert output.path.is_dir() and output.path.name.startswith(part_prefix(out))
        assert not stale.exists() and live.is_dir() and other_output.is_dir()
        assert any(str(stale) in r.getMessage() for r in caplog.records)
    finally:
        output.abort()
    assert not output.path.exists()


def test_report_removes_stale_parts(tmp_path, caplog):
    from deepad.report.build import _write_atomic

    path = tmp_path / "report.html"
    stale = make_part(path, dead_pid(), "deadbeef")
    live = make_part(path, os.getppid(), "livelive")
    with caplog.at_level(logging.WARNING, logger="deepad.writers"):
        _write_atomic(path, "<html>ok</html>")
    assert path.read_text() == "<html>ok</html>"
    assert parts_of(path) == {live.name}
    assert any(str(stale) in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- item 9: ENOSPC names the output
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_disk_full_while_scoring_names_the_output(work, tmp_path, monkeypatch, suffix):
    if suffix == ".csv":

        class FullCSVWriter(pcsv.CSVWriter):  # the real writer opens the part; its first write fails
            def write_table(self, *args, **kwargs):
                _no_space()

        monkeypatch.setattr(pcsv, "CSVWriter", FullCSVWriter)
    else:
        monkeypatch.setattr(pq.ParquetWriter, "write_table", _no_space)
    out = tmp_path / f"scores{suffix}"
    result = run("score", work["model"], work["small"], "-o", out)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message == (
        f"error: cannot write the output {out}: No space left on device (while scoring {work['small']})"
    ), message
    assert not out.exists() and parts_of(out) == set()


def test_disk_full_in_the_other_writers_names_the_output(tmp_path, monkeypatch):
    from deepad.report.build import _write_atomic

    monkeypatch.setattr(pd.DataFrame, "to_csv", _no_space)  # write_frame_atomic: series and image scores
    out = tmp_path / "series_scores.csv"
    with pytest.raises(OutputWriteError, match=f"cannot write the output {out}: No space left") as info:
        write_frame_atomic(pd.DataFrame({"a": [1]}), out)
    assert info.value.errno == errno.ENOSPC
    assert not out.exists() and parts_of(out) == set()
    monkeypatch.setattr(Path, "write_text", _no_space)  # the HTML report
    report = tmp_path / "report.html"
    with pytest.raises(OutputWriteError, match=f"cannot write the output {report}: No space left"):
        _write_atomic(report, "<html></html>")
    assert not report.exists() and parts_of(report) == set()
