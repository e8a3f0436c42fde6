"""nginx from Debian's package as a real peer: where it is, and a self-contained config.

Used by the lab's load balancer, the tests' peer and the benchmarks' target. Every
path nginx writes to lives in one work folder, so it runs unprivileged-style from a
temp dir next to whatever else runs on the host. LocalNginx runs one on this host's
loopback (the tests' and the benchmarks'); the lab starts its own in a namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from twload.kernel.linger import LINGER_RST

NOT_INSTALLED = "nginx is not installed (Debian package nginx; `make test` installs it as root)"


class NginxError(Exception):
    """nginx is not installed, or did not start listening."""


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


def quit_gracefully(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGQUIT: nginx finishes the requests it read, writes their log lines and exits; killed if it
    has not within timeout_s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalNginx:
    """nginx on 127.0.0.1 of this host, its config, logs and temp files in a folder of its own (`dir`).

    Two steps, because the config names the folder and the port: LocalNginx() makes the one and
    picks the other (any free port unless `port` is given), then start(config) writes nginx.conf,
    starts nginx (pinned to `cpus` by taskset when given) and returns once the port accepts."""

    START_TIMEOUT_S = 10.0

    def __init__(self, prefix: str = "twload-nginx-", port: int | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = port if port is not None else _free_port()
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def start(self, config: str, scheme: str = "http", cpus: str | None = None) -> None:
        nginx = find_nginx()
        if nginx is None:
            self.remove()
            raise NginxError(NOT_INSTALLED)
        conf = self.dir / "nginx.conf"
        conf.write_text(config)
        pin = ["taskset", "-c", cpus] if cpus else []
        self.proc = subprocess.Popen([*pin, nginx, "-p", str(self.dir), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_listening(self.proc)
        self.url = f"{scheme}://127.0.0.1:{self.port}/"

    def _wait_listening(self, proc: subprocess.Popen) -> None:
        """Until the port accepts a connection; each try ends with a reset, so it leaves no TIME_WAIT
        (which tests that count TIME_WAIT by port would see) and sends no request."""
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while True:
            try:
                probe = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
            except OSError:
                if proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self.stop()
                said = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                raise NginxError(f"nginx did not start on 127.0.0.1:{self.port}: {said or 'no output'}") from None
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            probe.close()
            return

    def quit(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (quit_gracefully); the folder and its logs stay."""
        if self.proc is not None:
            quit_gracefully(self.proc, timeout_s)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self) -> None:
        self.quit()
        self.remove()
