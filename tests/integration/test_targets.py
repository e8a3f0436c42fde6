"""--targets (issue #32): a recording peer on loopback checks that exactly the requests a request file
describes arrive, in order, with their headers (repeats in order) and bodies, over the core's
backends, keep-alive and short connections, both formats; templated values are unique where they
must be; a bad file is one line and sends nothing."""

import base64
import json
import os
import re
import subprocess
import sys

import pytest

from tests.integration.backends import BACKENDS
from tests.integration.peers import RecordingPeer
from twload.merge.summary import Summary
from twload.report.text import render

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def peer():
    p = RecordingPeer()
    yield p
    p.close()


def host(peer: RecordingPeer) -> str:
    return peer.url.split("/")[2]


def http_file(peer: RecordingPeer) -> str:
    return (f"# name: list\n"
            f"GET {peer.url}items?page=1\n"
            f"X-Tag: one\n"
            f"X-Tag: two\n"
            f"\n"
            f"POST {peer.url}items\n"
            f"Content-Type: application/json\n"
            f"@body.json\n"
            f"\n"
            f"# weight: 1\n"
            f"DELETE {peer.url}items/7\n")


def json_file(peer: RecordingPeer) -> str:
    return "\n".join(json.dumps(o) for o in [
        {"method": "GET", "url": f"{peer.url}items?page=1", "header": {"X-Tag": ["one", "two"]}, "name": "list"},
        {"method": "POST", "url": f"{peer.url}items", "header": {"Content-Type": ["application/json"]},
         "body": base64.b64encode(b'{"a": 1}').decode()},
        {"method": "DELETE", "url": f"{peer.url}items/7"},
    ]) + "\n"


def expected(peer: RecordingPeer, close_line: bool) -> list[tuple[str, list[tuple[str, str]], bytes]]:
    """The three targets as they must arrive, with -H 'X-Default: d' and -H 'X-Tag: cli' given."""
    base = [("Host", host(peer)), ("User-Agent", "twload"), ("X-Default", "d")]
    close = [("Connection", "close")] if close_line else []
    return [
        ("GET /items?page=1 HTTP/1.1", base + [("X-Tag", "one"), ("X-Tag", "two")] + close, b""),
        ("POST /items HTTP/1.1", base + [("X-Tag", "cli"), ("Content-Type", "application/json"),
                                         ("Content-Length", "8")] + close, b'{"a": 1}'),
        ("DELETE /items/7 HTTP/1.1", base + [("X-Tag", "cli")] + close, b""),
    ]


def run(tmp_path, *args: str, stdin: str | None = None, out: str = "run") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twload", "run", "-q", "--out", str(tmp_path / out), *args],
                          input=stdin, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("io", BACKENDS)
@pytest.mark.parametrize("close", ["keepalive", "fin", "server"])
@pytest.mark.parametrize("fmt", ["http", "json"])
def test_exactly_the_file_arrives_in_order(tmp_path, peer, io, close, fmt):
    (tmp_path / "body.json").write_bytes(b'{"a": 1}')
    (tmp_path / "t").write_text(http_file(peer) if fmt == "http" else json_file(peer))
    proc = run(tmp_path, "--targets", "t", "--targets-format", fmt, "-n", "7", "-c", "1", "-w", "1", "--io", io,
               "--close", close, "-H", "X-Default: d", "-H", "X-Tag: cli")
    assert proc.returncode == 0, proc.stderr
    want = expected(peer, close_line=close == "server")
    got = [(line, fields, body) for _, line, fields, body in peer.requests]
    assert got == [want[i % 3] for i in range(7)]
    connections = {c for c, *_ in peer.requests}
    assert len(connections) == (1 if close == "keepalive" else 7)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = {row["name"]: row for row in summary["targets"]}
    assert list(rows) == ["list", f"POST {peer.url}items", f"DELETE {peer.url}items/7"]
    assert [rows[name]["requests"] for name in rows] == [3, 2, 2]
    assert all(row["status"] == {"200": row["requests"]} and row["errors"] == {} for row in rows.values())
    assert all(row["latency_us"]["max"] > 0 for row in rows.values())


