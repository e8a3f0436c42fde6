"""The C response parser's own unit test (tests/c/test_http1_parse.c), built with the system cc.

Built twice: as shipped (-O2 -Werror), and with ASan + UBSan, where the test copies every
piece it feeds into a buffer of exactly that size so any read past it aborts the run.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
CORE = ROOT / "src" / "twload" / "engine" / "core"
SOURCES = [str(ROOT / "tests" / "c" / "test_http1_parse.c"), str(CORE / "http1_parse.c")]
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
BUILDS = {
    "plain": ["-O2"],
    "sanitized": ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"],
}


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on PATH")
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_c_parser_unit_test(build, tmp_path):
    exe = tmp_path / "test_http1_parse"
    built = subprocess.run(["cc", *WARNINGS, *BUILDS[build], f"-I{CORE}", *SOURCES, "-o", str(exe)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "cases passed" in proc.stdout
