"""What every ``deepad`` command shares: the one-line user error, --quiet, and the option helpers.

Parsing and printing only: a user error exits with code 2 and a one-line
message (:func:`fail`, :class:`_UserErrors`); tracebacks are for bugs.
"""

from __future__ import annotations

import typer


def fail(message: str) -> "typer.Exit":
    """Print a one-line user error and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _current_context():
    """The running command's context (typer >= 0.2x vendors click as ``typer._click``; older typer uses click)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - typer built on the click package
        from click import get_current_context
    return get_current_context(silent=True)


def _quiet() -> bool:
    """``--quiet`` of this invocation (the root context's object), or DEEPAD_QUIET=1 in the user's environment."""
    import os

    ctx = _current_context()
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(isinstance(obj, dict) and obj.get("quiet")) or os.environ.get("DEEPAD_QUIET") == "1"


def _say(message: str) -> None:
    if not _quiet():
        typer.echo(message)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if not isinstance(exc, KeyError) else f"missing {text}"


class _UserErrors:
    """Turn the errors bad input causes (files, columns, values, parameters) into ``fail()``: exit 2, one line."""

    def __init__(self, context: str = ""):
        self.context = context

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (typer.Exit, KeyboardInterrupt)):
            return False
        if isinstance(exc, (OSError, ValueError, TypeError)):
            from deepad.data.writers import OutputWriteError

            message = _one_line(exc)
            where = self.context.rstrip(": ")
            # an output that cannot be written names the output, not the input in self.context
            own = isinstance(exc, OutputWriteError) or (where and where in message)
            fail(message if own else f"{self.context}{message}")
        return False


def _detector_class(name: str | None):
    """The detector class called ``name`` (case-insensitive; None: DEFAULT), or a one-line error listing the names."""
    from deepad.detectors import detector_class

    try:
        return detector_class(name)
    except ValueError as exc:
        fail(str(exc))


def _new_detector(cls, kwargs: dict, seed: int):
    """``cls(**kwargs)`` with the CLI's seed and progress setting unless the user gave them."""
    inner = cls(**kwargs)
    inner_params = inner.get_params(deep=False)
    if "random_state" in inner_params and "random_state" not in kwargs:
        inner.set_params(random_state=seed)
    if "verbose" in inner_params and "verbose" not in kwargs:
        inner.set_params(verbose=not _quiet())
    return inner


def _detector_params(params: str | None, cls) -> dict:
    import json

    if not params:
        return {}
    try:
        kwargs = json.loads(params)
    except json.JSONDecodeError as exc:
        fail(f"--params is not valid JSON ({exc.msg} at character {exc.pos}): {params}")
    if not isinstance(kwargs, dict):
        fail(f"--params must be a JSON object like '{{\"epochs\": 50}}', got {params}")
    known = cls().get_params(deep=False)
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        fail(f"{cls.__name__} has no parameter(s) {unknown}; its parameters are: {', '.join(sorted(known))}")
    return kwargs


def _option_name(name: str) -> str:
    """A library parameter name as the command spells its option: ``pot_risk`` -> ``--pot-risk``."""
    return "--" + name.replace("_", "-")


def _renamed(value, old_value, new: str, old: str):
    """A renamed option's value: the new spelling's, else that of its old name (kept hidden for one release).

    The old name still works and says once on stderr what it is called now
    (not with --quiet); both spellings with different values is an error.
    """
    if old_value is None:
        return value
    if value is not None and value != old_value:
        fail(f"{new} and its old name {old} give different values; give {new} only.")
    if not _quiet():
        typer.echo(f"note: {old} is now {new}; the old name is kept for one release.", err=True)
    return old_value


def _split_names(values: list[str] | None) -> list[str]:
    return [v.strip() for item in (values or []) for v in item.split(",") if v.strip()]


def _column_kinds(types: list[str] | None) -> dict[str, str]:
    """``--type COLUMN=KIND`` (repeatable, comma-separated) as ``{column: kind}``; a malformed item is an error."""
    kinds = {}
    for item in _split_names(types):
        col, sep, kind = item.partition("=")
        if not sep or not col.strip() or not kind.strip():
            fail(f"--type expects COLUMN=KIND, got {item!r}.")
        kinds[col.strip()] = kind.strip()
    return kinds
