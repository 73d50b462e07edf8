"""The stream drift event (``PValueCUSUM``) on autocorrelated score streams: false events, and the delay to a real one.

``StreamScorer(drift=True)`` runs a two-sided CUSUM of ``x = -ln p`` over
each point's conformal p-value; its threshold (12, slack 0.5) is set for
*independent* p-values.  Scores of consecutive points are rarely
independent (a series detector's windows overlap; ``--smoothing`` averages
scores), so this measures, side by side on the same streams:

* ``iid`` -- ``PValueCUSUM()`` as it is;
* ``ess`` -- ``PValueCUSUM(autocorrelation=True)`` (what ``StreamScorer``
  uses): the threshold multiplied by ``v = (1 + r) / (1 - r)``, the
  long-run variance factor of an AR(1) with lag-1 autocorrelation ``r``,
  estimated online as ``1 - E[(x_t - x_{t-1})^2] / (2 Var x)`` from
  running means (differences are barely moved by a level shift, so a
  drift does not hide itself by looking "autocorrelated"); a CUSUM's run
  between false events depends on ``threshold x slack / variance``, so
  this keeps it near the independent case, and the delay grows by ``v``.

Streams:

* AR(1) scores ``s_t = phi s_{t-1} + sqrt(1 - phi^2) e_t`` (standard normal
  marginal, so each p-value is still uniform), reference 2,000 i.i.d.
  draws; false events per 10,000 points over ``--points`` points and
  ``--reps`` streams per ``phi``; then the same stream with the scores
  shifted up by ``--shift`` sd from point 2,000: the delay to the first
  "up" event;
* NAB's six files without anomalies (``/work/shared/datasets/nab``):
  ``RollingZScore(window=64)`` fitted on the first 30 % (its scores there
  are the reference), the rest streamed, raw and with ``smoothing`` 5 (the
  moving mean of 5 scores, as ``StreamScorer(smoothing=5)`` does).

Run::

    PYTHONPATH=src DEEPAD_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/drift_cusum.py --out benchmarks/results/drift_cusum/results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepad.detectors.series import RollingZScore
from deepad.stream import PValueCUSUM
from deepad.thresholds import conformal_p_values, smoothed_conformal_p_value

NAB = Path("/work/shared/datasets/nab")
PHIS = [0.0, 0.3, 0.6, 0.8, 0.9, 0.95]


def _run(p: np.ndarray, autocorrelation: bool) -> list[tuple[int, str]]:
    """(index, direction) of every drift event the CUSUM raises on the p-value stream ``p``."""
    c = PValueCUSUM(autocorrelation=True) if autocorrelation else PValueCUSUM()
    out = []
    for i, pi in enumerate(p):
        side = c.step(float(pi))
        if side is not None:
            out.append((i, side))
    return out


def _smoothed(ref: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The p-values ``StreamScorer(drift=True)`` gives its CUSUM: smoothed conformal, point ``i`` hashed as ``i``."""
    r = np.sort(ref)
    return np.array([smoothed_conformal_p_value(r, float(v), i) for i, v in enumerate(s)])


def _ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import lfilter

    e = rng.standard_normal(n) * np.sqrt(1.0 - phi**2)
    e[0] = rng.standard_normal()
    return lfilter([1.0], [1.0, -phi], e)


