"""One atomic writer for every output deepad writes: scores, Dask output directories, HTML reports.

An output ``OUT`` is written aside, as ``.OUT.<host>.<pid>.<random>.part``
(a file, or a directory for the Dask engine) next to it, and renamed onto
``OUT`` only when complete, so a reader never sees half a file.  An
error or a handled signal (SIGINT, SIGTERM) removes the part on the way
out; a process killed outright (SIGKILL, power loss) cannot, so the name
records the owner: the next write of the same ``OUT`` removes the parts
whose owner process on this host no longer exists, logs a warning naming
each (logger ``deepad.writers``), and leaves alone those of processes that
still run (another write of the same output in progress) and those written
on another host (whose processes cannot be checked from here).

An ``OSError`` while writing (disk full, quota, permissions) becomes an
:class:`OutputWriteError` naming the output, not the input being read.

This module is the lowest layer (``deepad.data``): it imports nothing from
the rest of deepad.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "AtomicOutput",
    "OutputWriteError",
    "remove_stale_parts",
    "part_prefix",
    "PART_SUFFIX",
    "OUTPUT_FORMATS",
    "output_format",
    "write_frame_atomic",
    "TableWriter",
    "same_file",
    "default_mode",
]

#: output file suffix -> format
OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

log = logging.getLogger("deepad.writers")

PART_SUFFIX = ".part"


class OutputWriteError(OSError):
    """Writing an output failed (``errno`` as the cause's, e.g. ``ENOSPC``); the message names the output.

    ``during``, when given, says what was being done (``"scoring data.csv"``);
    it comes after the reason, so the message reads as an error of the
    output, not of the input.
    """

    def __init__(self, path, reason: str, errno: int | None = None, during: str | None = None):
        super().__init__(errno, reason, str(path))
        self.path, self.reason, self.during = str(path), reason, during

    def __reduce__(self):  # raised on Dask workers, re-raised on the client
        return type(self), (self.path, self.reason, self.errno, self.during)

    def __str__(self) -> str:
        text = f"cannot write the output {self.path}: {self.reason}"
        return f"{text} (while {self.during})" if self.during else text

    @classmethod
    def of(cls, path, exc: OSError, during: str | None = None) -> "OutputWriteError":
        """The :class:`OutputWriteError` of ``path`` for the ``OSError`` ``exc`` (its reason and errno)."""
        if isinstance(exc, OutputWriteError):
            reason, errno = exc.reason, exc.errno
        elif exc.errno:
            reason, errno = os.strerror(exc.errno), exc.errno
        else:  # pyarrow's IO errors may carry no errno; their text then says what happened
            reason, errno = " ".join(str(exc).split()) or type(exc).__name__, None
        return cls(path, reason, errno, during)


# --------------------------------------------------------------------------- part names and their owners
def _host() -> str:
    """This host's name as it appears in part names: letters, digits and ``-`` only, never empty."""
    name = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname() or "").strip("-")[:40]
    return name or "host"


def part_prefix(out: str | os.PathLike, pid: int | None = None) -> str:
    """The start of the part names of ``out`` owned by process ``pid`` (default: this one) on this host."""
    return f".{Path(out).name}.{_host()}.{os.getpid() if pid is None else int(pid)}."


