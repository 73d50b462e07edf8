"""Progress bars for the long steps of fitting on large tables, on stderr, off unless asked for.

``deepad train`` turns them on (not with ``--quiet``) with :func:`show_progress`;
library calls stay silent.  Torch-free, so DEFAULT without its deep view
stays torch-free.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

__all__ = ["show_progress", "progress_bar"]


#: seconds before a bar first appears: on a terminal, and in a log (stderr not a terminal), so short steps stay quiet
TTY_DELAY_S = 1.0
LOG_DELAY_S = 30.0

_SHOW_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("deepad_show_progress", default=False)


@contextlib.contextmanager
def show_progress(enabled: bool = True) -> Iterator[None]:
    """Within this block the long steps of fitting (DEFAULT's members, the deep view's passes over the rows)
    show tqdm bars with an ETA on stderr; ``deepad train`` turns it on unless ``--quiet``.  Off by default,
    so library calls stay silent."""
    token = _SHOW_PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _SHOW_PROGRESS.reset(token)


def progress_bar(total: int, desc: str, unit: str = "it", *, enabled: bool | None = None, **options):
    """A tqdm bar on stderr inside :func:`show_progress` (or when ``enabled``), else a disabled one (a no-op).

    On a terminal it appears after 1 s and redraws at most every 0.5 s; in a
    log (stderr not a terminal) it appears only after 30 s and then writes a
    line at most every 30 s, so a long run still says where it is while a
    short one leaves the log clean.
    """
    import sys

    from tqdm.auto import tqdm

    enabled = _SHOW_PROGRESS.get() if enabled is None else bool(enabled)
    tty = enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=False,
        file=sys.stderr,
        mininterval=0.5 if tty else 30.0,
        delay=TTY_DELAY_S if tty else LOG_DELAY_S,
        dynamic_ncols=tty,
        **options,
    )
