"""Issue: the pre-flight budget, the doctor and the run agree with the real kernel.

Client and server namespaces on a veth; the client's ephemeral range is narrowed to
20 ports so exhaustion comes at once (each test makes its own namespaces).
"""

import subprocess
import sys

from tests.lab.conftest import client_json, start_server

RANGE = "40000 40019"  # 20 ports


def narrow(topo, tw_reuse: int) -> None:
    topo.client.sysctl("net.ipv4.ip_local_port_range", RANGE)
    topo.client.sysctl("net.ipv4.tcp_tw_reuse", tw_reuse)


def test_exhaustion_comes_exactly_at_connection_21(direct, tmp_path):
    narrow(direct, tw_reuse=0)
    url = start_server(direct)
    summary, proc = client_json(direct, "run", url, "-n", "40", "-c", "1", "-w", "1", "--close", "fin",
                                "--json", "--out", str(tmp_path / "run-exhaust"))
    assert "connection 21 within 60 s fails with EADDRNOTAVAIL" in proc.stderr  # the pre-flight's prediction
    assert summary["budget"]["exhausted_at_connection"] == 21
    assert summary["requests"] == 20
    assert summary["errors"] == {"EADDRNOTAVAIL": 20}
    assert summary["first_errors"]["EADDRNOTAVAIL"]["connection"] == 21
    assert summary["time_wait_peak"] == 20
    assert any("--close server" in line for line in summary["advice"])
    # the 4-tuple rule: another destination port still gets a port
    other = start_server(direct)
    summary, _ = client_json(direct, "run", other, "-n", "5", "-c", "1", "-w", "1", "--close", "fin",
                             "--json", "--out", str(tmp_path / "run-other"))
    assert summary["requests"] == 5 and summary["errors"] == {}


def test_strict_refuses_to_start(direct):
    narrow(direct, tw_reuse=0)
    url = start_server(direct)
    proc = subprocess.run(direct.client.twload("run", url, "-n", "40", "-c", "1", "--close", "fin", "--strict"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "refusing to start (--strict)" in proc.stderr


def test_tw_reuse_with_timestamps_goes_on_after_about_one_second(direct, tmp_path):
    narrow(direct, tw_reuse=1)
    url = start_server(direct)
    doctor, _ = client_json(direct, "doctor", url, "--json")
    assert doctor["target"]["timestamps"] is True
    assert doctor["budget"]["reuse_after_s"] == 1.0
    summary, _ = client_json(direct, "run", url, "-d", "3s", "-c", "1", "-w", "1", "--close", "fin",
                             "--json", "--out", str(tmp_path / "run-reuse"))
    # 20 ports, each reusable 1 s after it entered TIME_WAIT: about 20 connections per second
    assert 40 <= summary["requests"] <= 80
    assert summary["first_errors"]["EADDRNOTAVAIL"]["connection"] == 21


def test_no_timestamps_at_the_server_no_reuse(direct, tmp_path):
    narrow(direct, tw_reuse=1)
    direct.server.sysctl("net.ipv4.tcp_timestamps", 0)  # as cloud load balancers do
    url = start_server(direct)
    doctor, _ = client_json(direct, "doctor", url, "--json")
    assert doctor["target"]["timestamps"] is False
    assert any(f["id"] == "tw_reuse" and f["level"] == "problem" and "will not help" in f["message"]
               for f in doctor["findings"])
    summary, proc = client_json(direct, "run", url, "-d", "3s", "-c", "1", "-w", "1", "--close", "fin",
                                "--json", "--out", str(tmp_path / "run-nots"))
    assert "does not negotiate TCP timestamps" in proc.stderr
    assert summary["target_timestamps"] is False
    assert summary["requests"] == 20  # the run confirms: nothing is reused within the 60 s


def test_sock_diag_agrees_with_ss_and_proc(direct, tmp_path):
    narrow(direct, tw_reuse=0)
    url = start_server(direct)
    client_json(direct, "run", url, "-n", "15", "-c", "3", "-w", "1", "--close", "fin", "--json",
                "--out", str(tmp_path / "run-diag"))
    script = ("from twload.kernel import sockdiag as d;"
              "n=d.state_counts(d.sockets_netlink()); p=d.state_counts(d.sockets_proc());"
              "print(n.get('TIME_WAIT',0), p.get('TIME_WAIT',0), sum(n.values()), sum(p.values()))")
    out = direct.client.run(sys.executable, "-c", script).stdout
    netlink_tw, proc_tw, netlink_all, proc_all = map(int, out.split())
    ss_tw = len(direct.client.run("ss", "-Htan", "state", "time-wait").stdout.splitlines())
    assert netlink_tw == proc_tw == ss_tw == 15
    assert netlink_all == proc_all


def test_doctor_fix_and_restore_in_a_namespace(direct, tmp_path):
    narrow(direct, tw_reuse=0)
    url = start_server(direct)
    env_args = ["env", f"XDG_STATE_HOME={tmp_path}"]
    fix = direct.client.run(*env_args, sys.executable, "-m", "twload", "doctor", url, "--fix", "--yes")
    assert "will set: net.ipv4.tcp_tw_reuse=1" in fix.stdout, fix.stdout + fix.stderr
    assert direct.client.read_sysctl("net.ipv4.tcp_tw_reuse") == "1"
    restore = direct.client.run(*env_args, sys.executable, "-m", "twload", "doctor", "--restore")
    assert "net.ipv4.tcp_tw_reuse=0" in restore.stdout
    assert direct.client.read_sysctl("net.ipv4.tcp_tw_reuse") == "0"


def test_each_source_address_adds_a_port_range(direct, tmp_path):
    narrow(direct, tw_reuse=0)
    extra = [direct.client.address.rsplit(".", 1)[0] + f".{n}" for n in (11, 12)]
    for address in extra:
        direct.lab.add_address(direct.client.netns, address, like=direct.client.address)
    one, _ = client_json(direct, "run", start_server(direct), "-n", "21", "-c", "1", "-w", "1", "--close", "fin",
                         "--source", direct.client.address, "--json", "--out", str(tmp_path / "src-1"))
    assert one["requests"] == 20 and one["errors"] == {"EADDRNOTAVAIL": 1}
    assert one["first_errors"]["EADDRNOTAVAIL"]["connection"] == 21
    three, _ = client_json(direct, "run", start_server(direct), "-n", "60", "-c", "1", "-w", "1", "--close", "fin",
                           "--source", ",".join([direct.client.address, *extra]), "--json",
                           "--out", str(tmp_path / "src-3"))
    assert three["requests"] == 60 and three["errors"] == {}
    assert three["budget"]["ports"] == 60