def test_standard_input_and_a_relative_path(tmp_path, peer):
    proc = run(tmp_path, peer.url, "--targets", "-", "-n", "2", "-c", "1", "-w", "1",
               stdin="GET /a\n\nPUT /b\n")
    assert proc.returncode == 0, proc.stderr
    assert [line for _, line, _, _ in peer.requests] == ["GET /a HTTP/1.1", "PUT /b HTTP/1.1"]


@pytest.mark.parametrize("io", BACKENDS)
def test_seq_is_unique_across_workers(tmp_path, peer, io):
    (tmp_path / "t").write_text(f"GET {peer.url}?id={{{{seq}}}}&w={{{{worker}}}}\n"
                                f"X-Request-Id: {{{{uuid}}}}\n\n"
                                f"POST {peer.url}r\n@b\n")
    (tmp_path / "b").write_text('{"id": {{seq}}, "r": {{rand 1000}}}')
    proc = run(tmp_path, "--targets", "t", "-n", "200", "-c", "4", "-w", "2", "--io", io)
    assert proc.returncode == 0, proc.stderr
    assert len(peer.requests) == 200
    seqs, uuids, workers = [], [], set()
    for _, line, fields, body in peer.requests:
        if line.startswith("GET"):
            query = dict(p.split("=") for p in line.split()[1].split("?")[1].split("&"))
            seqs.append(int(query["id"]))
            workers.add(query["w"])
            uuids.append(dict(fields)["X-Request-Id"])
        else:
            doc = json.loads(body)
            seqs.append(doc["id"])
            assert 0 <= doc["r"] < 1000
            assert dict(fields)["Content-Length"] == str(len(body))
    assert len(set(seqs)) == 200  # every request its own number, whichever worker sent it
    assert len(set(uuids)) == len(uuids) == 100 and all(UUID.match(u) for u in uuids)
    assert workers == {"0", "1"}


def test_random_order_by_weight_and_seed(tmp_path, peer):
    (tmp_path / "t").write_text(f"# weight: 3\nGET {peer.url}heavy\n\nGET {peer.url}light\n")
    paths = []
    for attempt in range(2):
        proc = run(tmp_path, "--targets", "t", "--targets-order", "random", "--seed", "7",
                   "-n", "400", "-c", "1", "-w", "1", out=f"run{attempt}")
        assert proc.returncode == 0, proc.stderr
        paths.append([line.split()[1] for _, line, _, _ in peer.requests[attempt * 400:]])
    assert paths[0] == paths[1]  # the same seed, the same order
    heavy = paths[0].count("/heavy")
    assert 200 < heavy < 380  # 3:1 of 400 is 300; far outside these the weights were not used
    assert paths[0][:8] != ["/heavy", "/heavy", "/light", "/heavy"] * 2  # not the round-robin cycle


def test_weights_spread_round_robin(tmp_path, peer):
    (tmp_path / "t").write_text(f"# weight: 3\nGET {peer.url}a\n\nGET {peer.url}b\n")
    proc = run(tmp_path, "--targets", "t", "-n", "8", "-c", "1", "-w", "1")
    assert proc.returncode == 0, proc.stderr
    assert "".join(line.split()[1][1] for _, line, _, _ in peer.requests) == "aabaaaba"


BAD = [
    ("http", "GET {url}\nX-Foo\n", "t:2: bad header 'X-Foo': no colon"),
    ("http", "get {url}\n", "t:1: unknown method 'get'"),
    ("http", "GET {url}{{{{nope}}}}\n", "t:1: URL: unknown placeholder {{nope}}"),
    ("http", "POST {url}\n@missing\n", "t:2: body file 'missing': No such file or directory"),
    ("http", "GET {url}\n\nGET https://127.0.0.2:1/\n", "t:3: https://127.0.0.2:1/ is https://"),
    ("json", '{{"method": "GET", "url": "{url}", "body": "%%%"}}\n', "t:1: bad body: not base64"),
    ("json", '{{"method": "GET", "url": "{url}"\n', "t:1: bad JSON"),
]


