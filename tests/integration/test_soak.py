"""benchmarks/soak.py for 2 minutes (the lead runs the hour): its invariants hold, whatever the timings.

One samples.jsonl line for every second with no gap, twload's count equal to nginx's access log and
no error, and the RSS of twload's processes without a growth trend beyond noise (the last sixth of
the run within +-5 % of the mean from 1/12 to 1/4 of it). Timings are not checked.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NGINX

# Far below the capacity: the test checks invariants, and on a busy CI host an open loop near capacity
# falls behind and times out (requests nginx answered after twload gave up: the counts then differ by
# those, as they should). The lead's hour runs at the default 80 %.
FRACTION = "0.05"
SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.soak
def test_two_minute_soak_keeps_its_invariants(tmp_path):
    if NGINX is None:
        pytest.skip("SKIPPED LOUDLY: nginx is not installed (Debian package nginx; `make test` installs it as root)")
    proc = subprocess.run([sys.executable, str(SOAK), "--minutes", "2", "--rss-every", "5", "--capacity-seconds", "5",
                           "--fraction", FRACTION, "--json", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=400)
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout)
    checks = result["checks"]
    assert checks["no_gap"]["passed"], checks["no_gap"]
    assert checks["no_gap"]["samples"] >= 120
    assert checks["exact_counts"]["passed"], checks["exact_counts"]
    assert checks["exact_counts"]["twload"] > 0
    assert checks["no_errors"]["passed"] and not checks["no_errors"]["errors"], checks["no_errors"]
    assert checks["rss_flat"]["passed"], (checks["rss_flat"], [r["total_kb"] for r in result["rss"]])
    assert len(result["rss"]) >= 20
    # every twload process is read: the run's own and its workers (spawned a moment after the start)
    assert all(any(name.startswith("twload run") for name in r["processes"]) for r in result["rss"])
    assert any(name.startswith("worker") for name in result["rss"][-1]["processes"]), result["rss"][-1]
    assert result["latency_windows"] and result["latency_windows"][0]["requests"] == checks["exact_counts"]["twload"]
    assert proc.returncode == 0
