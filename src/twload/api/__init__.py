"""The Python API: `import twload` runs, diagnoses and simulates, and returns typed results.

What is listed in `__all__` is public (re-exported by `twload`, typed, checked with mypy --strict);
the modules here are the API's workings, and the command line's commands call them too:
`running.execute` is how both `twload run` and `twload.run()` run a plan.
"""

from twload.api.asynchronous import RunCancelled, arun
from twload.api.diagnosis import Diagnosis, doctor
from twload.api.folders import Run, read_run
from twload.api.runs import RunInterrupted, run
from twload.api.simulation import SimResult, simulate
from twload.api.target import serve
from twload.engine.supervisor import RunError
from twload.merge.summary import FirstError, Percentiles, Summary
from twload.plan import PlanError
from twload.results import RunFolderError

__all__ = [
    "Diagnosis", "FirstError", "Percentiles", "PlanError", "Run", "RunCancelled", "RunError", "RunFolderError",
    "RunInterrupted", "SimResult", "Summary", "arun", "doctor", "read_run", "run", "serve", "simulate",
]
