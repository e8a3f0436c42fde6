"""`mypy --strict` over the public API and the examples that use it (as a user's code would be checked)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHECKED = ["src/twload/api", "src/twload/__init__.py", *sorted(str(p.relative_to(ROOT))
                                                              for p in (ROOT / "docs/examples").glob("*.py"))]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="SKIPPED LOUDLY: mypy is not installed (the [test] extra has it: pip install -e .[test])")
def test_the_api_and_its_examples_pass_mypy_strict(tmp_path):
    # --follow-imports=silent: the modules the API imports are read for their types, their own untyped
    # corners (the I/O adapters, not checked yet: pyproject's [tool.mypy]) are not reported here
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                           "--cache-dir", str(tmp_path / "cache"), *CHECKED],
                          cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "MYPYPATH": str(ROOT / "src")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
