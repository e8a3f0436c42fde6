"""HTTP/2 (--http2) on the compiled core: the request's header block as the core takes it (what
summary.json says about the run's streams and ports is ports/http2.py's)."""

from __future__ import annotations

from twload.engine.http1 import USER_AGENT
from twload.plan import Plan

# Connection-specific fields have no place in HTTP/2 (RFC 9113 section 8.2.2); Host becomes :authority.
DROPPED = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "te"}


def header_block(plan: Plan) -> bytes:
    """The request's fields as name\\0value\\0 pairs: the pseudo-fields first (RFC 9113 section
    8.3.1), names in lower case (section 8.2.2)."""
    names = {name.lower() for name, _ in plan.headers}
    authority = next((v for n, v in plan.headers if n.lower() == "host"), plan.target.host_header)
    pairs = [(":method", plan.method), (":scheme", plan.target.scheme), (":authority", authority),
             (":path", plan.target.path)]
    if "user-agent" not in names:
        pairs.append(("user-agent", USER_AGENT))
    pairs.extend((name.lower(), value) for name, value in plan.headers if name.lower() not in DROPPED)
    if plan.body and "content-length" not in names:
        pairs.append(("content-length", str(len(plan.body))))
    return b"".join(f"{name}\0{value}\0".encode("latin-1") for name, value in pairs)
