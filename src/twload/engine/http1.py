"""HTTP/1.1 on the wire: the request bytes, built once per run and handed to the core.

The responses are parsed in C (engine/core/http1_parse.c).
"""

from __future__ import annotations

from twload.plan import Plan

USER_AGENT = "twload"


def build_request(plan: Plan, connection_close: bool) -> bytes:
    """The whole request, ready to write. Built once: the hot path only writes it."""
    names = {name.lower() for name, _ in plan.headers}
    lines = [f"{plan.method} {plan.target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {plan.target.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    lines.extend(f"{name}: {value}" for name, value in plan.headers)
    if plan.body and "content-length" not in names:
        lines.append(f"Content-Length: {len(plan.body)}")
    if connection_close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + plan.body
