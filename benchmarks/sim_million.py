"""`twload simulate` at scale: one million simulated connections, time and peak RSS.

Targets: under 30 s and under 500 MB peak RSS on a 2-core machine.
    python benchmarks/sim_million.py [--connections 1000000]
"""

from __future__ import annotations

import argparse
import resource
import time

from twload.sim.run import run_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1_000_000)
    args = parser.parse_args()
    rate, duration = 10_000, args.connections / 10_000
    for name in ("tw-reuse", "client-close-exhaustion", "server-close"):
        started = time.perf_counter()
        r = run_scenario(name, {"rate": str(rate), "duration": str(duration), "ports": "28232"})
        took = time.perf_counter() - started
        print(f"{name:<26} {r['attempted']:>9} connections in {took:6.2f} s "
              f"({r['attempted'] / took:,.0f}/s), established {r['established']}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB (target < 500 MB); each run < 30 s is the target")


if __name__ == "__main__":
    main()
