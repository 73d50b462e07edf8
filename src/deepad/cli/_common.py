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


QUIET_HELP = "Print only results and errors (no progress bars). DEEPAD_QUIET=1 in the environment does the same."


def quiet_option():
    """The one definition of ``--quiet`` / ``-q``: on the root (``deepad -q train``) and on every command."""
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)


def with_quiet(command):
    """``command`` accepting ``--quiet`` / ``-q`` after its name too (``deepad train ... -q``), as the root does.

    The option is added to the command's signature (or replaces a ``quiet``
    parameter of its own, which then receives it as well) and sets this
    invocation's quiet flag, which :func:`_quiet` reads.
    """
    import functools
    import inspect

    sig = inspect.signature(command, eval_str=True)
    own = "quiet" in sig.parameters
    if own:
        params = [p.replace(default=quiet_option()) if p.name == "quiet" else p for p in sig.parameters.values()]
    else:
        extra = inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=quiet_option(), annotation=bool)
        params = [*sig.parameters.values(), extra]

    @functools.wraps(command)
    def wrapper(**kwargs):
        quiet = kwargs.get("quiet") if own else kwargs.pop("quiet", False)
        ctx = _current_context()
        if quiet and ctx is not None:
            ctx.find_root().ensure_object(dict)["quiet"] = True
        return command(**kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {**getattr(command, "__annotations__", {}), "quiet": bool}
    return wrapper


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


def _table_detector_names() -> list[str]:
    """Names of the detectors that read table rows (neither images nor time series), sorted."""
    import deepad.detectors as D
    from deepad.stream import is_series_detector

    names = []
    for name in sorted(set(D.__all__) - {"DEFAULT"}):
        cls = getattr(D, name)
        try:
            if not getattr(cls, "_image_input", False) and not is_series_detector(cls()):
                names.append(name)
        except Exception:  # noqa: BLE001 - a detector that needs arguments (an adapter) is not listed
            continue
    return names


def _refuse_image_detector(cls, data: str) -> None:
    """Exit 2 when an image detector is asked to read the table (or series) ``data``, listing the table detectors."""
    if getattr(cls, "_image_input", False):
        fail(
            f"{cls.__name__} is an image detector: it needs a folder of images (PNG/JPEG, or MNIST idx files), "
            f"and {data} is a table. For tables use one of: {', '.join(_table_detector_names())} "
            "(or leave out --detector for the default)."
        )


def _refuse_options(given: dict, applies_to: str, here: str) -> None:
    """Exit 2 naming the options in ``given`` (flag -> value; ``None``/``False`` = not given) that do not apply.

    An option that is accepted and then ignored is worse than an error: the user believes it was used.
    """
    names = [flag for flag, value in given.items() if value is not None and value is not False]
    if names:
        verb = "applies" if len(names) == 1 else "apply"
        fail(f"{', '.join(names)} {verb} to {applies_to}; {here}.")


def _output_directory_exists(output: str) -> None:
    """Exit 2 when the directory an output goes into does not exist (it is never created: a typo stays visible)."""
    from pathlib import Path

    parent = Path(output).expanduser().parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        fail(f"the output directory {parent} {what}; create it first or choose another --output.")


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


# --------------------------------------------------------------------------- how a table file is written
_READ_OPTION_PARAMS = {
    "decimal": (
        str,
        typer.Option(
            None,
            "--decimal",
            help="Decimal mark of DATA: . or , (default: detected per column; a ;-separated file with decimal "
            "commas reads without it).",
        ),
    ),
    "thousands": (
        str,
        typer.Option(
            None, "--thousands", help="Thousands separator of DATA: , . space ' _ or none (default: detected)."
        ),
    ),
    "na_values": (
        list[str],
        typer.Option(
            None, "--na-values", help="Extra token(s) read as missing, e.g. - or k.A.; repeat or comma-separate."
        ),
    ),
    "date_format": (
        str,
        typer.Option(
            None,
            "--date-format",
            help="strftime format of DATA's date columns, e.g. '%d.%m.%Y %H:%M' (default: ISO 8601 and D.M.Y, "
            "D/M/Y detected).",
        ),
    ),
    "dayfirst": (
        bool,
        typer.Option(
            None,
            "--dayfirst/--monthfirst",
            help="Order of day and month in dates like 03/04/2024 (default: detected; D.M.Y is day first).",
        ),
    ),
    "encoding": (
        str,
        typer.Option(None, "--encoding", help="Text encoding of DATA, e.g. cp1252 or latin1 (default: UTF-8)."),
    ),
    "sheet": (str, typer.Option(None, "--sheet", help="Excel .xlsx: sheet name or 0-based number (default: first).")),
}


for _annotation, _option in _READ_OPTION_PARAMS.values():
    _option.rich_help_panel = "How DATA is written"  # one panel in --help


def read_options(
    decimal=None, thousands=None, na_values=None, date_format=None, dayfirst=None, encoding=None, sheet=None
):
    """The :class:`~deepad.data.exports.ReadOptions` of the shared options, or a one-line error."""
    from deepad.data.exports import ReadOptions

    if thousands is not None and thousands.lower() in ("none", "no", ""):
        thousands = ""
    elif thousands is not None and thousands.lower() == "space":
        thousands = " "
    with _UserErrors():
        return ReadOptions(
            decimal=decimal,
            thousands=thousands,
            na_values=tuple(_split_names(na_values)),
            date_format=date_format,
            dayfirst=dayfirst,
            encoding=encoding,
            sheet=int(sheet) if sheet is not None and sheet.isdigit() else sheet,
        )


def with_read_options(command):
    """Decorate a command that reads a table: add the shared read options, pass them as ``read_options``.

    The options (--decimal, --thousands, --na-values, --date-format,
    --dayfirst/--monthfirst, --encoding, --sheet) say how the *file* is
    written, so they are given per command run, never saved with a model.
    While the command runs, deepad's data warnings (a column that looks
    numeric but is read as categorical, mostly unseen categories) print as
    ``warning: ...`` on stderr.
    """
    import functools
    import inspect

    signature = inspect.signature(command)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import warnings

        from deepad.data.exports import ReadWarning
        from deepad.data.preprocessing import UnseenCategoryWarning

        kwargs["read_options"] = read_options(**{k: kwargs.pop(k, None) for k in _READ_OPTION_PARAMS})
        shown = (ReadWarning, UnseenCategoryWarning)
        with warnings.catch_warnings():
            previous = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, shown):
                    typer.echo(f"warning: {message}", err=True)
                else:
                    previous(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            for category in shown:
                warnings.simplefilter("default", category)
            return command(*args, **kwargs)

    params = [p for p in signature.parameters.values() if p.name != "read_options"]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        for name, (annotation, option) in _READ_OPTION_PARAMS.items()
    ]
    wrapper.__signature__ = signature.replace(parameters=params)
    annotations = {k: v for k, v in command.__annotations__.items() if k != "read_options"}
    wrapper.__annotations__ = {**annotations, **{k: a for k, (a, _) in _READ_OPTION_PARAMS.items()}}
    return wrapper


def model_text_columns(model) -> list[str]:
    """A table model's categorical and id columns: read as written, never turned into numbers or dates."""
    schema = getattr(model, "schema_", None)
    if schema is None:
        return []
    return [c for c, k in schema.kinds.items() if k in ("categorical", "id")]


def _column_kinds(types: list[str] | None) -> dict[str, str]:
    """``--type COLUMN=KIND`` (repeatable, comma-separated) as ``{column: kind}``; a malformed item is an error."""
    kinds = {}
    for item in _split_names(types):
        col, sep, kind = item.partition("=")
        if not sep or not col.strip() or not kind.strip():
            fail(f"--type expects COLUMN=KIND, got {item!r}.")
        kinds[col.strip()] = kind.strip()
    return kinds
