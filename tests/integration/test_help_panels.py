"""`twload run --help` (and serve's, doctor's) groups its options in named panels: every option the command
has is shown in exactly one panel other than the catch-all "Options", which keeps only --help."""

from __future__ import annotations

import re

import pytest
import typer.main

from tests.integration.test_width import cli
from twload.cli import app

PANELS = {
    "run": ["Load", "Request", "Connections", "TLS", "Engine", "Output", "Pass/fail", "Cluster"],
    "serve": ["Listen", "Responses", "TLS", "Limits"],
    "doctor": ["Plan", "Output", "Fix"],
}
PANEL_TOP = re.compile(r"^╭─ (.+?) ─")
OPTION = re.compile(r"^│ (--[a-z][a-z0-9-]*)")  # --http2: digits too


def shown_panels(help_text: str) -> dict[str, list[str]]:
    """Each panel's title and the long options listed in it, in the order --help prints them."""
    panels: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        if top := PANEL_TOP.match(line):
            current = panels.setdefault(top.group(1), [])
        elif (option := OPTION.match(line)) and current is not None:
            current.append(option.group(1))
    return panels


def declared_options(command: str) -> set[str]:
    """The command's long options as typer declares them (typer carries its own click: no isinstance)."""
    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    return {name for p in params if p.param_type_name == "option" and not p.hidden
            for name in p.opts if name.startswith("--")} - {"--help"}


@pytest.mark.parametrize("command", list(PANELS))
@pytest.mark.parametrize("columns", [80, 120])
def test_every_option_is_in_one_named_panel(command, columns):
    proc = cli(columns, command, "--help")
    assert proc.returncode == 0, proc.stderr
    panels = shown_panels(proc.stdout)
    assert [title for title in panels if title not in ("Arguments", "Options")] == PANELS[command], proc.stdout
    assert panels["Options"] == ["--help"], proc.stdout
    grouped = [option for title in PANELS[command] for option in panels[title]]
    assert sorted(grouped) == sorted(declared_options(command)), proc.stdout  # each once, none left out


def test_the_flags_a_user_looks_for_are_where_the_panel_says():
    panels = shown_panels(cli(80, "run", "--help").stdout)
    assert {"--connections", "--duration", "--rate"} <= set(panels["Load"])
    assert {"--header", "--body", "--method"} <= set(panels["Request"])
    assert {"--close", "--source", "--connect-timeout"} <= set(panels["Connections"])
    assert {"--insecure", "--cacert", "--tls-min", "--ciphers", "--ciphersuites", "--tls-resume"} == set(panels["TLS"])
    assert {"--json", "--out", "--report"} <= set(panels["Output"])
    assert {"--cluster", "--scheduler", "--tls-cert"} <= set(panels["Cluster"])