def _owner(name: str, out_name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of the part ``name`` of the output named ``out_name``; ``None`` if it is not one."""
    m = re.fullmatch(rf"\.{re.escape(out_name)}\.([A-Za-z0-9-]+)\.(\d+)\.[a-z0-9_]+{re.escape(PART_SUFFIX)}", name)
    return (m.group(1), int(m.group(2))) if m else None


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (when unsure: yes, so that nothing in use is removed)."""
    if pid <= 0 or os.name == "nt":  # os.kill(pid, 0) terminates the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user
        return True
    return True


def remove_stale_parts(out: str | os.PathLike) -> list[Path]:
    """Remove the parts of ``out`` left by processes of this host that no longer run; return what was removed."""
    out = Path(out)
    try:
        entries = list(os.scandir(out.parent if str(out.parent) else "."))
    except OSError:  # no directory yet: nothing stale
        return []
    here, removed = _host(), []
    for entry in entries:
        owner = _owner(entry.name, out.name)
        if owner is None or owner[0] != here or owner[1] == os.getpid() or _running(owner[1]):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:  # another process removed it first
            continue
        except OSError as exc:
            log.warning(
                "could not remove the stale partial output %s (left by process %d, which is no longer running): %s",
                path,
                owner[1],
                exc,
            )
            continue
        log.warning(
            "removed the stale partial output %s, left by process %d, which is no longer running", path, owner[1]
        )
        removed.append(path)
    return removed


def _discard(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:  # its directory is already gone
        pass


# --------------------------------------------------------------------------- permissions
def _umask() -> int:
    """This process's umask, read from /proc where it can be (changing it to read it races with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The mode a plain ``open()`` (``mkdir``) would give a new file (directory): ``0o666`` (``0o777``) less the umask.

    Temporary parts are made private (``mkstemp``: 0600, ``mkdtemp``: 0700)
    and some libraries write their files that way too (safetensors); every
    output gets this mode on commit, so a colleague the umask lets read
    ``model.json`` can read the weights next to it as well.
    """
    return (0o777 if directory else 0o666) & ~_umask()


def _chmod_tree(root: Path, file_mode: int, dir_mode: int) -> None:
    """Give every file under ``root`` ``file_mode`` and every directory (``root`` too) ``dir_mode``."""
    for here, dirs, files in os.walk(root):
        os.chmod(here, dir_mode)
        for name in files:
            path = os.path.join(here, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode)


# --------------------------------------------------------------------------- the writer
class AtomicOutput:
    """A part next to ``out`` (``path``) that replaces ``out`` on :meth:`commit`, or is removed on :meth:`abort`.

    Creating it creates ``out``'s directory if needed and first removes the
    stale parts of ``out`` (see the module docstring; ``removed`` lists
    them).  ``directory=True`` makes the part a directory (the Dask
    engine's output; an existing output directory is replaced as a whole).
    OSErrors inside ``with output.writing():`` and in :meth:`commit`
    become :class:`OutputWriteError` naming ``out`` (and ``during``, what
    was being done, e.g. ``"scoring data.csv"``).  The committed output has
    the mode a plain ``open()`` would give it (:func:`default_mode`: 0666 or
    0777 less the umask; for a directory, every file and directory in it),
    unless ``mode`` is given.  As a context manager it commits on
    success and aborts on any exception, KeyboardInterrupt included::

        with AtomicOutput(out) as part, part.writing():
            frame.to_csv(part.path, index=False)
    """

    def __init__(
        self, out: str | os.PathLike, *, directory: bool = False, during: str | None = None, mode: int | None = None
    ):
        self.out = Path(out)
        self.directory = directory
        self.during = during
        self.mode = default_mode(directory) if mode is None else mode
        parent = self.out.parent if str(self.out.parent) else Path(".")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.removed = remove_stale_parts(self.out)
            if directory:
                self.path = Path(tempfile.mkdtemp(prefix=part_prefix(self.out), suffix=PART_SUFFIX, dir=parent))
            else:
                fd, name = tempfile.mkstemp(prefix=part_prefix(self.out), suffix=PART_SUFFIX, dir=parent)
                os.close(fd)
                self.path = Path(name)
        except OSError as exc:
            raise self.error(exc) from exc
        self.done = False

    def error(self, exc: OSError) -> OutputWriteError:
        """``exc`` as an :class:`OutputWriteError` of ``out``."""
        return exc if isinstance(exc, OutputWriteError) else OutputWriteError.of(self.out, exc, self.during)

    def writing(self):
        """Context manager: an ``OSError`` inside becomes an :class:`OutputWriteError` (the part stays; abort it)."""
        return _Writing(self)

    def commit(self) -> Path:
        """Rename the part onto ``out`` (replacing it); an error removes the part and raises ``OutputWriteError``."""
        try:
            if self.directory:
                _chmod_tree(self.path, self.mode & 0o666, self.mode)  # files: the directory's mode less execute
            else:
                os.chmod(self.path, self.mode)
            if self.directory and self.out.exists():
                self._replace_directory()
            else:
                os.replace(self.path, self.out)
        except OSError as exc:
            self.abort()
            raise self.error(exc) from exc
        self.done = True
        return self.out

    def _replace_directory(self) -> None:
        # A directory cannot be renamed onto a non-empty one: move the old one aside (itself a part of
        # this process, so a kill between the two renames leaves something the next run removes).
        old = Path(tempfile.mkdtemp(prefix=part_prefix(self.out), suffix=PART_SUFFIX, dir=self.path.parent))
        os.replace(self.out, old / "previous")
        os.replace(self.path, self.out)
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Remove the part (nothing happens to ``out``); safe to call more than once."""
        if not self.done:
            _discard(self.path)

    def __enter__(self) -> "AtomicOutput":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.commit()
        else:
            self.abort()
        return False


class _Writing:
    def __init__(self, output: AtomicOutput):
        self.output = output

    def __enter__(self):
        return self.output

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
            raise self.output.error(exc) from exc
        return False


def output_format(path: str | os.PathLike) -> str:
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the output must end in {', '.join(OUTPUT_FORMATS)} (CSV or Parquet).")
    return fmt


def write_frame_atomic(frame: pd.DataFrame, path: str | os.PathLike, *, during: str | None = None) -> Path:
    """Write ``frame`` to ``path`` (CSV or Parquet by suffix) aside, then rename: never a half-written file.

    See :class:`deepad.data.writers.AtomicOutput`: stale parts of ``path``
    left by killed processes are removed first, and an ``OSError`` while
    writing is an :class:`~deepad.data.writers.OutputWriteError` naming
    ``path`` (and ``during``, e.g. ``"scoring data.csv"``).
    """
    out = Path(path)
    fmt = output_format(out)
    with AtomicOutput(out, during=during) as part, part.writing():
        frame.to_csv(part.path, index=False) if fmt == "csv" else frame.to_parquet(part.path, index=False)
    return out


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are the same file (an output must never overwrite its input)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


class TableWriter:
    """CSV or Parquet, chunk by chunk, into a temporary file that replaces ``out`` only when complete.

    The temporary file is an :class:`AtomicOutput` part
    (stale parts of ``out`` left by killed processes are removed first).
    ``make_parent=False`` (Dask output parts, inside the run's own part
    directory) neither creates the directory nor touches it before the
    first write: if a failed run's directory was removed while a task still
    ran, that task fails instead of leaving files.  An ``OSError`` while
    writing is an :class:`~deepad.data.writers.OutputWriteError` naming
    ``out`` (and ``during``).
    """

    def __init__(
        self, out: Path, fmt: str, *, make_parent: bool = True, during: str | None = None, plain: Sequence[str] = ()
    ):
        self.out, self.fmt = out, fmt
        #: Parquet columns written without dictionary encoding (besides the floating-point ones): unique ids
        self.plain = frozenset(plain)
        if make_parent:
            self.part: AtomicOutput | None = AtomicOutput(out, during=during)
            self.tmp = self.part.path
        else:
            self.part = None
            self.tmp = out.with_name(f".{out.name}.tmp")
        self.during = during
        self.writer = None
        self.schema = None

    def _error(self, exc: OSError) -> OutputWriteError:
        return self.part.error(exc) if self.part is not None else OutputWriteError.of(self.out, exc, self.during)

    def write(self, table) -> None:
        import pyarrow as pa

        try:
            if self.writer is None:
                # A column that is all-null in the first chunk would fix its type to null; use text then.
                fields = [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in table.schema]
                self.schema = pa.schema(fields)
                if self.fmt == "csv":
                    import pyarrow.csv as pcsv

                    self.writer = pcsv.CSVWriter(str(self.tmp), self.schema)
                else:
                    import pyarrow.parquet as pq

                    # Dictionary encoding pays for repeated values only: scores, p-values and ids are (nearly) all
                    # distinct, and trying it cost 6x the write time of 1M scored rows (benchmarks/throughput.py).
                    dictionary = [
                        f.name for f in self.schema if f.name not in self.plain and not pa.types.is_floating(f.type)
                    ]
                    self.writer = pq.ParquetWriter(str(self.tmp), self.schema, use_dictionary=dictionary)
            self.writer.write_table(table.cast(self.schema))
        except OSError as exc:
            raise self._error(exc) from exc

    def commit(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
            if self.part is not None:
                self.part.commit()
            else:
                os.chmod(self.tmp, default_mode())
                os.replace(self.tmp, self.out)
        except OSError as exc:
            raise self._error(exc) from exc

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:  # noqa: BLE001 - already failing; the temporary file goes regardless
            pass
        if self.part is not None:
            self.part.abort()
            return
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:  # its directory is already gone
            pass
