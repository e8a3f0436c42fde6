"""Network namespaces, veth pairs, addresses and per-namespace sysctls, built with pyroute2.

Everything created here is named with the `twl-` prefix and removed on every exit
path (context manager, atexit, and `clean()` for leftovers of a crash). Addresses
are private addresses that exist only inside these namespaces.

A lab owns its namespaces: their names carry the owner's PID (`twl-<pid>-<tag>-<role>`),
and `clean()` removes only those whose owner is gone, never a running lab's. Namespaces
are opened without O_CREAT, so one that vanished is an error rather than a new empty
namespace of the same name (pyroute2's NetNS creates by default), and veth ends are
created directly inside their namespaces, never in the host's.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from twload.serve.embedded import read_first_line

PREFIX = "twl-"
SERVE_START_TIMEOUT_S = 30.0
CREATED: set[str] = set()  # every namespace this process made (removed ones included)


class LabError(RuntimeError):
    """The lab cannot run here; the message says why."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veth pairs, per-namespace sysctls)")


def _pyroute2():
    try:
        from pyroute2 import IPRoute, NetNS, netns
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise LabError(f"pyroute2 is not installed: {exc}") from None
    return IPRoute, NetNS, netns


def open_netns(name: str):
    """An existing namespace (flags=0: never created here); a vanished one is a LabError."""
    _, NetNS, _ = _pyroute2()
    try:
        return NetNS(name, flags=0)
    except FileNotFoundError:
        raise LabError(f"network namespace {name} vanished while the lab was using it") from None


def owner_of(name: str) -> int | None:
    """The PID in `twl-<pid>-...`, or None for a name without one (an older lab's)."""
    head = name[len(PREFIX):].split("-", 1)[0]
    return int(head) if name.startswith(PREFIX) and head.isdigit() else None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@dataclass
class Host:
    """One namespace with one address on its veth end."""

    netns: str
    address: str

    def exec_args(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args]

    def run(self, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_args(*args), capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.exec_args(*args), **kw)

    def twload(self, *args: str) -> list[str]:
        return self.exec_args(sys.executable, "-m", "twload", *args)

    def sysctl(self, name: str, value: str | int) -> None:
        """Write a sysctl inside this namespace only (/proc/sys/net shows the opener's namespace).

        An argv and stdin, never a shell: the value reaches the kernel as data, whatever it holds."""
        proc = self.run("tee", sysctl_file(name), input=f"{value}\n")  # tee echoes it to the captured stdout
        if proc.returncode != 0:
            raise LabError(f"cannot set {name}={value!r} in {self.netns}: {proc.stderr.strip()}")

    def read_sysctl(self, name: str) -> str:
        return self.run("cat", sysctl_file(name)).stdout.strip()


SYSCTL_NAME = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)+")


def sysctl_file(name: str) -> str:
    """/proc/sys/<name with dots as slashes>; a name that could lead elsewhere ("/", "..") is refused."""
    if not SYSCTL_NAME.fullmatch(name):
        raise LabError(f"not a sysctl name: {name!r}")
    return "/proc/sys/" + name.replace(".", "/")


