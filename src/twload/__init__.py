"""twload: a load generator and TCP diagnostics kit for short-connection load tests.

The Python API (docs/api.md): `twload.run()`, `twload.doctor()`, `twload.simulate()`, `twload.read_run()`,
`twload.serve()`, and the records and errors they use. They load on first use (PEP 562 `__getattr__`):
importing one of twload's modules (a worker process does, for instance) does not import the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Diagnosis", "FirstError", "Percentiles", "PlanError", "Run", "RunError", "RunFolderError", "RunInterrupted",
    "SimResult", "Summary", "__version__", "doctor", "read_run", "run", "serve", "simulate",
]

if TYPE_CHECKING:  # what a type checker and an editor see; at run time __getattr__ below loads them
    from twload.api import (
        Diagnosis,
        FirstError,
        Percentiles,
        PlanError,
        Run,
        RunError,
        RunFolderError,
        RunInterrupted,
        SimResult,
        Summary,
        doctor,
        read_run,
        run,
        serve,
        simulate,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from twload import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'twload' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
