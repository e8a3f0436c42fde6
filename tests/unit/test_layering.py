"""The layering rules, proved by reading the source's imports with ast (nothing is imported).

Pure modules take plain values and return plain values: they import no I/O (sockets, ssl,
event loops), and nothing from the adapters (engine, kernel, lab, serve, the doctor's probe) or
the command line, not even through another twload module. Only the command line imports the
command line. No module imports one that imports it back, however long the way round, and no
room (a folder under twload) one that imports it back: between rooms every arrow runs down.
Every import counts: at the top, inside a function, relative, or by importlib with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "twload"

# Pure: plain values in, plain values out (docs/ARCHITECTURE.md "Rooms").
PURE_PACKAGES = ("twload.plan", "twload.sim", "twload.watch", "twload.ports", "twload.merge")
PURE_MODULES = (
    "twload.thresholds", "twload.metrics", "twload.doctor.rules", "twload.doctor.preflight",
    "twload.report.text", "twload.report.rebuild", "twload.report.numbers", "twload.report.csv",
    "twload.report.compare_text", "twload.report.html", "twload.report.wrap",
    "twload.distributed.spec", "twload.distributed.split",
)
ADAPTERS = ("twload.engine", "twload.kernel", "twload.lab", "twload.cli", "twload.serve", "twload.doctor.probe")
IO = ("socket", "ssl", "asyncio", "uvloop", "selectors")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imports_of(name: str, source: str | None = None) -> list[tuple[str, set[str] | None]]:
    """(module imported, names taken from it or None for the whole module), every import in the file."""
    tree = ast.parse(source if source is not None else MODULES[name].read_text(encoding="utf-8"))
    package = name if is_package(name) else name.rpartition(".")[0]
    found: list[tuple[str, set[str] | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = {alias.name for alias in node.names}
            found.append((base, names))
            # `from twload.ports import budget` imports the module twload.ports.budget
            found += [(f"{base}.{n}", None) for n in names if f"{base}.{n}" in MODULES]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.append((node.args[0].value, None))
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


class _Lazy(ast.NodeTransformer):
    """Drops what importing a module does not run: function bodies and `if TYPE_CHECKING:` blocks."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        return None

    def visit_If(self, node: ast.If) -> ast.AST | list[ast.stmt]:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return [self.visit(n) for n in node.orelse]
        return self.generic_visit(node)


def eager_imports_of(name: str) -> list[tuple[str, set[str] | None]]:
    """The imports that importing `name` runs: at module level, outside functions and TYPE_CHECKING."""
    tree = _Lazy().visit(ast.parse(MODULES[name].read_text(encoding="utf-8")))
    return imports_of(name, ast.unparse(ast.fix_missing_locations(tree)))


# The root package names the public API (twload.api) lazily, by PEP 562's module __getattr__: importing
# any twload module imports the root package first, yet runs none of the API (a worker process imports
# the engine alone). So a closure follows the root's eager imports only.
ROOT = "twload"


def twload_closure(start: str) -> dict[str, str]:
    """Every twload module that importing `start` runs (parent packages included) -> who imported it."""
    seen: dict[str, str] = {}
    todo = [(start, "")]
    while todo:
        name, by = todo.pop()
        if name in seen or name not in MODULES:
            continue
        seen[name] = by
        parent = name.rpartition(".")[0]
        if parent:
            todo.append((parent, name))
        found = eager_imports_of(name) if name == ROOT and start != ROOT else imports_of(name)
        todo += [(imported, name) for imported, _ in found if within(imported, "twload")]
    return seen


# ... but for two rooms whose names are the API's functions too (twload.doctor(), twload.serve()): the root
# imports them before it sets the functions, as their first import would set the name to the package.
ROOT_EAGER = ("twload.doctor", "twload.serve")