@pytest.mark.parametrize(("fmt", "text", "message"), BAD)
def test_a_bad_file_is_one_line_and_sends_nothing(tmp_path, peer, fmt, text, message):
    (tmp_path / "t").write_text(text.format(url=peer.url))
    proc = run(tmp_path, "--targets", "t", "--targets-format", fmt, "-n", "1")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert peer.connections == 0 and peer.requests == []


def test_no_url_and_no_targets(tmp_path):
    proc = run(tmp_path, "-n", "1")
    assert proc.returncode == 2 and "give a URL, or a request file with --targets" in proc.stderr


def test_missing_file(tmp_path):
    proc = run(tmp_path, "--targets", "nope.txt", "-n", "1")
    assert proc.returncode == 2 and "cannot read --targets nope.txt: No such file or directory" in proc.stderr


def test_plan_json_says_where_the_targets_came_from(tmp_path, peer):
    (tmp_path / "t").write_text(f"GET {peer.url}a\n")
    proc = run(tmp_path, "--targets", "t", "-n", "1", "-c", "1", "-w", "1", "--targets-order", "random")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())["plan"]
    assert plan["targets"]["source"] == "t" and plan["targets"]["count"] == 1
    assert plan["targets"]["order"] == "random" and isinstance(plan["targets"]["seed"], int)


@pytest.mark.parametrize("io", BACKENDS)
def test_templated_last_request_of_a_connection_asks_the_close(tmp_path, peer, io):
    (tmp_path / "t").write_text(f"GET {peer.url}a/{{{{seq}}}}\n\nGET {peer.url}b\n")
    proc = run(tmp_path, "--targets", "t", "-n", "7", "-c", "1", "-w", "1", "--io", io, "--close", "server",
               "--requests-per-connection", "3")
    assert proc.returncode == 0, proc.stderr
    got = [(c, line.split()[1], ("Connection", "close") in fields) for c, line, fields, _ in peer.requests]
    paths = [path for _, path, _ in got]
    assert paths == ["/a/0", "/b", "/a/1", "/b", "/a/2", "/b", "/a/3"]
    assert [asks for _, _, asks in got] == [False, False, True, False, False, True, False]
    assert len({c for c, _, _ in got}) == 3


def test_open_loop_sends_the_file_and_counts_every_target(tmp_path, peer):
    (tmp_path / "t").write_text(f"GET {peer.url}a?id={{{{seq}}}}\n\n# weight: 2\nGET {peer.url}b\n")
    proc = run(tmp_path, "--targets", "t", "--rate", "300", "-d", "1s", "-w", "2", "--max-connections", "8")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = {row["name"]: row for row in summary["targets"]}
    # the peer answers every request it reads; one still unanswered at the stop is counted apart
    assert 100 < summary["requests"] <= len(peer.requests)
    assert sum(row["requests"] for row in rows.values()) == summary["requests"]
    assert sum(sum(row["errors"].values()) for row in rows.values()) <= sum(summary["errors"].values())
    ids = [line.split("=")[1].split()[0] for _, line, _, _ in peer.requests if "/a?" in line]
    assert len(ids) == len(set(ids)) >= rows[f"GET {peer.url}a?id={{{{seq}}}}"]["requests"]
    assert rows[f"GET {peer.url}b"]["requests"] > len(ids)  # weight 2 against 1


def test_report_csv_targets(tmp_path, peer):
    (tmp_path / "t").write_text(f"# name: a\nGET {peer.url}a\n\nGET {peer.url}b\n")
    proc = run(tmp_path, "--targets", "t", "-n", "3", "-c", "1", "-w", "1")
    assert proc.returncode == 0, proc.stderr
    report = subprocess.run([sys.executable, "-m", "twload", "report", str(tmp_path / "run"), "-f", "csv-targets"],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0] == ("run,target,requests,errors,latency_p50_us,latency_p90_us,latency_p99_us,"
                        "latency_p99_9_us,latency_max_us,latency_mean_us,status_200")
    assert [line.split(",")[1:4] for line in lines[1:]] == [["a", "2", "0"], [f"GET {peer.url}b", "1", "0"]]
    assert lines[1].split(",")[-1] == "2"


