"""Open-loop accuracy: at 1k, 5k and 20k req/s against nginx, the achieved rate and scheduling lag.

Side by side: twload --rate, hey -q (a per-worker rate limit; Debian package hey) and,
when installed, locust with constant_throughput (pip install locust). Target: achieved
within 1 % of the target up to the rate at which the target saturates.
    python benchmarks/open_loop.py [--duration 5] [--rates 1000,5000,20000]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from vs_wrk import Nginx  # noqa: E402

HEY_WORKERS = 50


def twload(url: str, rate: int, secs: int) -> str:
    out = subprocess.run([sys.executable, "-m", "twload", "run", url, "--rate", str(rate), "-d", f"{secs}s",
                          "--json", "--out", tempfile.mkdtemp(prefix="twb-")], capture_output=True, text=True)
    s = json.loads(out.stdout)
    return (f"achieved {s['rate_achieved']:>9.1f} req/s ({100 * s['rate_achieved'] / rate:6.2f} %), "
            f"max lag {s['max_lag_us'] / 1000:7.2f} ms, p99 {s['latency_us']['p99'] / 1000:.2f} ms")


def hey(url: str, rate: int, secs: int) -> str:
    if not shutil.which("hey"):
        return "(not installed)"
    per_worker = max(1, rate // HEY_WORKERS)
    out = subprocess.run(["hey", "-z", f"{secs}s", "-c", str(HEY_WORKERS), "-q", str(per_worker), url],
                         capture_output=True, text=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    achieved = float(match.group(1)) if match else 0.0
    return f"achieved {achieved:>9.1f} req/s ({100 * achieved / rate:6.2f} %), -c {HEY_WORKERS} -q {per_worker}"


LOCUSTFILE = textwrap.dedent("""
    from locust import FastHttpUser, constant_throughput, task
    class U(FastHttpUser):
        wait_time = constant_throughput({per_user})
        @task
        def get(self):
            self.client.get("/")
""")


def locust(url: str, rate: int, secs: int) -> str:
    if not shutil.which("locust"):
        return "(not installed: pip install locust)"
    users = 100
    workdir = Path(tempfile.mkdtemp(prefix="twb-locust-"))
    (workdir / "locustfile.py").write_text(LOCUSTFILE.format(per_user=rate / users))
    subprocess.run(["locust", "-f", str(workdir / "locustfile.py"), "--headless", "-u", str(users), "-r",
                    str(users), "-t", f"{secs}s", "-H", url.rstrip("/"), "--csv", str(workdir / "r")],
                   capture_output=True, text=True)
    stats = (workdir / "r_stats.csv").read_text().splitlines()
    total = next((line for line in stats if ",Aggregated," in line), "")
    achieved = float(total.split(",")[9]) if total else 0.0
    return f"achieved {achieved:>9.1f} req/s ({100 * achieved / rate:6.2f} %), {users} users"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rates", default="1000,5000,20000")
    args = parser.parse_args()
    nginx = Nginx(workers=1, cpus=None)
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            print(f"\ntarget {rate} req/s for {args.duration}s against nginx")
            print(f"  twload  {twload(nginx.url, rate, args.duration)}")
            print(f"  hey     {hey(nginx.url, rate, args.duration)}")
            print(f"  locust  {locust(nginx.url, rate, args.duration)}")
    finally:
        nginx.stop()


if __name__ == "__main__":
    main()
