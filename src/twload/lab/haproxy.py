"""HAProxy from Debian's package as the lab's second load balancer: where it is, and a self-contained config.

The config is complete (no /etc/haproxy): HTTP mode, one frontend, one backend, and HAProxy's
defaults otherwise (keep-alive on both sides), run in the foreground (`-db`) so the lab stops it
by PID like its other processes.
"""

from __future__ import annotations

import os
import shutil


def find_haproxy() -> str | None:
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)


def haproxy_config(listen: str, port: int, backend: str, connections: int = 4096) -> str:
    """A whole haproxy.cfg: listens on listen:port (backlog as nginx's lab config), forwards to `backend`
    (host:port)."""
    return f"""
global
    maxconn {connections}
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend lab
    bind {listen}:{port} backlog {connections}
    default_backend servers
backend servers
    server backend {backend}
"""
