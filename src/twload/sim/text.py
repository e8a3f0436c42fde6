"""Text for `twload simulate run` (pure: result dict in, str out)."""

from __future__ import annotations

from twload.report.wrap import wrap_lines


def render_simulation(r: dict, width: int = 80) -> str:
    p = r["params"]
    lines = [f"twload simulate {r['scenario']} — kernel {r['kernel']}, seed {p['seed']}"]
    shown = ("ports", "rate", "duration", "clients", "close", "server_timestamps", "tw_reuse", "tw_recycle", "nat")
    lines.append("  " + "  ".join(f"{k}={p[k]}" for k in shown if k in p))
    for line in r.get("trace", []):
        lines.append("  | " + line)
    lines.append(f"  connections attempted {r['attempted']}, established {r['established']}, "
                 f"failed {sum(r['failed'].values())}"
                 + (" (" + ", ".join(f"{k} {v}" for k, v in r["failed"].items()) + ")" if r["failed"] else ""))
    if r["syn_dropped"]:
        lines.append("  SYNs not answered with SYN-ACK: " + ", ".join(f"{k} {v}" for k, v in r["syn_dropped"].items()))
    if r["time_wait_peak"]:
        lines.append("  TIME_WAIT peak: " + ", ".join(f"{k} {v}" for k, v in r["time_wait_peak"].items()))
    if r["first_failure_s"] is not None:
        lines.append(f"  first failure after {r['first_failure_s']:.3f} s")
    if r["retried"]:
        lines.append(f"  {r['retried']} connections needed SYN retransmission: "
                     f"mean extra delay {r['mean_extra_delay_s']:.3f} s, max {r['max_extra_delay_s']:.3f} s")
    if r.get("tw_reused"):
        lines.append(f"  TIME_WAIT ports reused by connect(): {r['tw_reused']}")
    lines.append("  why:")
    lines.extend(f"    {line}" for line in r["explanation"])
    return "\n".join(wrap_lines(lines, width))
