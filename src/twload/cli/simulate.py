"""`twload simulate`: the deterministic kernel model's scenarios."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from twload.cli import EXIT_USAGE, app, fail, terminal_width
from twload.plan import PlanError
from twload.report.wrap import wrap_line

simulate_app = typer.Typer(help="A deterministic model of TIME_WAIT, PAWS, tw_reuse and tw_recycle across kernels and NAT.",
                           no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


@simulate_app.command("list")
def simulate_list() -> None:
    """The named scenarios, one line each."""
    from twload.sim.scenarios import COMMON, SCENARIOS

    width = max(len(name) for name in SCENARIOS)
    for scenario in SCENARIOS.values():
        print("\n".join(wrap_line(f"{scenario.name:<{width}}  {scenario.summary}", terminal_width(), width + 2)))
    print()
    print("\n".join(wrap_line(f"common --set keys: {', '.join(COMMON)}; kernels: 2.6.32 4.4 4.10 4.11 4.12 6.x",
                              terminal_width())))


@simulate_app.command("run")
def simulate_run(
    name: Annotated[str, typer.Argument(help="Scenario name (twload simulate list).")],
    kernel: Annotated[str | None, typer.Option("--kernel", help="2.6.32 | 4.4 | 4.10 | 4.11 | 4.12 | 6.x")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="key=value (repeatable), e.g. --set ports=10 --set rate=1")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same result.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    trace: Annotated[bool, typer.Option("--trace", help="Packet-level timeline (first 400 lines).")] = False,
) -> None:
    """Run one scenario and explain the rules that fired."""
    from twload.api.simulation import scenario_result  # what twload.simulate() returns
    from twload.sim.scenarios import SCENARIOS

    try:
        if name not in SCENARIOS:
            raise PlanError(f"unknown scenario {name!r}: see `twload simulate list`")
        overrides = {}
        for item in set_:
            key, sep, value = item.partition("=")
            if not sep:
                raise PlanError(f"bad --set {item!r}: use key=value")
            overrides[key.strip()] = value.strip()
        result = scenario_result(name, overrides, kernel, seed, trace).to_dict()
    except PlanError as exc:
        fail(str(exc), EXIT_USAGE)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    from twload.sim.text import render_simulation

    print(render_simulation(result, terminal_width()))
