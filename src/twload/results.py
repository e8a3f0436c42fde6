"""The run folder: plan.json at the start, samples streamed as they come, summary at the end.

One folder holds exactly one run: a folder that already holds one is refused, never
appended to (two runs' seconds in one samples.jsonl would be double-counted).

samples.jsonl gets one line per second, flushed at once, so a crash or Ctrl-C
loses at most the second in progress. plan.json says what the run was, so that a
killed run can still be understood. hdrh.log (latency) and hdrh-connect.log (connect time)
are standard HdrHistogram interval logs, one interval per second, written and read with the
hdrhistogram package's own log writer and reader, so HdrHistogram's tools read them too.
plan.json and summary.json are written atomically
(temp file + rename): a reader never sees half of one.

A run folder is private whatever the umask: plan.json holds the command line, and run folders
get attached to tickets and copied to shared hosts. Folders twload creates are 0700 and every
file it writes there (and every report file) 0600; this module is the one place that decides.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import stat
import sys
import time
from pathlib import Path
from typing import TextIO

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader, HistogramLogWriter

from twload import __version__
from twload.metrics import new_histogram
from twload.plan import Plan

PLAN = "plan.json"
SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"
HDRH_LOG = "hdrh.log"  # latency, µs
HDRH_CONNECT_LOG = "hdrh-connect.log"  # connect time, µs
RUN_FILES = (PLAN, SAMPLES, SUMMARY, HDRH_LOG, HDRH_CONNECT_LOG)
# The interval log's max column is in ms (the unit its tools assume); the values are µs.
US_PER_MS = 1000.0


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class RunFolderError(Exception):
    """The run folder cannot be used; the message is one line for the user."""


class RunFolderExists(RunFolderError):
    """The folder already holds a run."""


MAX_CLAIM_TRIES = 1000  # suffixes -2 … -1000 for one second: more runs than that in a second is a bug


def claim_run_dir(base: str = "twload-runs", prefix: str = "") -> Path:
    """A new folder for one run, created here: `base/<prefix><UTC time>`, or with `-2`, `-3`… after it when
    that is taken. mkdir is the claim (it fails when the name exists), so runs started in the same second,
    from other terminals, namespaces or CI jobs sharing the folder, each get their own, never the same."""
    stamp = prefix + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        Path(base).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{base}: {exc.strerror}") from None
    for n in range(1, MAX_CLAIM_TRIES + 1):
        path = Path(base) / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            make_private_dir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunFolderError(f"{path}: {exc.strerror}") from None
        return path
    raise RunFolderError(f"{base}: {MAX_CLAIM_TRIES} runs named {stamp} already; give --out")


def make_private_dir(path: Path) -> None:
    """mkdir, 0700 whatever the umask; FileExistsError when it exists (mkdir is the claim)."""
    os.mkdir(path, PRIVATE_DIR)
    os.chmod(path, PRIVATE_DIR)  # the umask may have taken bits away; it cannot have added any


def open_private(path: Path, exclusive: bool = True, encoding: str = "utf-8") -> TextIO:
    """A text file for writing, 0600 whatever the umask; exclusive: created here or FileExistsError,
    else truncated (and a regular file made 0600 if it was not; a device such as /dev/stdout is left be)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, PRIVATE_FILE)
        return open(fd, "w", encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private(final: Path, text: str, atomic: bool = True) -> None:
    """Write a whole file, 0600: atomically (temp file + rename: a reader never sees half of it), or in
    place (a file the user named, which may be a device or a link that a rename would replace)."""
    if not atomic:
        with open_private(final, exclusive=False) as fh:
            fh.write(text)
        return
    tmp = Path(final).with_name(Path(final).name + ".tmp")
    with open_private(tmp, exclusive=False) as fh:
        fh.write(text)
    os.replace(tmp, final)


def check_fresh(path: Path) -> None:
    """Raise RunFolderExists when `path` already holds (part of) a run, RunFolderError when it cannot
    become a run folder (a file, or under one, or where this user may not write)."""
    path = Path(path)
    held = [name for name in RUN_FILES if (path / name).exists()]
    if held:
        raise RunFolderExists(f"{path} already holds a run ({held[0]}); give a new or empty --out folder")
    existing = path
    while not existing.exists() and existing != existing.parent:  # the nearest part that exists
        existing = existing.parent
    if not existing.is_dir():
        raise RunFolderError(f"{path}: {existing} is a file, not a folder; give a folder as --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"{path}: no permission to write in {existing}")


# Request headers that carry credentials: their values never reach the run folder or a report unless
# the user asks (--keep-credentials); the request on the wire carries them unchanged.
CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "apikey",
    "x-auth-token", "x-access-token", "x-refresh-token", "x-id-token", "x-session-token", "x-csrf-token",
    "x-xsrf-token", "x-amz-security-token", "x-goog-api-key", "x-vault-token", "private-token",
    "x-functions-key", "ocp-apim-subscription-key", "x-hub-signature", "x-hub-signature-256",
})
# and the like: any name that says it holds one (X-My-Token, X-Client-Secret, X-Upstream-Auth…)
_CREDENTIAL_WORDS = re.compile(r"auth|token|secret|passw|api-?key|cookie|session|credential|signature",
                               re.IGNORECASE)
