"""Live streams in the scoring service: one :class:`~deepad.stream.StreamScorer` per served time-series model.

Why the service needs state for series models: ``POST .../score`` scores
each request on its own, as a short series that starts afresh -- right for a
batch, wrong for points that arrive one request at a time, whose windows
must reach back into earlier requests.  ``POST .../stream`` instead feeds the
rows to the model's live stream, in arrival order, and answers with the
same fields ``deepad stream`` prints (score, threshold, alarm, alert).

The state lives in the server process, so streams need ``--workers 1``
(with more workers each process would hold a different half of the
history); they are not persisted across restarts.  A hot reload of the
model restarts its stream from the new version's training state, and says
so in the answer's ``notes``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepad.serve.monitoring import record
from deepad.serve.registry import LoadedModel
from deepad.serve.spec import BodyError

__all__ = ["LiveStreams"]


@dataclass
class _Live:
    version: str
    scorer: object
    clock: object | None
    refractory: int
    rearm: int
    lock: threading.Lock = field(default_factory=threading.Lock)


class LiveStreams:
    """The live streams of a service, by model name; thread-safe (requests run in a thread pool)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}

    @staticmethod
    def _new(loaded: LoadedModel, refractory: int, rearm: int) -> _Live:
        from deepad.data.series import StreamClock
        from deepad.stream import StreamScorer, default_threshold

        model = loaded.model
        scorer = StreamScorer(model, threshold=default_threshold(model), refractory=refractory, rearm=rearm)
        grid = getattr(model, "series_input_", None)
        return _Live(loaded.version, scorer, StreamClock(grid) if grid else None, refractory, rearm)

    def reset(self, loaded: LoadedModel, refractory: int = 0, rearm: int = 0) -> dict:
        with self._lock:
            self._live[loaded.name] = self._new(loaded, refractory, rearm)
        return {
            "model": loaded.name,
            "version": loaded.version,
            "reset": True,
            "refractory": refractory,
            "rearm": rearm,
        }

    def update(self, loaded: LoadedModel, df: pd.DataFrame) -> dict:
        """Feed ``df``'s rows (validated by the model's input spec) to the model's stream; the answer's dict."""
        notes: list[str] = []
        with self._lock:
            live = self._live.get(loaded.name)
            if live is None or live.version != loaded.version:
                if live is not None:
                    notes.append(
                        f"the model was reloaded (version {loaded.version}); its stream restarted from "
                        "the new version's training state."
                    )
                live = self._new(loaded, live.refractory if live else 0, live.rearm if live else 0)
                self._live[loaded.name] = live
        names = loaded.spec.feature_columns
        ts_col = (getattr(loaded.model, "series_input_", None) or {}).get("timestamp")
        stamps = df[ts_col].tolist() if ts_col in df.columns else [None] * len(df)
        X = df[names].to_numpy(dtype=np.float64)
        with live.lock:  # one request at a time per stream: rows keep their arrival order
            if live.clock is not None:
                saved = live.clock.previous
                try:
                    for i, t in enumerate(stamps):
                        gap = live.clock.check(t, i)
                        if gap:
                            notes.append(gap.replace(f"line {i}:", f"row {i}:", 1))
                except (ValueError, TypeError) as exc:  # TypeError: naive after aware timestamps, or the reverse
                    live.clock.previous = saved  # nothing of this request was scored
                    raise BodyError([{"loc": ["body", i, ts_col], "msg": str(exc), "type": "value_error"}]) from None
            u = live.scorer.update(X)
            n_seen, n_alerts = int(live.scorer.n_seen), int(live.scorer.n_alerts)
        record(loaded.name, loaded.version, u.scores, u.alarms, window=False)  # /metrics: rows and alarms
        results = u.records(stamps)  # the records `deepad stream` prints
        return {
            "model": loaded.name,
            "version": loaded.version,
            "n": len(results),
            "n_seen": n_seen,
            "n_alerts": n_alerts,
            "refractory": live.refractory,
            "rearm": live.rearm,
            "results": results,
            "notes": notes,
        }
