"""The ``deepad`` command line: one module per command, parsing and printing only.

User errors (bad files, columns, values) exit with code 2 and a one-line
message; tracebacks are for bugs only.  This module builds the Typer
``app`` (the console entry point ``deepad.cli:app``) and registers the
commands; the commands import :mod:`deepad.cli._common` and the library,
never this module.
"""

from __future__ import annotations

import typer

from deepad.cli import (
    bench,
    demo,
    detectors,
    explain,
    info,
    monitor,
    recalibrate,
    report,
    score,
    serve,
    stream,
    train,
    tune,
)
from deepad.cli._common import quiet_option, with_quiet

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: `pip install 'deepad[serve]'` keeps its brackets
    help="deepad: deep anomaly detection. Learn what normal looks like, flag what is not.",
)


@app.callback()
def _root(
    ctx: typer.Context,
    quiet: bool = quiet_option(),
) -> None:
    """deepad: deep anomaly detection."""
    # Per invocation (the click context), not process-wide: an in-process caller running
    # `deepad --quiet ...` and then `deepad ...` gets progress output back the second time.
    ctx.ensure_object(dict)["quiet"] = bool(quiet)


# in the order `deepad --help` lists them; each also takes -q/--quiet after its name (with_quiet)
app.command(cls=detectors.TableDetectorListHelp)(with_quiet(demo.demo))
app.command()(with_quiet(demo.example))
app.command()(with_quiet(bench.bench))
app.command(cls=detectors.DetectorListHelp)(with_quiet(train.train))
app.command()(with_quiet(score.score))
app.command()(with_quiet(serve.serve))
app.command()(with_quiet(info.info))
app.command("detectors")(with_quiet(detectors.detectors_cmd))
app.command("explain")(with_quiet(explain.explain_rows))
app.command("report")(with_quiet(report.report))
app.command()(with_quiet(stream.stream))
app.command()(with_quiet(monitor.monitor))
app.command("recalibrate")(with_quiet(recalibrate.recalibrate_cmd))
app.command("tune", cls=detectors.TableDetectorListHelp)(with_quiet(tune.tune_cmd))


def main() -> None:  # pragma: no cover - console entry point
    app()