_REDACTED = re.compile(r"<redacted, \d+ bytes>")
HEADER_OPTIONS = ("-H", "--header")  # `twload run`'s option for a request header


def is_credential_header(name: str) -> bool:
    name = name.strip().lower().replace("_", "-")
    return name in CREDENTIAL_HEADERS or bool(_CREDENTIAL_WORDS.search(name))


def redacted(value: str) -> str:
    """What a credential's value becomes: its length only (already redacted: unchanged)."""
    return value if _REDACTED.fullmatch(value) else f"<redacted, {len(value.encode())} bytes>"


def redact_header(text: str) -> str:
    """'Name: value' with a credential's value redacted (as parse_header splits it); anything else as is."""
    name, sep, value = text.partition(":")
    if not sep or not is_credential_header(name):
        return text
    return f"{name}: {redacted(value.strip())}"


def _short_header_at(arg: str) -> int | None:
    """Where -H is in a cluster of short options ("-H", "-HV", "-qH", "-kqHV"): click reads letters before
    it as flags (-q, -k take no value), then the rest of the cluster, or the next argument, as -H's value.
    None when there is no such H (a digit before it makes it part of another option's value: -c4H)."""
    if not arg.startswith("-") or arg.startswith("--"):
        return None
    at = arg.find("H", 1)
    if at < 0 or not all(c.isascii() and c.isalpha() for c in arg[1:at]):
        return None
    return at


def redact_command(argv: list[str]) -> list[str]:
    """The command line with the credential headers' values redacted: -H VALUE, --header VALUE,
    --header=VALUE, -HVALUE, and -H in a cluster of short flags (-qH VALUE, -kqHVALUE)."""
    out: list[str] = []
    after_header_option = False
    for arg in argv:
        at = _short_header_at(arg)
        if after_header_option:
            out.append(redact_header(arg))
            after_header_option = False
        elif arg in HEADER_OPTIONS:
            out.append(arg)
            after_header_option = True
        elif arg.startswith("--header="):
            out.append("--header=" + redact_header(arg.removeprefix("--header=")))
        elif at is not None and at == len(arg) - 1:  # -qH: the value is the next argument
            out.append(arg)
            after_header_option = True
        elif at is not None:
            out.append(arg[:at + 1] + redact_header(arg[at + 1:]))
        else:
            out.append(arg)
    return out