def test_render_buffers_over_the_bound_are_refused_before_the_run(tmp_path, peer):
    (tmp_path / "b").write_bytes(b"{{seq}}" + b"x" * 100_000)
    (tmp_path / "t").write_text(f"POST {peer.url}\n@b\n")
    proc = run(tmp_path, "--targets", "t", "-c", "3000", "-w", "1", "-d", "1s")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "need 286 MiB of buffers; at most 256 MiB" in lines[0], proc.stderr
    assert peer.connections == 0


def test_method_option_with_targets_is_refused(tmp_path, peer):
    (tmp_path / "t").write_text(f"GET {peer.url}\n")
    proc = run(tmp_path, "--targets", "t", "-m", "POST", "-n", "1")
    assert proc.returncode == 2 and "-m has nothing to do with --targets" in proc.stderr
    assert peer.connections == 0


@pytest.mark.parametrize("io", BACKENDS)
def test_errors_count_under_their_targets_and_the_ledger_holds(tmp_path, io):
    peer = RecordingPeer(drop_every=3)  # every third request read: the connection closes unanswered
    try:
        (tmp_path / "t").write_text(f"GET {peer.url}a/{{{{seq}}}}\n\nPOST {peer.url}b\n@b\n")
        (tmp_path / "b").write_text('{"u": "{{uuid}}"}')
        proc = run(tmp_path, "--targets", "t", "-n", "30", "-c", "2", "-w", "1", "--io", io)
    finally:
        peer.close()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "uncounted" not in summary["errors"] and "counted_twice" not in summary["errors"]
    results = summary["requests"] + sum(summary["errors"].values())
    assert results == 30 and summary["errors"].get("eof_before_response", 0) >= 1
    rows = summary["targets"]
    assert sum(r["requests"] for r in rows) == summary["requests"]
    by_target: dict[str, int] = {}
    for row in rows:
        for name, n in row["errors"].items():
            by_target[name] = by_target.get(name, 0) + n
    assert by_target == summary["errors"]  # every error here is a request's result: its target's
    assert len(peer.requests) >= 30


# Run inside a user and network namespace of its own (`unshare -rn`): loopback up, and a send buffer
# too small for the request (tcp_wmem is per namespace since Linux 4.15), so its send waits in the
# kernel. A peer answers the second request as soon as its head is read, then pauses before reading
# its body: a client that reused the connection (keep-alive) would render the third request while the
# second one's send still reads the same buffer (io_uring), and the second body's tail would be the
# third's. Each body is its {{seq}}, a run of x, then its {{seq}} again. With `stall` the peer reads
# each request's head and then neither reads nor answers: each request times out with its send still in
# the kernel, and the slot's next connection waits for that send's completion before it renders.
EARLY_ANSWER = r'''
import json, socket, subprocess, sys, threading, time
tmp, io, mode = sys.argv[1], sys.argv[2], sys.argv[3]
connections = []
with open("/proc/sys/net/ipv4/tcp_wmem", "w") as f:
    f.write("4096 16384 65536")
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
listener.bind(("127.0.0.1", 0))
listener.listen(8)
listener.settimeout(0.2)
port = listener.getsockname()[1]
bodies, done, lock = [], threading.Event(), threading.Lock()
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

def serve(conn):
    conn.settimeout(3)
    buf, heads = b"", 0
    connections.append(1)
    try:
        if mode == "stall":
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            done.wait(30)
            return
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            with lock:
                heads = len(bodies) + 1
            if heads == 2:
                conn.sendall(OK)
                time.sleep(0.5)
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    with lock:
                        bodies.append(["cut", len(buf)])
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            with lock:
                bodies.append([body.split(b":", 1)[0].decode("latin-1"), body.rsplit(b":", 1)[1].decode("latin-1")])
            if heads != 2:
                conn.sendall(OK)
    except OSError:
        return
    finally:
        conn.close()

def accept():
    while not done.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

threading.Thread(target=accept, daemon=True).start()
with open(f"{tmp}/t", "w") as f:
    f.write(f"POST http://127.0.0.1:{port}/up\n@b\n")
with open(f"{tmp}/b", "wb") as f:
    f.write(b"{{seq}}:" + b"x" * 300_000 + b":{{seq}}")
proc = subprocess.run([sys.executable, "-m", "twload", "run", "-q", "--out", f"{tmp}/run", "--targets", "t",
                       "-n", "3", "-c", "1", "-w", "1", "--io", io, "--timeout", "1s" if mode == "stall" else "2s"],
                      capture_output=True, text=True, timeout=60, cwd=tmp)
time.sleep(0.5)
done.set()
try:
    with open(f"{tmp}/run/summary.json") as f:
        errors = json.load(f)["errors"]
except OSError:
    errors = None
with lock:
    print(json.dumps({"rc": proc.returncode, "stderr": proc.stderr, "bodies": bodies, "errors": errors,
                      "connections": len(connections)}))
'''


