"""The tree stays clean under the lint rules of ``pyproject.toml`` (``[tool.ruff.lint]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing_in_the_package_scripts_and_tests():
    pytest.importorskip("ruff")  # a dev dependency: `pip install -e ".[dev]"`
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                          "gailkit", "scripts", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