def plan_fields(plan: Plan, keep_credentials: bool = False) -> dict:
    """The plan as plain JSON values (the body by its size only: it may be large or binary; credential
    headers' values by their size only unless `keep_credentials`)."""
    fields = {
        "url": plan.url,
        "method": plan.method,
        "headers": [[name, value if keep_credentials or not is_credential_header(name) else redacted(value)]
                    for name, value in plan.headers],
        "body_bytes": len(plan.body),
        "close": plan.close,
        "connections": plan.connections,
        "requests_per_connection": plan.requests_per_connection,
        "per_connection": plan.per_connection,
        "workers": plan.workers,
        "worker_processes": len(plan.worker_shares()),  # fewer than asked when there is less to share
        "duration_s": plan.duration_s,
        "requests": plan.requests,
        "rate": plan.rate,
        "stages": [[s.duration_s, s.target] for s in plan.stages],
        "open_loop": plan.open_loop,
        "max_connections": plan.max_connections,
        "timeout_s": plan.timeout_s,
        "connect_timeout_s": plan.connect_timeout_s,
        "sources": list(plan.sources),
        "http2": plan.http2,
        "streams": plan.streams if plan.http2 else None,
    }
    if plan.targets:  # a request file: where from, how many, in which order (its headers stay out)
        spool = plan.targets_spool
        fields["targets"] = {"source": plan.targets_source, "count": spool.count if spool else len(plan.targets),
                             "order": plan.targets_order, "seed": plan.seed, "streamed": spool is not None}
    engine = getattr(plan, "engine", None)  # the field comes with the compiled core
    if engine is not None:
        fields["engine"] = engine
    return fields


def plan_record(plan: Plan, sysctls: dict | None = None, preflight: dict | None = None,
                keep_credentials: bool = False, command: list[str] | None = None) -> dict:
    """What plan.json holds: the command (`command`, by default this process's argv; the Python API
    gives the `twload run` command line that does the same), the plan, where and when it ran, the
    kernel's settings. Credential headers are redacted in the command and the plan, unless
    `keep_credentials` (then plan.json says "credentials": "kept", and the report shows them too)."""
    now = time.time()
    argv = list(sys.argv) if command is None else list(command)
    record = {
        "command": argv if keep_credentials else redact_command(argv),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "started_epoch_s": round(now, 3),
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "twload_version": __version__,
        "plan": plan_fields(plan, keep_credentials),
        "sysctls": sysctls or {},
        "preflight": preflight or {},
    }
    if keep_credentials:
        record["credentials"] = "kept"
    return record


def shown_command(record: dict) -> list[str]:
    """plan.json's command as a report shows it: redacted, unless the run kept its credentials (a
    run folder written before redaction holds them verbatim)."""
    command = list(record.get("command") or [])
    return command if record.get("credentials") == "kept" else redact_command(command)