class Lab:
    """A set of namespaces joined by veth pairs. Use as a context manager: everything is removed."""

    def __init__(self, tag: str | None = None) -> None:
        require_root()
        self.tag = tag or secrets.token_hex(3)
        self.names: list[str] = []
        self.links = 0
        self.hosts: dict[str, Host] = {}
        self.processes: list[subprocess.Popen] = []
        self.url: str | None = None  # the entry point, for topologies that have one (lb)
        # pyroute2 forks helper children (netns.create, NetNS sockets) that inherit this object,
        # its atexit hook and the stack around it: only the owner may tear the lab down
        self.owner = os.getpid()
        atexit.register(self.close)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def namespace(self, role: str) -> str:
        _, _, netns = _pyroute2()
        name = f"{PREFIX}{os.getpid()}-{self.tag}-{role}"  # the owner's PID: clean() spares a live lab
        netns.create(name)
        CREATED.add(name)
        self.names.append(name)
        with open_netns(name) as ns:
            ns.link("set", index=_index(ns, "lo", name), state="up")
        return name

    def link(self, a: str, b: str) -> tuple[str, str]:
        """A veth pair between namespaces a and b on 10.250.<n>.0/24 (.1 on a, .2 on b)."""
        self.links += 1
        n = self.links
        ifa, ifb = f"{PREFIX}{self.tag}{n}a", f"{PREFIX}{self.tag}{n}b"
        addresses = (f"10.250.{n}.1", f"10.250.{n}.2")
        with open_netns(a) as ns:  # made in a, its peer in b: the host's namespace never sees them
            ns.link("add", ifname=ifa, kind="veth", peer={"ifname": ifb, "net_ns_fd": f"/var/run/netns/{b}"})
        for name, ifname, address in ((a, ifa, addresses[0]), (b, ifb, addresses[1])):
            with open_netns(name) as ns:
                index = _index(ns, ifname, name)
                ns.addr("add", index=index, address=address, prefixlen=24)
                ns.link("set", index=index, state="up")
        return addresses

    def add_address(self, name: str, address: str, like: str) -> None:
        """One more address on the interface that carries `like` (for source-address scenarios)."""
        with open_netns(name) as ns:
            index = next(a["index"] for a in ns.get_addr() if a.get_attr("IFA_ADDRESS") == like)
            ns.addr("add", index=index, address=address, prefixlen=24)

    def default_route(self, name: str, via: str) -> None:
        with open_netns(name) as ns:
            ns.route("add", dst="0.0.0.0/0", gateway=via)

    def scratch(self, what: str) -> str:
        """A path for a temporary folder of this lab (not made here): named like its namespaces, with the
        owner's PID, so close() removes it and `clean` removes it once the owner is gone."""
        return os.path.join(tempfile.gettempdir(), f"{PREFIX}{self.owner}-{self.tag}-{what}-{time.monotonic_ns()}")

    def host(self, role: str, netns_name: str, address: str) -> Host:
        self.hosts[role] = Host(netns_name, address)
        return self.hosts[role]

    def start(self, host: Host, *args: str, **kw) -> subprocess.Popen:
        """A long-running process in a namespace, stopped by PID when the lab closes."""
        proc = host.popen(*args, **kw)
        self.processes.append(proc)
        return proc

    def serve(self, host: Host, *args: str) -> str:
        """`twload serve` in `host`; returns its URL."""
        proc = self.start(host, sys.executable, "-m", "twload", "serve", "--host", host.address, "--port", "0",
                          *args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = read_first_line(proc.stdout, SERVE_START_TIMEOUT_S)  # bounded: a stuck child is an error
        if "listening on" not in line:
            raise LabError(f"twload serve did not start in {host.netns}: {line.strip() or 'no output'}")
        return line.split("listening on ", 1)[1].split()[0]

    def close(self) -> None:
        if os.getpid() != self.owner:
            return
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()
        remove(self.names)  # removing a namespace removes its veth ends and nft tables
        self.names.clear()
        remove_folders(folders(f"{PREFIX}{self.owner}-{self.tag}-"))


def scratch(host: Host, what: str) -> str:
    """A path for a temporary folder of the lab `host` belongs to (not made here): its namespace's name
    leads it (the owner's PID, the lab's tag), so the lab's close() and `clean` find it."""
    return os.path.join(tempfile.gettempdir(), f"{host.netns}-{what}-{time.monotonic_ns()}")


@dataclass
class Direct:
    """client ns <-veth-> server ns."""

    client: Host
    server: Host
    lab: Lab

    def close(self) -> None:
        self.lab.close()


def _index(ns, ifname: str, netns_name: str) -> int:
    found = ns.link_lookup(ifname=ifname)
    if not found:
        raise LabError(f"interface {ifname} is missing from network namespace {netns_name}")
    return found[0]


def remove(names: list[str]) -> None:
    _, _, netns = _pyroute2()
    for name in names:
        try:
            netns.remove(name)
        except OSError:
            pass


def direct(tag: str | None = None) -> Direct:
    lab = Lab(tag)
    try:
        c, s = lab.namespace("c"), lab.namespace("s")
        a, b = lab.link(c, s)
        return Direct(lab.host("client", c, a), lab.host("server", s, b), lab)
    except Exception:
        lab.close()
        raise


def nat(clients: int, nat_ports: tuple[int, int] | None = None, tag: str | None = None) -> Lab:
    """N client namespaces -> a NAT gateway (nftables masquerade, one public address) -> server."""
    lab = Lab(tag)
    try:
        gw = lab.namespace("gw")
        server = lab.namespace("s")
        public, server_addr = lab.link(gw, server)
        lab.host("server", server, server_addr)
        lab.host("gateway", gw, public)
        for i in range(clients):
            name = lab.namespace(f"c{i + 1}")
            gw_side, client_addr = lab.link(gw, name)
            lab.default_route(name, gw_side)
            lab.host(f"client{i + 1}", name, client_addr)
        gateway = lab.hosts["gateway"]
        gateway.sysctl("net.ipv4.ip_forward", 1)
        ports = f" to :{nat_ports[0]}-{nat_ports[1]}" if nat_ports else ""
        rules = (f"table ip {PREFIX}nat {{\n  chain post {{\n"
                 "    type nat hook postrouting priority srcnat; policy accept;\n"
                 f"    ip daddr {server_addr} meta l4proto tcp masquerade{ports}\n  }}\n}}\n")
        proc = gateway.run("nft", "-f", "-", input=rules)
        if proc.returncode != 0:
            raise LabError(f"nft failed in {gw}: {proc.stderr.strip()}")
        return lab
    except Exception:
        lab.close()
        raise


# Run as `python -c WAIT_FOR_PORT HOST PORT`: the code is fixed, the values come in as argv.
WAIT_FOR_PORT = """
import socket, struct, sys, time
for _ in range(200):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: leave no TIME_WAIT
        s.close()
        break
    except OSError:
        time.sleep(0.05)
"""

BALANCERS = ("nginx", "haproxy")


@dataclass
class NginxProcess:
    """nginx started by the lab in one namespace: its config and logs live in `workdir` (the lab's)."""

    host: Host
    workdir: str
    proc: subprocess.Popen

    @property
    def access_log(self) -> str:
        return f"{self.workdir}/access.log"

    def access_lines(self) -> int:
        try:
            with open(self.access_log) as fh:
                return sum(1 for _ in fh)
        except FileNotFoundError:
            return 0

    def quit(self) -> None:
        """Graceful stop (SIGQUIT): nginx finishes the requests it read, logs them, closes its listener."""
        from twload.lab.nginx import quit_gracefully

        quit_gracefully(self.proc)


def start_nginx(lab: Lab, host: Host, server: str, http: str = "access_log off;",
                again: NginxProcess | None = None) -> NginxProcess:
    """nginx in `host`'s namespace with `server` as its server block; `again`: the same config restarted
    (its access log goes on). The caller waits for its port (wait_listening)."""
    from twload.lab.nginx import NOT_INSTALLED, find_nginx, nginx_config

    nginx = find_nginx()
    if nginx is None:
        raise LabError(NOT_INSTALLED)
    if again is None:
        workdir = tempfile.mkdtemp(prefix=f"{PREFIX}{lab.owner}-{lab.tag}-nginx-")  # the lab's, like its namespaces
        with open(f"{workdir}/nginx.conf", "w") as fh:
            fh.write(nginx_config(workdir, server, http=http.replace("{workdir}", workdir)))
    else:
        workdir = again.workdir
    proc = lab.start(host, nginx, "-p", workdir, "-c", f"{workdir}/nginx.conf",
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return NginxProcess(host, workdir, proc)


def _start_nginx(lab: Lab, balancer: Host, listen: str, backend_url: str) -> None:
    start_nginx(lab, balancer, f"listen {listen}:80 backlog=4096; "
                               f"location / {{ proxy_pass {backend_url.rstrip('/')}; }}")


def _start_haproxy(lab: Lab, balancer: Host, listen: str, backend_url: str) -> None:
    from twload.lab.haproxy import find_haproxy, haproxy_config

    haproxy = find_haproxy()
    if haproxy is None:
        raise LabError("HAProxy is not installed (Debian package haproxy; `make test` installs it as root)")
    workdir = tempfile.mkdtemp(prefix=f"{PREFIX}{lab.owner}-{lab.tag}-haproxy-")
    conf = f"{workdir}/haproxy.cfg"
    with open(conf, "w") as fh:
        fh.write(haproxy_config(listen, 80, backend_url.rstrip("/").split("://", 1)[1]))
    # -db: in the foreground, not a daemon: the lab stops it by its PID
    lab.start(balancer, haproxy, "-db", "-f", conf, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_listening(client: Host, address: str, port: int) -> None:
    """From `client`'s namespace, until address:port accepts a connection (10 s at most); each try ends
    with a reset, so it leaves no TIME_WAIT and sends no request."""
    client.run(sys.executable, "-c", WAIT_FOR_PORT, address, str(port))


def lb(tag: str | None = None, balancer: str = "nginx") -> Lab:
    """client ns -> load balancer ns (nginx or HAProxy, tcp_timestamps=0, as cloud LBs do) -> backend ns
    (twload serve). The balancer listens on port 80 of the load balancer's front address (lab.url)."""
    start = {"nginx": _start_nginx, "haproxy": _start_haproxy}.get(balancer)
    if start is None:
        raise LabError(f"unknown load balancer {balancer!r} (one of {', '.join(BALANCERS)})")
    lab = Lab(tag)
    try:
        c, lbn, b = lab.namespace("c"), lab.namespace("lb"), lab.namespace("b")
        lb_front, client_addr = lab.link(lbn, c)
        lb_back, backend_addr = lab.link(lbn, b)
        client = lab.host("client", c, client_addr)
        front = lab.host("lb", lbn, lb_front)
        backend = lab.host("backend", b, backend_addr)
        front.sysctl("net.ipv4.tcp_timestamps", 0)
        start(lab, front, lb_front, lab.serve(backend))
        wait_listening(client, lb_front, 80)
        lab.url = f"http://{lb_front}/"
        return lab
    except Exception:
        lab.close()
        raise


def leftovers(mine_only: bool = False) -> list[str]:
    """`twl-` namespaces that exist now (with mine_only: of those this process created)."""
    _, _, netns = _pyroute2()
    return [name for name in netns.listnetns()
            if name.startswith(PREFIX) and (not mine_only or name in CREATED)]


def orphans() -> list[str]:
    """`twl-<pid>-` namespaces whose owner process is gone: left by a lab that crashed.

    A name without an owner PID is not counted: it may belong to a running lab of an
    older twload, and cleaning never touches a running lab's namespaces."""
    return [name for name in leftovers() if (owner := owner_of(name)) is not None and not is_alive(owner)]


NETNS_DIR = "/var/run/netns"  # where `ip netns` and pyroute2 bind-mount named namespaces
END_WAIT_S = 5.0  # after SIGTERM, before SIGKILL; and after SIGKILL, before giving up


def netns_ident(name: str) -> str | None:
    """The namespace as /proc/<pid>/ns/net names it ("net:[<inode>]"), or None if the name is gone."""
    try:
        return f"net:[{os.stat(os.path.join(NETNS_DIR, name)).st_ino}]"
    except OSError:
        return None


def in_netns(pid: int, ident: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == ident
    except OSError:  # gone, or a zombie (its namespaces are released at exit)
        return False


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _wait_exited(pidfds: dict[int, int], timeout: float) -> dict[int, int]:
    """Wait until each process has exited (its pidfd turns readable) or timeout; those still running."""
    left = dict(pidfds)
    deadline = time.monotonic() + timeout
    poller = select.poll()
    for fd in left.values():
        poller.register(fd, select.POLLIN)
    while left and (remaining := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(remaining * 1000):
            poller.unregister(fd)
            left = {pid: f for pid, f in left.items() if f != fd}
    return left


def end_processes(name: str) -> list[tuple[int, str]]:
    """End every process inside the namespace `name` (a dead lab's nginx, twload serve, runs): SIGTERM,
    then SIGKILL after END_WAIT_S. Each is signalled through a pidfd opened BEFORE it is checked to be
    inside the namespace, so a PID reused meanwhile by another process is never signalled (the pidfd
    then names the process that exited)."""
    ident = netns_ident(name)
    ended: list[tuple[int, str]] = []
    if ident is None:
        return ended
    for _ in range(3):  # a process that forked while the first round was ending the others
        pidfds: dict[int, int] = {}
        try:
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or not in_netns(int(entry), ident):
                    continue
                pid = int(entry)
                try:
                    fd = os.pidfd_open(pid)
                except OSError:
                    continue
                if in_netns(pid, ident):  # checked with the pidfd held: this fd is that process
                    pidfds[pid] = fd
                    ended.append((pid, comm(pid)))
                else:
                    os.close(fd)
            if not pidfds:
                break
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for fd in pidfds.values():
                    try:
                        signal.pidfd_send_signal(fd, sig)
                    except ProcessLookupError:
                        pass
                still = _wait_exited(pidfds, END_WAIT_S)
                for pid in set(pidfds) - set(still):
                    os.close(pidfds.pop(pid))
                if not pidfds:
                    break
        finally:
            for fd in pidfds.values():
                os.close(fd)
    return ended


def folders(prefix: str) -> list[str]:
    """Lab temporary folders whose name starts with prefix: real folders this user owns, never a link
    (the temp folder is everyone's: a link planted there under a lab's name is not followed)."""
    base = tempfile.gettempdir()
    found = []
    for entry in os.listdir(base):
        path = os.path.join(base, entry)
        if entry.startswith(prefix):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
                found.append(path)
    return sorted(found)


def remove_folders(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def dead_owners(names: list[str]) -> set[int]:
    """The owner PIDs among `twl-<pid>-...` names that no process holds now."""
    return {owner for name in names if (owner := owner_of(name)) is not None and not is_alive(owner)}


@dataclass
class Cleaned:
    namespaces: list[str]
    processes: list[tuple[int, str]]  # (PID, command name) ended
    folders: list[str]


def clean() -> Cleaned:
    """Remove what labs that are no longer running (left by a crash) left: first the processes inside
    their namespaces (which would keep a removed namespace alive, and its server listening), then the
    namespaces and the temporary folders. A running lab's are never looked into."""
    # One look at who is alive, before anything is done: ending processes takes seconds, and a dead
    # owner's PID may be taken by a new process meanwhile (pid_max is 32768 on many hosts). What is
    # listed now is the dead labs'; a new lab with a reused PID makes its names later, unlisted here.
    names, paths = leftovers(), folders(PREFIX)
    dead = dead_owners(names + [os.path.basename(p) for p in paths])
    names = [name for name in names if owner_of(name) in dead]
    paths = [path for path in paths if owner_of(os.path.basename(path)) in dead]
    processes = [p for name in names for p in end_processes(name)]
    remove(names)
    remove_folders(paths)
    return Cleaned(names, processes, paths)
