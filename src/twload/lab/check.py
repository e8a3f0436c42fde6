"""A lab Check: one claim measured on the real kernel, its verdict, and what the simulator predicts.

Every scenario returns Checks (scenarios.py, and dask_scaleout.py for the Dask one); they live
apart so that each scenario module imports them and none imports another for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Check:
    claim: str
    expected: str
    measured: str
    passed: bool
    sim: str | None = None  # what the simulator (6.x profile, same parameters) predicts
    sim_agrees: bool | None = None

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"

    def as_dict(self) -> dict:
        return asdict(self) | {"verdict": self.verdict}
