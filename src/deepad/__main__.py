"""``python -m deepad``: the ``deepad`` command (same as ``python -m deepad.cli``)."""

from deepad.cli import app

app(prog_name="deepad")
