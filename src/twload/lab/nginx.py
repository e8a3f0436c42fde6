"""nginx from Debian's package as a real peer: where it is, and a self-contained config.

Used by the lab's load balancer, the tests' peer and the benchmarks' target. Every
path nginx writes to lives in one work folder, so it runs unprivileged-style from a
temp dir next to whatever else runs on the host.
"""

from __future__ import annotations

import os
import shutil


def find_nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def nginx_config(workdir: str, server: str, workers: int = 1, connections: int = 4096,
                 http: str = "access_log off;", main: str = "", error_level: str = "warn") -> str:
    """A whole nginx.conf: `server` is the server block's body, `http` and `main` extra directives.

    The temp paths are a folder inside workdir: nginx (as root) gives the folders it is told to use for
    them to its worker user, and workdir itself stays its maker's (the lab removes only its own folders)."""
    return f"""
worker_processes {workers};
{main}
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log {error_level};
events {{ worker_connections {connections}; }}
http {{
    {http}
    client_body_temp_path {workdir}/temp;
    proxy_temp_path {workdir}/temp;
    fastcgi_temp_path {workdir}/temp;
    uwsgi_temp_path {workdir}/temp;
    scgi_temp_path {workdir}/temp;
    server {{
        {server}
    }}
}}
"""