def test_the_root_package_imports_no_twload_code_when_imported():
    """What makes the closure above right: `import twload` (and so every twload import) runs no twload code
    but two packages' docstrings; the API comes with the first use of one of its names."""
    eager = [imported for imported, _ in eager_imports_of(ROOT) if within(imported, "twload")]
    assert sorted(set(eager)) == sorted(ROOT_EAGER)
    for room in ROOT_EAGER:
        assert eager_imports_of(room) == [], f"{room}/__init__.py imports: `import twload` would run it"
    assert "twload.api" in [imported for imported, _ in imports_of(ROOT)]  # the lazy import is seen at all


def pure_modules() -> list[str]:
    names = [n for n in MODULES if any(within(n, p) for p in PURE_PACKAGES)]
    return sorted(names + [n for n in PURE_MODULES if n in MODULES])


def violations_in_pure(name: str) -> list[str]:
    """Forbidden imports made by `name`, or by any twload module it imports, with the chain.

    A pure module imports no adapter and no I/O itself. A twload module it imports (results.py,
    the run folder, is file I/O) is held to the layering only: it brings in no adapter either.
    """
    out = []
    for module, by in twload_closure(name).items():
        forbidden_here = ADAPTERS + IO if module == name or module in pure_modules() else ADAPTERS
        for imported, _ in (eager_imports_of(module) if module == ROOT and name != ROOT else imports_of(module)):
            if module == ROOT and imported in ROOT_EAGER:  # a docstring, no code (see ROOT_EAGER)
                continue
            for forbidden in forbidden_here:
                if within(imported, forbidden):
                    chain = f" (reached through {by})" if module != name else ""
                    out.append(f"{module} imports {imported}{chain}")
    return out


def test_the_pure_modules_are_found():
    pure = pure_modules()
    for expected in ("twload.plan.model", "twload.plan.parse", "twload.plan.schedule", "twload.sim.model",
                     "twload.ports.budget", "twload.doctor.rules", "twload.report.text", "twload.ports.facts",
                     "twload.ports.timewait", "twload.watch.rows"):
        assert expected in pure


@pytest.mark.parametrize("name", pure_modules())
def test_pure_module_imports_no_io_and_no_adapter(name):
    assert violations_in_pure(name) == []


def test_only_the_command_line_imports_the_command_line():
    offenders = [
        f"{name} imports {imported}"
        for name in MODULES
        if not within(name, "twload.cli") and name != "twload.__main__"  # `python -m twload` starts the cli
        for imported, _ in imports_of(name)
        if within(imported, "twload.cli")
    ]
    assert offenders == []


def test_only_the_command_line_and_the_root_package_import_the_api():
    """api/ is what a Python user calls and what the commands call: it stands on the rooms, under cli/."""
    offenders = [f"{name} imports {imported}" for name in MODULES
                 if not any(within(name, top) for top in ("twload.cli", "twload.api")) and name != ROOT
                 for imported, _ in imports_of(name) if within(imported, "twload.api")]
    assert offenders == []


def test_the_engine_never_imports_the_command_line():
    offenders = [f"{name} imports {imported}" for name in MODULES if within(name, "twload.engine")
                 for imported, _ in imports_of(name) if within(imported, "twload.cli")]
    assert offenders == []


def test_kernel_is_the_floor_under_engine_doctor_lab_and_cli():
    """kernel/ is the adapters over the host's network stack (sysctls, sock_diag, /proc, TCP_INFO, SO_LINGER,
    name resolution): of twload it takes only the plain values it fills in, the plan's Target and the
    ports' KernelFacts, so every room that does I/O can stand on it."""
    below = ("twload.kernel", "twload.plan", "twload.ports")
    offenders = [f"{name} imports {imported}" for name in MODULES if within(name, "twload.kernel")
                 for imported, _ in imports_of(name)
                 if within(imported, "twload") and not any(within(imported, b) for b in below)]
    assert offenders == []


