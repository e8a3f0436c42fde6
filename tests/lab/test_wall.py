"""Issue 14: at the port wall, on a real kernel. A client namespace with 20 ephemeral ports and
tcp_tw_reuse=0 against a server namespace on a veth (each test makes and removes its own `twl-`
namespaces): connect failures back off, the summary says where the wall came and why, the
numbers agree, and a keep-alive run that finds every port in TIME_WAIT says so."""

import json
import subprocess

from tests.lab.conftest import client_json, start_server

RANGE = "40000 40019"  # 20 ports


def narrow(topo) -> None:
    topo.client.sysctl("net.ipv4.ip_local_port_range", RANGE)
    topo.client.sysctl("net.ipv4.tcp_tw_reuse", 0)


def test_the_wall_backs_off_and_the_summary_says_so_first(direct, tmp_path):
    narrow(direct)
    url = start_server(direct)
    out = str(tmp_path / "run")
    proc = subprocess.run(direct.client.twload("run", url, "-d", "2s", "-c", "5", "-w", "1", "--close", "fin",
                                               "--out", out), capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"})
    assert "Traceback" not in proc.stderr, proc.stderr
    summary = json.loads(open(f"{out}/summary.json").read())
    assert summary["requests"] == 20 and summary["connections_opened"] == 20
    # 5 slots, each waiting up to 100 ms between tries for 2 s: about 100 failed connects, not thousands
    assert 5 <= summary["errors"]["EADDRNOTAVAIL"] <= 400, summary["errors"]
    assert summary["first_errors"]["EADDRNOTAVAIL"]["connection"] == 21  # the failing one, not attempts so far
    first_line = proc.stdout.splitlines()[0]
    assert first_line.startswith("At the port wall from ")
    # the pre-flight's numbers and the summary's agree: 20 ports free, connection 21 fails, 20 opened
    assert "20 ports are free (of 20)," in proc.stderr
    assert "so connection 21 within 60 s fails with EADDRNOTAVAIL" in proc.stderr
    assert summary["budget"]["exhausted_at_connection"] == 21
    assert "after 20 connections" in summary["wall"] and "the budget: 20 ports" in summary["wall"]
    assert sum("--close server" in line for line in summary["advice"]) == 1
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())


def test_keepalive_with_every_port_in_time_wait_names_the_count(direct, tmp_path):
    narrow(direct)
    url = start_server(direct)
    summary, _ = client_json(direct, "run", url, "-n", "20", "-c", "1", "-w", "1", "--close", "fin", "--json",
                             "--out", str(tmp_path / "fill"))
    assert summary["requests"] == 20  # every one of the 20 ports is now in TIME_WAIT
    proc = subprocess.run(direct.client.twload("run", url, "-d", "1s", "-c", "1", "-w", "1"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no free local port (EADDRNOTAVAIL): 20 client sockets towards it are in TIME_WAIT" in lines[0]
    assert "of 20 ephemeral ports" in lines[0] and f"twload doctor {url}" in lines[0]


def test_doctor_at_the_wall_says_what_holds_the_ports(direct, tmp_path):
    narrow(direct)
    url = start_server(direct)
    client_json(direct, "run", url, "-n", "20", "-c", "1", "-w", "1", "--close", "fin", "--json",
                "--out", str(tmp_path / "fill"))
    doctor, proc = client_json(direct, "doctor", url, "--json")
    target = next(f for f in doctor["findings"] if f["id"] == "target")
    assert "no free local port (EADDRNOTAVAIL): 20 client sockets towards it are in TIME_WAIT" in target["message"]