def in_namespace(tmp_path, io: str, mode: str) -> dict:
    """EARLY_ANSWER's peer and run in a user and network namespace of their own; what it printed."""
    try:
        proc = subprocess.run(["unshare", "-rn", sys.executable, "-c", EARLY_ANSWER, str(tmp_path), io, mode],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    except FileNotFoundError:
        pytest.skip("unshare (util-linux) is not installed: no network namespace for a small send buffer")
    if proc.returncode != 0 and ("unshare" in proc.stderr or "Operation not permitted" in proc.stderr):
        pytest.skip(f"no user and network namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("io", BACKENDS)
def test_an_early_answer_never_lets_the_next_request_into_the_body_being_sent(tmp_path, io):
    out = in_namespace(tmp_path, io, "early")
    assert out["rc"] == 0, out["stderr"]
    whole = [b for b in out["bodies"] if b[0] != "cut"]
    assert whole, out["bodies"]
    # every body read whole is one request's: its tail says the same {{seq}} as its start
    assert all(first == last for first, last in whole), out["bodies"]


def prefix_of_cycle(lines: list[str], cycle: list[str]) -> bool:
    return lines == [cycle[i % len(cycle)] for i in range(len(lines))]


@pytest.mark.parametrize("io", BACKENDS)
@pytest.mark.parametrize("close", ["keepalive", "fin"])
def test_two_destinations_each_get_exactly_their_targets(tmp_path, two_peers, io, close):
    a, b = two_peers
    (tmp_path / "t").write_text(f"GET {a.url}a1\n\n# weight: 2\nGET {b.url}b1?id={{{{seq}}}}\n\n"
                                f"GET {b.url}b2\n\nPOST {a.url}a2\n")
    proc = run(tmp_path, "--targets", "t", "-n", "24", "-c", "2", "-w", "1", "--io", io, "--close", close)
    assert proc.returncode == 0, proc.stderr
    got_a = [line for _, line, _, _ in a.requests]
    got_b = [re.sub(r"\?id=\d+", "", line) for _, line, _, _ in b.requests]
    assert len(got_a) + len(got_b) == 24 and got_a and got_b
    # one slot each: each destination's own cycle of its own targets, in the file's order and weights
    assert prefix_of_cycle(got_a, ["GET /a1 HTTP/1.1", "POST /a2 HTTP/1.1"]), got_a
    assert prefix_of_cycle(got_b, ["GET /b1 HTTP/1.1", "GET /b2 HTTP/1.1", "GET /b1 HTTP/1.1"]), got_b
    assert {dict(f)["Host"] for _, _, f, _ in a.requests} == {host(a)}
    assert {dict(f)["Host"] for _, _, f, _ in b.requests} == {host(b)}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = summary["destinations"]
    assert [r["destination"] for r in rows] == [host(a), host(b)]
    opened = [a.connections - 1, b.connections - 1]  # less the pre-flight's probe of each
    assert [r["connections_opened"] for r in rows] == opened and sum(opened) == summary["connections_opened"]
    if close == "fin":  # a connection a request, closed by the client: its port in TIME_WAIT
        assert opened == [len(got_a), len(got_b)]
        assert [r["time_wait_at_end"] for r in rows] == opened
    assert all(r["connections"] == 1 and "budget" in r for r in rows)


def test_the_pre_flight_lists_each_destination(tmp_path, two_peers):
    a, b = two_peers
    (tmp_path / "t").write_text(f"GET {a.url}\n\nGET {b.url}\n")
    proc = run(tmp_path, "--targets", "t", "-n", "4", "-c", "2", "-w", "1", "--close", "fin")
    assert proc.returncode == 0, proc.stderr
    for peer in (a, b):  # its budget, and where its wall comes, one line each
        line = next(x for x in proc.stderr.splitlines() if x.startswith(f"pre-flight: towards {host(peer)},"))
        assert "new connections/s" in line and "ports" in line
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    block = plan["preflight"]["destinations"]
    assert [d["destination"] for d in block] == [host(a), host(b)]
    assert all(d["budget"]["sustainable_new_conn_per_s"] > 0 for d in block)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    text = render(Summary.from_dict(summary), width=200)  # the text report: a line each, with its wall
    for peer in (a, b):
        line = next(x for x in text.splitlines() if x.strip().startswith(f"{host(peer)}:"))
        assert "connection" in line and "in TIME_WAIT at the end; the wall at" in line


@pytest.mark.parametrize("args, message", [
    (["--rate", "10", "-d", "1s", "--max-connections", "3", "-w", "2"],
     "--max-connections 3 over 2 worker processes leaves one fewer connections than the 2 destinations"),
    (["-c", "1"], "-c 1: fewer connections than the 2 destinations (host:port) of the targets"),
])
def test_what_several_destinations_cannot_do_is_one_line(tmp_path, two_peers, args, message):
    a, b = two_peers
    (tmp_path / "t").write_text(f"GET {a.url}\n\nGET {b.url}\n")
    proc = run(tmp_path, "--targets", "t", "-n", "4", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert a.connections == b.connections == 0


def test_two_schemes_are_one_line(tmp_path, peer):
    (tmp_path / "t").write_text(f"GET {peer.url}\n\nGET https://{host(peer)}/\n")
    proc = run(tmp_path, "--targets", "t", "-n", "4")
    assert proc.returncode == 2 and "t:3: https://" in proc.stderr and "share one scheme" in proc.stderr
    assert peer.connections == 0


def test_targets_elsewhere_than_the_url_go_there_and_the_url_gets_nothing(tmp_path, two_peers):
    a, b = two_peers
    (tmp_path / "t").write_text(f"GET {b.url}x\n")
    proc = run(tmp_path, a.url, "--targets", "t", "-n", "3", "-c", "1", "-w", "1")
    assert proc.returncode == 0, proc.stderr
    assert [line for _, line, _, _ in b.requests] == ["GET /x HTTP/1.1"] * 3
    assert a.connections == 0  # not even the pre-flight's probe


@pytest.mark.parametrize("io", BACKENDS)
def test_a_request_timed_out_while_its_send_waits_leaves_the_slot_to_go_on(tmp_path, io):
    """Each request times out with its send still in the kernel (io_uring: the slot's next connection
    waits for that send's completion, then renders and connects): every request gets its timeout, on a
    connection of its own, and the run ends."""
    out = in_namespace(tmp_path, io, "stall")
    assert out["errors"] == {"timeout": 3}, out
    assert out["connections"] == 3 + 1  # and the pre-flight's probe


def test_a_vegeta_file_of_300_urls_runs_unchanged(tmp_path, peer):
    """vegeta's files name no target: past 256 distinct URLs the run still goes, every request of the
    file is sent, the first 255 counted each on its own row and the rest together as (other targets)."""
    (tmp_path / "t").write_text("\n".join(f"GET {peer.url}p{i}\n" for i in range(300)))
    proc = run(tmp_path, "--targets", "t", "-n", "600", "-c", "2", "-w", "1")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["requests"] == 600 and summary["errors"] == {}
    paths = [line.split()[1] for _, line, _, _ in peer.requests]
    assert sorted(set(paths)) == sorted(f"/p{i}" for i in range(300)) and len(paths) == 600
    rows = {row["name"]: row for row in summary["targets"]}
    assert len(rows) == 256
    assert rows[f"GET {peer.url}p0"]["requests"] == 2 and rows[f"GET {peer.url}p254"]["requests"] == 2
    assert rows["(other targets)"]["requests"] == 90  # p255 .. p299, twice each
