"""``python -m deepad.cli``: the ``deepad`` command."""

from deepad.cli import app

app()