def ar1_study(points: int, reps: int, shift: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for phi in PHIS:
        for rep in range(reps):
            ref = rng.standard_normal(2000)
            s = _ar1(points, phi, rng)
            p = conformal_p_values(ref, s)
            shifted = s.copy()
            shifted[2000:] += shift
            p_shift = conformal_p_values(ref, shifted[:6000])
            variants = [("iid", False, p, p_shift), ("ess", True, p, p_shift)]
            variants.append(("ess+smoothed", True, _smoothed(ref, s), _smoothed(ref, shifted[:6000])))
            for name, ac, p_, p_shift_ in variants:
                ev = _run(p_, ac)
                ups = [i for i, d in _run(p_shift_, ac) if d == "up" and i >= 2000]
                rows.append(
                    {
                        "phi": phi,
                        "rep": rep,
                        "cusum": name,
                        "false_events": len(ev),
                        "points": points,
                        "first_false": ev[0][0] if ev else None,
                        "delay": (ups[0] - 2000) if ups else None,
                    }
                )
        print(f"phi {phi}: done", flush=True)
    return rows


def nab_study() -> list[dict]:
    windows = json.loads((NAB / "combined_windows.json").read_text())
    rows = []
    for name in sorted(k for k, v in windows.items() if not v):
        x = pd.read_csv(NAB / name)["value"].to_numpy(dtype=np.float64)[:, None]
        n0 = int(0.3 * len(x))
        det = RollingZScore(window=64).fit(x[:n0])
        scores = det.decision_function(x)
        ok = np.isfinite(scores)
        for smoothing in (1, 5):
            sm = pd.Series(scores).rolling(smoothing, min_periods=smoothing).mean().to_numpy()
            ref = sm[:n0][ok[:n0] & np.isfinite(sm[:n0])]
            stream = sm[n0:][np.isfinite(sm[n0:])]
            p = conformal_p_values(ref, stream)
            x_ = -np.log(p)
            lag1 = float(np.corrcoef(x_[:-1], x_[1:])[0, 1]) if x_.std() > 0 else float("nan")
            for cname, ac, p_ in (("iid", False, p), ("ess", True, p), ("ess+smoothed", True, _smoothed(ref, stream))):
                ev = _run(p_, ac)
                rows.append(
                    {
                        "file": name,
                        "smoothing": smoothing,
                        "cusum": cname,
                        "points": int(stream.size),
                        "reference": int(ref.size),
                        "tied_reference_share": float(1.0 - np.unique(ref).size / max(ref.size, 1)),
                        "mean_x": float(x_.mean()),
                        "lag1": lag1,
                        "events": len(ev),
                        "up": sum(d == "up" for _, d in ev),
                        "down": sum(d == "down" for _, d in ev),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--shift", type=float, default=0.5, help="sd the scores move up by (delay study)")
    parser.add_argument("--out", default="benchmarks/results/drift_cusum/results.json")
    args = parser.parse_args()
    t0 = time.perf_counter()
    ar = ar1_study(args.points, args.reps, args.shift)
    nab = nab_study()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "ar1": ar, "nab": nab}, indent=1))
    print(tables(ar, nab))
    print(f"{time.perf_counter() - t0:.0f} s")


def tables(ar: list[dict], nab: list[dict]) -> str:
    df = pd.DataFrame(ar)
    kinds = [c for c in ("iid", "ess", "ess+smoothed") if c in set(df.cusum)]
    lines = [
        "| phi | false events / 10k points: "
        + " | ".join(kinds)
        + " | median delay to a +shift (points): "
        + " | ".join(kinds)
        + " |",
        "|---" * (1 + 2 * len(kinds)) + "|",
    ]
    for phi, g in df.groupby("phi"):
        cells = []
        for c in kinds:
            h = g[g.cusum == c]
            cells.append(f"{10_000 * h.false_events.sum() / h.points.sum():.2f}")
        for c in kinds:
            d = g[g.cusum == c].delay.dropna()
            miss = int(g[g.cusum == c].delay.isna().sum())
            cells.append(f"{d.median():.0f}" + (f" ({miss} missed)" if miss else "") if len(d) else "missed")
        lines.append(f"| {phi:g} | " + " | ".join(cells) + " |")
    nd = pd.DataFrame(nab)
    nkinds = [c for c in ("iid", "ess", "ess+smoothed") if c in set(nd.cusum)]
    lines += [
        "",
        "| NAB file | smoothing | points | lag-1 autocorr. of -ln p | mean -ln p | events: " + " | ".join(nkinds),
    ]
    lines[-1] += " |"
    lines.append("|---" * (5 + len(nkinds)) + "|")
    for (f, sm), g in nd.groupby(["file", "smoothing"]):
        i = g[g.cusum == "iid"].iloc[0]
        cells = []
        for c in nkinds:
            e = g[g.cusum == c].iloc[0]
            cells.append(f"{e.events} ({e.up} up, {e.down} down)")
        lines.append(f"| {f} | {sm} | {i.points} | {i.lag1:.2f} | {i.mean_x:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
