"""The ``deepad`` command line: one module per command, parsing and printing only.

User errors (bad files, columns, values) exit with code 2 and a one-line
message; tracebacks are for bugs only.  This module builds the Typer
``app`` (the console entry point ``deepad.cli:app``) and registers the
commands; the commands import :mod:`deepad.cli._common` and the library,
never this module.
"""

from __future__ import annotations

import typer

from deepad.cli import bench, demo, detectors, explain, info, report, score, serve, stream, train, tune

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="deepad: deep anomaly detection. Learn what normal looks like, flag what is not.",
)


@app.callback()
def _root(
    ctx: typer.Context,
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Print only results and errors (no progress bars). DEEPAD_QUIET=1 in the environment does the same.",
    ),
) -> None:
    """deepad: deep anomaly detection."""
    # Per invocation (the click context), not process-wide: an in-process caller running
    # `deepad --quiet ...` and then `deepad ...` gets progress output back the second time.
    ctx.ensure_object(dict)["quiet"] = bool(quiet)


# in the order `deepad --help` lists them
app.command(cls=detectors.TableDetectorListHelp)(demo.demo)
app.command()(demo.example)
app.command()(bench.bench)
app.command(cls=detectors.DetectorListHelp)(train.train)
app.command()(score.score)
app.command()(serve.serve)
app.command()(info.info)
app.command("detectors")(detectors.detectors_cmd)
app.command("explain")(explain.explain_rows)
app.command("report")(report.report)
app.command()(stream.stream)
app.command("tune", cls=detectors.TableDetectorListHelp)(tune.tune_cmd)


def main() -> None:  # pragma: no cover - console entry point
    app()
