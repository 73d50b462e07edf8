"""``deepad explain``: why chosen rows (or images) score as they do."""

from __future__ import annotations

import typer

from deepad.cli._common import _renamed, _UserErrors, fail, with_read_options

__all__ = ["explain_rows"]


def _parse_rows(text: str) -> list[int]:
    """``"0,5,17"`` or ``"10-20,33"`` -> row numbers (0-based, in the given order, duplicates dropped)."""
    rows: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if sep else [int(part)]
        except ValueError:
            fail(f"--rows expects 0-based row numbers or ranges like 0,5,17 or 10-20; got {part!r}.")
        if sep and int(hi) < int(lo):
            fail(f"--rows range {part!r} ends before it starts.")
        if (int(lo) if sep else int(part)) < 0:
            fail(f"--rows must be non-negative row numbers, got {part!r}.")
        rows.extend(r for r in span if r not in rows)
    if not rows:
        fail("--rows is empty; give row numbers like 0,5,17.")
    return rows


def _read_rows(model, data: str, wanted: list[int], read_options=None):
    """The wanted data rows of DATA (in the given order), read chunk by chunk; exit 2 naming a row past the end."""
    import pandas as pd

    from deepad.data.readers import table_columns
    from deepad.scoring import column_plan

    with _UserErrors(f"{data}: "):
        plan = column_plan(model, table_columns(data, read_options), data)
        need, last, found, offset = set(wanted), max(wanted), {}, 0
        chunks = plan.batches(data, read_options)
        for chunk in chunks:
            for r in need.intersection(range(offset, offset + len(chunk))):
                found[r] = chunk.iloc[[r - offset]]
            offset += len(chunk)
            if offset > last:
                break
    absent = [r for r in wanted if r not in found]
    if absent:
        fail(f"row {absent[0]} is out of range: {data} has {offset:,} data rows (0 to {offset - 1:,}).")
    return pd.concat([found[r] for r in wanted]).set_axis(wanted, axis=0)


@with_read_options
def explain_rows(
    model_dir: str = typer.Argument(..., help="Model directory written by `deepad train`."),
    data: str = typer.Argument(..., help="Table holding the rows: .csv/.tsv, .parquet, .jsonl, .json, .npy or .npz."),
    rows: str = typer.Option(
        None,
        "--rows",
        "-r",
        help="Data rows by position, from 0 (the CSV header is not a row): the order of `deepad score`'s output "
        "and the row numbers of error messages (score writes them as a row column only when the data has no "
        "id column): 0,5,17 or ranges like 10-20. For images: image numbers (default: the --top highest-scoring).",
    ),
    output_dir: str = typer.Option(
        None, "--output-dir", help="Images: folder for the anomaly-map PNG overlays (default ./anomaly-maps)."
    ),
    output_dir_old: str = typer.Option(None, "-o", hidden=True, help="Old short name of --output-dir."),
    top: int = typer.Option(5, "--top", min=1, help="Contributing columns shown per row."),
    method: str = typer.Option(
        "auto",
        "--method",
        help="auto (= shapley), shapley, reconstruction, integrated_gradients, tail or occlusion (see deepad.explain).",
    ),
    read_options=None,
) -> None:
    """Show why rows of DATA score as they do: score, p-value, flag, the columns that raised the score most, and
    for flagged rows the smallest set of columns whose typical values would make the row normal."""
    import warnings

    import numpy as np

    import deepad
    from deepad import thresholds
    from deepad.explain import counterfactual, explain, explanation_method, method_description, top_feature_table
    from deepad.pipeline import TabularDetector

    from deepad.data.images import is_image_source

    output_dir = _renamed(output_dir, output_dir_old, "--output-dir", "-o")

    if is_image_source(data):
        from deepad.cli.images import explain_images

        return explain_images(model_dir, data, _parse_rows(rows) if rows else None, top, output_dir)
    if rows is None:
        fail("--rows is required for tables: give 0-based row numbers like 0,5,17.")
    wanted = _parse_rows(rows)
    with _UserErrors():
        model = deepad.load(model_dir)
    frame = _read_rows(model, data, wanted, read_options)
    with _UserErrors(f"{data}: "), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scores = model.decision_function(frame)
        shapley = explanation_method(model, method) == "shapley"
        attributions = explain(model, frame, top_k=top, method=method, counterfactual=shapley)
        repairs = attributions.attrs["counterfactual"] if shapley else counterfactual(model, frame).to_dict("records")
    p = thresholds.conformal_p_values(model.p_value_reference, scores)
    tabular = isinstance(model, TabularDetector)
    ids = [c for c in model.schema_.id_columns if c in frame.columns] if tabular else []
    how = attributions.attrs["method"]
    typer.echo(
        f"Attributions: {how} ({method_description(model, how)}); positive values raised the score. "
        f"Threshold {model.threshold_:.4g}."
    )
    header = ["row", *ids, "score", "p_value", "anomaly", "rank", "column", "value", "attribution"]
    lines = []
    pos = {str(c): j for j, c in enumerate(attributions.columns)}
    for k, (r, pairs) in enumerate(zip(wanted, top_feature_table(attributions, top))):
        for rank, (column, value) in enumerate(pairs, 1):
            raw = frame.iloc[k][column] if tabular else frame.iloc[k, pos[column]]
            shown = "missing" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw)
            first = rank == 1
            lines.append(
                [
                    str(r) if first else "",
                    *[str(frame.iloc[k][c]) if first else "" for c in ids],
                    f"{scores[k]:.4g}" if first else "",
                    f"{p[k]:.4g}" if first else "",
                    ("yes" if scores[k] > model.threshold_ else "no") if first else "",
                    str(rank),
                    column,
                    shown[:30],
                    f"{value:+.4g}",
                ]
            )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {"row", "score", "p_value", "rank", "attribution"}

    def fmt(cells):
        return "  ".join(c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, widths, header)).rstrip()

    typer.echo(fmt(header))
    for line in lines:
        typer.echo(fmt(line))
    typer.echo(
        f"Counterfactual: the fewest columns whose typical training values bring the score to the threshold "
        f"{model.threshold_:.4g} or below (each bound holds with the other listed columns typical)."
    )
    for r, score, cf in zip(wanted, scores, repairs):
        if not cf["flagged"]:
            typer.echo(f"  row {r}: not flagged (score {score:.4g}); nothing to repair.")
        elif not cf["found"]:
            typer.echo(f"  row {r}: {cf['text']} (score {score:.4g}).")
        else:
            typer.echo(f"  row {r}: typical would be {cf['text']} (score {score:.4g} -> {cf['score_after']:.4g}).")
