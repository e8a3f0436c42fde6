"""The lab runs as root: every command it starts is an argv list, never a shell, never formatted code.

Read from the source with ast (nothing is imported or run): a shell given a formatted string runs whatever
the values hold, as root, and so does `python -c` given code with values formatted into it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "twload"
ROOT_ONLY = sorted((SRC / "lab").glob("*.py")) + [SRC / "cli" / "lab.py"]
SHELLS = {"sh", "bash", "dash", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/env"}


def formatted(node: ast.expr) -> bool:
    """An f-string, a str.format call or a % formatting: code whose text depends on values."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    return isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)) \
        and (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str) or formatted(node.left))


def interpreter(node: ast.expr) -> bool:
    """sys.executable, python3, a shell: a program whose -c takes code (nginx's -c takes a file)."""
    if isinstance(node, ast.Attribute) and node.attr == "executable":
        return True
    return isinstance(node, ast.Constant) and isinstance(node.value, str) \
        and ("python" in node.value or node.value in SHELLS)


def offences(source: str) -> list[str]:
    tree = ast.parse(source)
    # names bound to formatted text anywhere in the file: `code = f"..."; run("-c", code)` counts too
    formatted_names = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and formatted(node.value)
                       for target in node.targets if isinstance(target, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        found += [f"line {node.lineno}: shell=True" for kw in node.keywords
                  if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False)]
        args = node.args
        for i, arg in enumerate(args):
            if isinstance(arg, ast.Constant) and arg.value in SHELLS:
                found.append(f"line {node.lineno}: runs {arg.value}")
            if isinstance(arg, ast.Constant) and arg.value == "-c" and 0 < i < len(args) - 1 \
                    and interpreter(args[i - 1]) and (
                    formatted(args[i + 1])
                    or isinstance(args[i + 1], ast.Name) and args[i + 1].id in formatted_names):
                found.append(f"line {node.lineno}: -c with formatted code")
    return found


@pytest.mark.parametrize("path", ROOT_ONLY, ids=lambda p: str(p.relative_to(SRC)))
def test_root_only_code_passes_argv(path):
    assert offences(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("source", [
    'host.run("sh", "-c", f"echo {value} > {path}")',
    'subprocess.run(cmd, shell=True)',
    'host.run(sys.executable, "-c", CODE.format(host=h))',
    'host.run(sys.executable, "-c", f"print({x!r})")',
    'host.run(sys.executable, "-c", "print(%r)" % x)',
    'code = f"print({x!r})"\nhost.run(sys.executable, "-c", code)',
    'code = ("import sys\\n"\n        f"print({x!r})")\nhost.run(sys.executable, "-c", code)',
])
def test_the_reader_sees_each_form(source):
    assert offences(source)


def test_fixed_code_with_argv_is_fine():
    assert offences('host.run(sys.executable, "-c", WAIT_FOR_PORT, host, "80")') == []
    assert offences('conf = f"{workdir}/nginx.conf"\nlab.start(host, nginx, "-p", workdir, "-c", conf)') == []
