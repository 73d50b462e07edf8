"""Outputs get the mode a plain open() would give them (0666/0777 less the umask), weights included (issue 19)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest

from deepad.data.writers import AtomicOutput, TableWriter, default_mode, write_frame_atomic


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _modes(root):
    """{relative path: permission bits} of ``root`` and everything under it."""
    out = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            out[os.path.relpath(path, root)] = stat.S_IMODE(os.stat(path).st_mode)
    return out


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_saved_model_files_follow_the_umask(tmp_path, mask):
    from deepad.detectors import HBOS
    from deepad.pipeline import TabularDetector

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 3)), columns=list("abc"))
    model = TabularDetector(HBOS()).fit(X)
    with umask(mask):
        model.save(tmp_path / "m")
        assert default_mode() == 0o666 & ~mask and default_mode(True) == 0o777 & ~mask
    modes = _modes(tmp_path / "m")
    assert "detector_/tensors.safetensors" in modes and "model.json" in modes and "detector_" in modes
    for name, mode in modes.items():
        expected = 0o777 & ~mask if (tmp_path / "m" / name).is_dir() else 0o666 & ~mask
        assert mode == expected, (name, oct(mode), oct(expected))


@pytest.mark.parametrize("mask", [0o002, 0o077])
def test_tables_and_reports_follow_the_umask(tmp_path, mask):
    import pyarrow as pa

    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with umask(mask):
        write_frame_atomic(frame, tmp_path / "out.csv")
        writer = TableWriter(tmp_path / "chunks.parquet", "parquet")
        writer.write(pa.Table.from_pandas(frame))
        writer.commit()
        with AtomicOutput(tmp_path / "report.html") as part, part.writing():
            part.path.write_text("<html></html>")
    for name in ("out.csv", "chunks.parquet", "report.html"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~mask, name


def test_an_explicit_mode_is_kept(tmp_path):
    with AtomicOutput(tmp_path / "private.txt", mode=0o600) as part, part.writing():
        part.path.write_text("secret")
    assert stat.S_IMODE(os.stat(tmp_path / "private.txt").st_mode) == 0o600
