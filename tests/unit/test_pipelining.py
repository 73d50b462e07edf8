"""Reading ahead and writing behind (deepad.data.pipelining) keep the order, the errors and the no-partial-output rule."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from deepad.data.pipelining import WriteBehind, prefetch
from deepad.data.preprocessing import TabularPreprocessor
from deepad.data.schema import DataValidationError
from deepad.data.synthetic import make_fraud_frame
from deepad.detectors import AutoEncoder, IsolationForest
from deepad.pipeline import TabularDetector
from deepad.scoring import score_file


def test_prefetch_keeps_the_order_and_reads_in_another_thread():
    where = []

    def items():
        for i in range(5):
            where.append(threading.get_ident())
            yield i

    assert list(prefetch(items())) == [0, 1, 2, 3, 4]
    assert set(where) and threading.get_ident() not in where


def test_prefetch_raises_the_readers_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise DataValidationError("row 7: bad value", column="amount")

    got = []
    with pytest.raises(DataValidationError, match="row 7: bad value"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_prefetch_stopped_early_closes_the_source():
    closed = threading.Event()

    def items():
        try:
            for i in range(100):
                yield i
        finally:
            closed.set()

    it = prefetch(items())
    assert next(it) == 0
    it.close()
    assert closed.is_set()


class _Writer:
    def __init__(self, fail_at=None):
        self.tables, self.fail_at, self.state = [], fail_at, "open"

    def write(self, table):
        if len(self.tables) == self.fail_at:
            raise OSError("disk full")
        self.tables.append(table)

    def commit(self):
        self.state = "committed"

    def abort(self):
        self.state = "aborted"


def test_write_behind_keeps_the_order_and_commits():
    inner = _Writer()
    w = WriteBehind(inner)
    for i in range(4):
        w.write(i)
    w.commit()
    assert inner.tables == [0, 1, 2, 3] and inner.state == "committed"


def test_write_behind_raises_a_write_error_in_the_caller_and_abort_cleans_up():
    inner = _Writer(fail_at=1)
    w = WriteBehind(inner)
    w.write("a")
    w.write("b")  # fails in the background
    with pytest.raises(OSError, match="disk full"):
        w.write("c")  # ... and is raised here, at the next write
    w.abort()
    assert inner.tables == ["a"] and inner.state == "aborted"


@pytest.fixture(scope="module")
def frames():
    train = make_fraud_frame(1200, seed=4).drop(columns=["is_fraud"])
    new = make_fraud_frame(900, seed=5).drop(columns=["is_fraud"])
    return train, new


@pytest.mark.parametrize(
    "make", [lambda: AutoEncoder(epochs=1, random_state=0), lambda: IsolationForest(random_state=0)]
)
def test_scoring_one_chunk_ahead_gives_the_scores_of_one_call(frames, tmp_path, make):
    """Chunks of 100 rows: the read-ahead thread alternates its two encoding buffers nine times over."""
    train, new = frames
    model = TabularDetector(make()).fit(train)
    out = tmp_path / "s.parquet"
    summary = score_file(model, new, out, batch_size=100)
    got = pd.read_parquet(out)
    assert summary.rows == len(new) == len(got)
    np.testing.assert_array_equal(got["score"].to_numpy(), model.decision_function(new))
    assert got["transaction_id"].tolist() == new["transaction_id"].tolist()


def test_a_bad_value_in_a_later_chunk_names_its_row_and_leaves_no_output(frames, tmp_path):
    train, new = frames
    model = TabularDetector(IsolationForest(random_state=0)).fit(train)
    bad = new.astype({"amount": object})
    bad.loc[650, "amount"] = "twelve"
    csv = tmp_path / "new.csv"
    bad.to_csv(csv, index=False)
    out = tmp_path / "s.csv"
    with pytest.raises(DataValidationError, match=r"column 'amount'.*row 650 \('twelve'\)"):
        score_file(model, csv, out, batch_size=100)  # raised in the read-ahead thread, at its own chunk
    assert not out.exists() and list(tmp_path.iterdir()) == [csv]  # no partial or temporary file left


def test_two_scratch_slots_are_two_buffers(frames):
    train, new = frames
    prep = TabularPreprocessor().fit(train)
    a = prep.transform(new, order="F", scratch=True, slot=0)
    b = prep.transform(new, order="F", scratch=True, slot=1)
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)
    assert np.shares_memory(a, prep.transform(new.iloc[:10], order="F", scratch=True, slot=0))
