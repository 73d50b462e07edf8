"""``deepad detectors``: the detectors, what each reads and its parameters; and the detector list of ``--help``.

Everything here is generated from :mod:`deepad.detectors.catalog` (the
classes' own docstrings and ``get_params``), never kept by hand.
"""

from __future__ import annotations

import typer
from typer.core import TyperCommand

from deepad.cli._common import fail

__all__ = ["detectors_cmd", "DetectorListHelp", "TableDetectorListHelp", "detector_epilog"]

_KIND_ORDER = ("table", "time series", "images")


def _value(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


def _tag(info) -> str:
    tags = [] if info.input == "table" else [info.input]
    if info.uses_labels:
        tags.append("learns from labels")
    return f" [{', '.join(tags)}]" if tags else ""


def detector_epilog(kinds: tuple[str, ...] = _KIND_ORDER, params_option: str | None = "--params") -> list[str]:
    """A ``--help`` epilog, line by line: each detector reading one of ``kinds`` with its main parameters."""
    from deepad.detectors import _DEFAULT
    from deepad.detectors.catalog import detector_catalog

    how = f"set any with {params_option} JSON; " if params_option else ""
    lines = [
        f"Detectors for --detector (case-insensitive; default {_DEFAULT}), main parameters with their defaults "
        f"({how}`deepad detectors NAME` lists them all):"
    ]
    for info in sorted(detector_catalog(), key=lambda d: _KIND_ORDER.index(d.input)):
        if info.input in kinds:
            lines.append(f"  {info.name}{_tag(info)}: {_params_text(info.main_parameters())}")
    return lines


def _epilog_text(lines: list[str], markup_mode) -> str:
    """One block of lines, kept as lines by the help formatter in use (rich markup, or click's rewrapping)."""
    if markup_mode == "rich":
        from rich.markup import escape

        return "\n".join(escape(line) for line in lines)
    if markup_mode == "markdown":
        return "\n\n".join(lines)
    return "\b\n" + "\n".join(lines)  # click: \b keeps the paragraph's line breaks


class DetectorListHelp(TyperCommand):
    """A command whose ``--help`` ends with the detector list, built only when help is shown (it imports torch)."""

    kinds: tuple[str, ...] = _KIND_ORDER  # the inputs the command's detectors read
    params_option: str | None = "--params"  # the option that sets their parameters, if any

    def format_help(self, ctx, formatter) -> None:
        from typer.core import HAS_RICH

        mode = getattr(self, "rich_markup_mode", None) if HAS_RICH else None
        self.epilog = _epilog_text(detector_epilog(self.kinds, self.params_option), mode)
        return super().format_help(ctx, formatter)


class TableDetectorListHelp(DetectorListHelp):
    """``--help`` ending with the detectors that read tables (``deepad tune``, ``deepad demo``)."""

    kinds = ("table",)
    params_option = None


def detectors_cmd(
    name: str = typer.Argument(None, help="A detector (case-insensitive): list all its parameters and defaults."),
) -> None:
    """List the detectors: what each reads, its summary and main parameters; with NAME, all of NAME's parameters.

    The names are those `deepad train --detector` takes; set parameters with
    `--params '{"n_neighbors": 10}'`.
    """
    from deepad.detectors import _DEFAULT
    from deepad.detectors.catalog import describe_detector, detector_catalog

    if name is not None:
        try:
            info = describe_detector(name)
        except ValueError as exc:
            fail(str(exc))
        typer.echo(f"{info.name}{' (the default)' if info.name == _DEFAULT else ''}: {info.summary}")
        labels = "; learns from labels (--label-column)" if info.uses_labels else ""
        typer.echo(f"Reads: {info.input}{labels}.")
        typer.echo("Parameters (defaults):")
        width = max(map(len, info.parameters), default=0)
        for k, v in info.parameters.items():
            typer.echo(f"  {k:<{width}}  {_value(v)}")
        return
    catalog = sorted(detector_catalog(), key=lambda d: _KIND_ORDER.index(d.input))
    for kind in _KIND_ORDER:
        group = [d for d in catalog if d.input == kind]
        if not group:
            continue
        typer.echo(f"{kind[0].upper()}{kind[1:]}:")
        for info in group:
            default = " (default)" if info.name == _DEFAULT else ""
            labels = " [learns from labels]" if info.uses_labels else ""
            typer.echo(f"  {info.name}{default}{labels}: {info.summary}")
            typer.echo(f"      {_params_text(info.main_parameters())}")
    typer.echo("All parameters of one: deepad detectors NAME.")
