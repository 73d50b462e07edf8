"""The README's tour and the docs/ examples run as written (issue 19).

Every fenced ``bash`` or ``python`` block of the README's "Five-minute
tour" and of ``docs/*.md`` is an example; ``text`` and ``json`` blocks are
outputs.  A block the test cannot run here says why on the line before it::

    <!-- docs-test: skip: needs a Dask scheduler -->

The slow test runs the others, one document at a time and in order in one
temporary folder (a later block uses what an earlier one wrote), with the
``deepad`` and ``python`` of this environment.  Two things are adapted,
and only these: ``deepad serve ... &`` listens on a free port instead of
8000 (``localhost:8000`` in the block is rewritten to match), and the
block waits for ``/readyz`` before its next line; ``curl`` gets
``--fail-with-body``, so a 4xx answer fails the block instead of printing
an error.  The fast test checks, without running anything, that every
``deepad`` command line in every block (skipped ones too, and those of
``benchmarks/README.md``, which are benchmarks of hours) parses: the
command and its options exist and the values have the right types.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<reason>[^>]*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")


@dataclass
class Block:
    source: str  # file:line
    lang: str
    code: str
    skip: str | None  # the reason, or None: run it


def blocks(path: Path, section: str | None = None) -> list[Block]:
    """The fenced code blocks of ``path`` (of its ``## section`` only, when given)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if section is not None:
        start = next(i for i, line in enumerate(lines) if line.strip() == f"## {section}")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    else:
        start, end = 0, len(lines)
    out, i = [], start
    while i < end:
        m = FENCE.match(lines[i])
        if m and m["lang"]:
            j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            skip = SKIP.match(prev.strip())
            out.append(
                Block(
                    f"{path.relative_to(ROOT)}:{i + 1}",
                    m["lang"],
                    "\n".join(lines[i + 1 : j]),
                    skip["reason"] if skip else None,
                )
            )
            i = j
        i += 1
    return out


def documents() -> dict[str, list[Block]]:
    docs = {"README.md (tour)": blocks(ROOT / "README.md", "Five-minute tour")}
    docs.update({str(p.relative_to(ROOT)): blocks(p) for p in DOCS})
    return docs


def examples(doc_blocks: list[Block]) -> list[Block]:
    return [b for b in doc_blocks if b.lang in ("bash", "python")]


def _commands(code: str) -> list[list[str]]:
    """The ``deepad`` command lines of a bash block, as argument lists (continuations joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", code)
    out = []
    for line in text.splitlines():
        if not re.match(r"^\s*(\w+=\S*\s+)*deepad\s", line):  # other lines may open a multi-line quote
            continue
        words = shlex.split(line, comments=True)
        while words and re.match(r"^\w+=", words[0]):  # VAR=value deepad ...
            words = words[1:]
        if not words or words[0] != "deepad":
            continue
        args = []
        for w in words[1:]:
            if w in ("&", "|", ";", "&&", "<", ">") or w.startswith(("<", ">")):
                break
            args.append(w)
        out.append(args)
    return out


# --------------------------------------------------------------------------- fast: every example parses
def test_every_example_is_run_or_says_why_not():
    docs = documents()
    assert len(examples(docs["README.md (tour)"])) >= 3
    assert "docs/serving.md" in docs and "docs/security.md" in docs
    for name, doc_blocks in docs.items():
        for b in examples(doc_blocks):
            assert b.skip is None or len(b.skip) > 10, f"{b.source}: say why the block is not run"
            if b.lang == "python":
                compile(b.code, b.source, "exec")


def test_every_deepad_command_line_in_the_docs_parses():
    import typer.main

    from deepad.cli import app

    group = typer.main.get_command(app)
    seen = 0
    parsed_only = [blocks(ROOT / "benchmarks" / "README.md")]  # benchmarks of hours: parsed, never run here
    for doc_blocks in [*documents().values(), *parsed_only]:
        for b in examples(doc_blocks):
            if b.lang != "bash":
                continue
            for args in _commands(b.code):
                seen += 1
                assert args and args[0] in group.commands, f"{b.source}: no command deepad {' '.join(args)}"
                command = group.commands[args[0]]
                try:
                    command.make_context(args[0], list(args[1:]))
                except Exception as exc:  # click's usage errors
                    pytest.fail(f"{b.source}: deepad {shlex.join(args)}: {exc}")
    assert seen >= 10


# --------------------------------------------------------------------------- slow: run them
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_WAIT = (
    "for _ in $(seq 240); do command curl -s -o /dev/null localhost:{port}/readyz && break; sleep 0.5; done; "
    "command curl -sf -o /dev/null localhost:{port}/readyz"
)


def _bash(code: str) -> str:
    """The block as the test runs it: see the module docstring for the two adaptations."""
    port = _free_port()
    code = re.sub(r"\\\n", " ", code).replace("localhost:8000", f"localhost:{port}")
    lines = []
    for line in code.splitlines():
        m = re.match(r"^(\s*deepad serve\b[^#&]*)&(.*)$", line)
        if m:
            lines.append(f"{m[1].rstrip()} --port {port} & {m[2].strip()}")
            lines.append(_WAIT.format(port=port))
        else:
            lines.append(line)
    preamble = (
        "set -euo pipefail\n"
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
        'curl() { command curl --fail-with-body "$@"; echo; }\n'
    )
    return preamble + "\n".join(lines) + "\n"


def _env(tmp: Path) -> dict:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        DEEPAD_NUM_THREADS="1",
        DEEPAD_QUIET="1",
        MPLBACKEND="Agg",
        HOME=str(tmp),
    )
    return env


@pytest.mark.slow
@pytest.mark.parametrize("name", list(documents()))
def test_docs_examples_run_as_written(name, tmp_path):
    runnable = [b for b in examples(documents()[name]) if b.skip is None]
    if not runnable:
        pytest.skip(f"{name} has no runnable examples")
    if any("curl" in b.code for b in runnable) and shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    shutil.which("deepad", path=str(Path(sys.executable).parent)) or pytest.skip("no deepad entry point")
    env = _env(tmp_path)
    for b in runnable:
        if b.lang == "python":
            cmd = [sys.executable, "-c", b.code]
        else:
            cmd = ["bash", "-c", _bash(b.code)]
        res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{b.source} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