def test_the_doctor_and_the_engine_share_only_what_is_below_both():
    """engine/ (the pre-flight) reasons with the doctor's pure rules; the doctor's probe takes nothing from
    the engine: what both need (SO_LINGER's reset, the port rules) is in kernel/ and ports/."""
    offenders = [f"{name} imports {imported}" for name in MODULES if within(name, "twload.doctor")
                 for imported, _ in imports_of(name) if within(imported, "twload.engine")]
    assert offenders == []


# The modules that stand at the top of the package, in no room: a run's numbers (metrics) and its folder
# (results), written by the engine and the Dask shards and read by the reports and the command line, and
# the pass/fail thresholds, parsed with the plan and judged over the summary. Any other module has a room.
LOOSE = {"twload.metrics", "twload.results", "twload.thresholds"}


def test_at_most_three_modules_stand_loose_at_the_top():
    loose = {name for name, path in MODULES.items()
             if path.parent == PACKAGE and path.name not in ("__init__.py", "__main__.py")}
    assert loose == LOOSE


def test_the_live_room_is_fed_through_the_supervisors_hooks():
    """live/ (the full-screen view, the metrics endpoint) gets the run's numbers from the supervisor's hooks
    (on_progress, on_second) as plain values: it imports none of the rooms that run the load or read the host,
    so the local supervisor and the Dask coordinator can both feed it."""
    allowed = ("twload.live", "twload.metrics", "twload.plan")
    offenders = [f"{name} imports {imported}" for name in MODULES if within(name, "twload.live")
                 for imported, _ in imports_of(name)
                 if within(imported, "twload") and not any(within(imported, a) for a in allowed)]
    assert offenders == []


def test_reports_read_the_run_folder_not_the_live_system():
    adapters = (*ADAPTERS, "twload.doctor")
    offenders = [f"{name} imports {imported}" for name in MODULES if within(name, "twload.report")
                 for imported, _ in imports_of(name) if any(within(imported, a) for a in adapters)]
    assert offenders == []


# -- the reader itself: each way of importing is seen ------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ("import socket", "socket"),
    ("import asyncio.events", "asyncio.events"),
    ("def f():\n    from ssl import create_default_context", "ssl"),
    ("from ..engine import supervisor", "twload.engine"),
    ("from ..kernel.sysctl import gather", "twload.kernel.sysctl"),
    ("from twload import cli", "twload.cli"),
    ("import importlib\nimportlib.import_module('twload.lab.topology')", "twload.lab.topology"),
])
def test_every_form_of_import_is_read(source, expected):
    assert expected in [imported for imported, _ in imports_of("twload.plan.model", source)]


def test_plan_takes_a_url_apart_and_leaves_resolving_it_to_an_adapter():
    """Name resolution is I/O (getaddrinfo reads /etc/hosts, asks DNS): plan.parse imports nothing of socket."""
    assert [imported for imported, _ in imports_of("twload.plan.parse") if within(imported, "socket")] == []
    assert violations_in_pure("twload.plan.parse") == []


# -- no circle: no two modules import each other, through any number of others ---------------

def twload_edges(name: str) -> set[str]:
    """The twload modules `name` imports (a package handing on its own modules is not counted: that is
    how a package is made, and the command line's registers its commands so)."""
    return {imported for imported, _ in imports_of(name)
            if imported in MODULES and imported != name and not (is_package(name) and within(imported, name))}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one node (Tarjan), each sorted: [] when there is none."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert circles({name: twload_edges(name) for name in MODULES}) == []


def test_a_circle_is_found_however_long():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def room(name: str) -> str:
    """A module's room: its folder under twload, or the module itself at the top."""
    return ".".join(name.split(".")[:2])


def test_no_room_imports_one_that_imports_it_back():
    """Between rooms (folders) the arrows all run one way, down: an import back up would make two rooms one."""
    edges: dict[str, set[str]] = {}
    for name in MODULES:
        edges.setdefault(room(name), set()).update(room(m) for m in twload_edges(name) if room(m) != room(name))
    edges.pop("twload", None)  # the package itself: its __init__ holds the version and imports nothing
    assert circles(edges) == []
