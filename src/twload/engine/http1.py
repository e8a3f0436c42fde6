"""HTTP/1.1 on the wire: request bytes built once per run, response framing helpers.

Parsing itself is httptools (llhttp); this module only adds what llhttp does not
expose: whether a response head declared its own length, which decides what an
early EOF means.
"""

from __future__ import annotations

import re

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


_LENGTH_FIELD = re.compile(rb"\r\ncontent-length\s*:", re.IGNORECASE)
_CODINGS = re.compile(rb"\r\ntransfer-encoding\s*:([^\r\n]*)", re.IGNORECASE)


def head_declares_length(head: bytes) -> bool:
    """True when the response head carries Content-Length, or Transfer-Encoding with chunked last.

    Such a body ends by its own framing, so an EOF before the end is a truncated
    response. Otherwise the body is delimited by the server's close (RFC 9112 section
    6.3: rule 4 when another coding comes last, rule 8 without either field) and EOF
    completes it.
    """
    end = head.find(b"\r\n\r\n")
    head = head if end < 0 else head[: end + 2]
    if _LENGTH_FIELD.search(head):
        return True
    codings = _CODINGS.findall(head)
    return bool(codings) and codings[-1].rsplit(b",", 1)[-1].strip().lower() == b"chunked"


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[^\r\n]*", re.IGNORECASE)  # no space before the colon (RFC 9112 5.1)
_TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)


def declares_both_framings(head: bytes) -> bool:
    """True when a complete head carries both Transfer-Encoding and Content-Length."""
    return bool(_CONTENT_LENGTH.search(head) and _TRANSFER_ENCODING.search(head))


def without_content_length(head: bytes) -> bytes:
    """The head without its Content-Length fields (a field value holds no CR or LF: RFC 9110 5.5)."""
    return _CONTENT_LENGTH.sub(b"", head)


def head_declares_transfer_encoding(head: bytes) -> bool:
    """True when a complete head carries Transfer-Encoding (for an HTTP/1.0 response: RFC 9112 6.1)."""
    return bool(_TRANSFER_ENCODING.search(head))
