"""Command line: the typer app; one module per command parses arguments, hands them on, shows results.

Beside them: progress.py, the live line a run shows on stderr, and run_cluster.py, what `run`
does with --cluster/--scheduler.

User mistakes and unreachable targets end with one line on stderr and a non-zero
exit code; a traceback is a bug (set TWLOAD_DEBUG=1 to see one).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

import typer
from rich.console import Console

app = typer.Typer(
    help="Load generator and TCP diagnostics for short-connection load tests (TIME_WAIT, ephemeral ports).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)

EXIT_USAGE = 2
EXIT_RUN = 1


def fail(message: str, code: int = EXIT_RUN) -> None:
    err.print(f"[bold red]twload:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def terminal_width() -> int:
    """COLUMNS when set, else the terminal's width, else 80 (output to a file or a pipe)."""
    return shutil.get_terminal_size((80, 24)).columns


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("twload: interrupted")
        sys.exit(130)
    except Exception as exc:  # the promise: no tracebacks for users
        if os.environ.get("TWLOAD_DEBUG"):
            raise
        err.print(f"[bold red]twload: internal error:[/] {type(exc).__name__}: {exc} (TWLOAD_DEBUG=1 shows more)",
                  soft_wrap=True)  # one line, as every error
        sys.exit(EXIT_RUN)


# Each command module registers itself on `app` (imported last: they import `app` from here),
# in the order --help lists them.
for _command in ("run", "serve", "demo", "doctor", "watch", "report", "simulate", "lab"):
    importlib.import_module(f"twload.cli.{_command}")

__all__ = ["app", "main"]