class IntervalLog:
    """One HdrHistogram interval log (format 1.2), written by hdrh's HistogramLogWriter."""

    def __init__(self, path: Path, base_epoch_s: float) -> None:
        self.writer = HistogramLogWriter(open_private(path, encoding="ascii"))
        # StartTime and BaseTime must print the same: the reader skips intervals that start
        # before StartTime, and the first one starts at BaseTime + 0
        base_epoch_s = round(base_epoch_s, 3)
        self.base_ms = base_epoch_s * 1000.0
        self.writer.base_time = self.base_ms  # interval start times are relative to the base
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base_epoch_s))
        self.writer.output_log_format_version()
        # hdrh's output_start_time() calls a datetime method that does not exist (hdrhistogram
        # 0.10); this is the line it means to write, and the one its reader parses
        self.writer.output_comment(f"[StartTime: {self.base_ms / 1000.0:f} (seconds since epoch), {stamp}]")
        self.writer.output_base_time(self.base_ms)
        self.writer.output_legend()
        self.writer.log.flush()

    def write(self, hist: HdrHistogram, start_s: float, span_s: float) -> None:
        hist.set_start_time_stamp(self.base_ms + start_s * 1000.0)
        hist.set_end_time_stamp(self.base_ms + (start_s + span_s) * 1000.0)
        self.writer.output_interval_histogram(hist, max_value_unit_ratio=US_PER_MS)
        self.writer.log.flush()

    def close(self) -> None:
        self.writer.close()


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        check_fresh(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            make_private_dir(self.path)
        except FileExistsError:  # an empty folder given with --out, or claimed by claim_run_dir: its mode stays
            pass
        except OSError as exc:  # made a file, or made unwritable, since check_fresh
            raise RunFolderError(f"{path}: {exc.strerror}") from None
        # exclusive: created here or refused, so two runs started at once cannot share the folder either
        try:
            self._samples = open_private(self.path / SAMPLES)
        except FileExistsError:
            raise RunFolderExists(f"{path} already holds a run; give a new or empty --out folder") from None
        except OSError as exc:  # a file where the folder should be, since check_fresh
            raise RunFolderError(f"{path}: {exc.strerror}") from None
        self._logs: dict[str, IntervalLog] = {}

    def write_plan(self, record: dict) -> None:
        write_private(self.path / PLAN, json.dumps(record, indent=2) + "\n")

    def begin(self, base_epoch_s: float) -> None:
        """The wall-clock time of the run's second 0: the interval logs count from it."""
        try:
            self._logs = {
                "latency": IntervalLog(self.path / HDRH_LOG, base_epoch_s),
                "connect": IntervalLog(self.path / HDRH_CONNECT_LOG, base_epoch_s),
            }
        except FileExistsError:
            raise RunFolderExists(f"{self.path} already holds a run; give a new or empty --out folder") from None

    def write_sample(self, sample: dict, histograms: dict[str, HdrHistogram] | None = None,
                     span_s: float = 1.0) -> None:
        """One second: its line in samples.jsonl, its non-empty histograms in the interval logs."""
        self._samples.write(json.dumps(sample, separators=(",", ":")) + "\n")
        self._samples.flush()
        for name, hist in (histograms or {}).items():
            log = self._logs.get(name)
            if log is not None and hist.get_total_count():
                log.write(hist, sample["t"] - 1.0, span_s)

    def write_summary(self, summary: dict) -> Path:
        final = self.path / SUMMARY
        write_private(final, json.dumps(summary, indent=2, sort_keys=False) + "\n")
        return final

    def close(self) -> None:
        self._samples.close()
        for log in self._logs.values():
            log.close()


def read_summary(path: Path) -> dict:
    return json.loads((Path(path) / SUMMARY).read_text(encoding="utf-8"))


def read_plan(path: Path) -> dict | None:
    """plan.json, or None for a folder without one (older runs)."""
    try:
        return json.loads((Path(path) / PLAN).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_samples(path: Path) -> list[dict]:
    """Every second's sample. A run killed (SIGKILL, power) while writing a line leaves that last
    line without its newline: it is left out, as the second it describes never finished. A broken
    line anywhere else is damage and raises."""
    with open(Path(path) / SAMPLES, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    torn = lines.pop()  # "" when the file ends with its newline
    samples = [json.loads(line) for line in lines if line.strip()]
    if torn.strip():
        try:
            samples.append(json.loads(torn))
        except json.JSONDecodeError:
            pass
    return samples


def read_hdrh(path: Path, name: str = HDRH_LOG) -> list[HdrHistogram]:
    """Every interval histogram of one of the run's interval logs, read by hdrh's HistogramLogReader."""
    log = Path(path) / name
    if not log.exists():
        return []
    return read_log_intervals(log)[0]


def read_log_intervals(log: Path) -> tuple[list[HdrHistogram], float]:
    """An interval log's histograms and its StartTime (epoch s). A run killed while a line was
    written leaves it cut: the intervals before it are whole and are read, the cut one is not."""
    torn = not log.read_bytes().endswith(b"\n")
    reader = HistogramLogReader(str(log), new_histogram())
    intervals: list[HdrHistogram] = []
    try:
        while (hist := reader.get_next_interval_histogram()) is not None:
            intervals.append(hist)
    except Exception:  # hdrh raises binascii, zlib, struct or its own codec errors for a cut line
        if not torn:
            raise
    finally:
        reader.close()
    return intervals, reader.get_start_time_sec()
