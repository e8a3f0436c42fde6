"""Diagnosis at the wall, on loopback: connect failures back off, errors are named and bounded."""

from __future__ import annotations

from tests.conftest import free_port
from twload.engine.supervisor import run_to_folder
from twload.plan import Plan, parse_target


def test_a_refusing_target_gets_tens_of_connects_per_slot_not_thousands(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens: every connect is ECONNREFUSED at once
    plan = Plan(target=parse_target(url), url=url, connections=20, workers=1, duration_s=1.0)
    summary = run_to_folder(plan, tmp_path / "run")
    refused = summary["errors"]["ECONNREFUSED"]
    # 20 slots, each waiting up to 100 ms between tries: about 10 a second each after a short
    # ramp. Retrying after a fixed 1 ms gave thousands; spinning, tens of thousands.
    assert 20 <= refused <= 20 * 25
    assert summary["requests"] == 0
