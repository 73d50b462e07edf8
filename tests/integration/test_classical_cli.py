"""Importing deepad, in a fresh interpreter, does not import PyOD."""

from __future__ import annotations

import subprocess
import sys


def test_importing_deepad_does_not_import_pyod():
    code = "import sys, deepad, deepad.detectors; print('pyod' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
