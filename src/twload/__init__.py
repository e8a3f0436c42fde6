"""twload: a load generator and TCP diagnostics kit for short-connection load tests.

The Python API (docs/api.md): `twload.run()` (`await twload.arun()` in async code), `twload.doctor()`,
`twload.simulate()`, `twload.read_run()`, `twload.serve()`, and the records and errors they use. They
load on first use (PEP 562 `__getattr__`): importing one of twload's modules (a worker process does, for
instance) does not import the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Two rooms share their names with the API's functions: `twload.doctor` and `twload.serve`. Python sets a
# package's attribute to a subpackage when that is first imported, which would replace the function; so
# they are imported here first (each __init__ holds a docstring only) and the functions below are set after.
importlib.import_module("twload.doctor")
importlib.import_module("twload.serve")

__version__ = "0.1.0"

__all__ = [
    "Diagnosis", "FirstError", "Percentiles", "PlanError", "Run", "RunCancelled", "RunError", "RunFolderError",
    "RunInterrupted", "SimResult", "Summary", "__version__", "arun", "doctor", "read_run", "run", "serve", "simulate",
]

if TYPE_CHECKING:  # what a type checker and an editor see; at run time __getattr__ below loads them
    from contextlib import AbstractContextManager

    from twload.api import (
        Diagnosis,
        FirstError,
        Percentiles,
        PlanError,
        Run,
        RunCancelled,
        RunError,
        RunFolderError,
        RunInterrupted,
        SimResult,
        Summary,
        arun,
        read_run,
        run,
        simulate,
    )


def doctor(url: str | None = None, *, close: str = "fin", rate: float | None = None, connections: int = 50,
           source: str | None = None) -> Diagnosis:
    """`twload doctor [URL] --close ... --rate ... -c ... --source ...`: the diagnosis of a planned run
    (twload.api.diagnosis.doctor)."""
    from twload.api.diagnosis import doctor as diagnose

    return diagnose(url, close=close, rate=rate, connections=connections, source=source)


def serve(*, host: str = "127.0.0.1", port: int = 0, body_size: int = 12, delay: str | None = None,
          close_after: int = 0, workers: int = 1, http2: bool = False) -> AbstractContextManager[str]:
    """`twload serve` in a child process for the `with` block: its URL (twload.api.target.serve)."""
    from twload.api.target import serve as embedded

    return embedded(host=host, port=port, body_size=body_size, delay=delay, close_after=close_after,
                    workers=workers, http2=http2)


def __getattr__(name: str) -> Any:
    if name in __all__:
        from twload import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'twload' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
