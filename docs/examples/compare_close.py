"""The same load with each close strategy, one line each: requests a second, p99, errors, and the
client's TIME_WAIT (what `--close fin` leaves behind and the others do not).

    python docs/examples/compare_close.py [URL]      # without a URL: the embedded target
"""

from __future__ import annotations

import sys

import twload

STRATEGIES = ("keepalive", "fin", "server", "rst")


def compare(url: str, requests: int = 2000) -> dict[str, twload.Summary]:
    # a number of requests, not a duration: a close that leaves TIME_WAIT holds one port per request for 60 s
    return {close: twload.run(url, close=close, connections=10, requests=requests, workers=1)
            for close in STRATEGIES}


def show(results: dict[str, twload.Summary]) -> None:
    for close, s in results.items():
        print(f"{close:<10} {s.rps:>9,.0f} req/s  p99 {s.latency_us.p99 / 1000:>7.2f} ms  "
              f"errors {s.error_count:<4} TIME_WAIT peak {s.time_wait_peak}")


def main() -> None:
    if len(sys.argv) > 1:
        show(compare(sys.argv[1]))
    else:
        with twload.serve() as url:
            show(compare(url))


if __name__ == "__main__":  # the workers are processes that import this file again: run only here
    main()
