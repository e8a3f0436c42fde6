"""The run folder: plan.json at the start, samples streamed as they come, summary at the end.

One folder holds exactly one run: a folder that already holds one is refused, never
appended to (two runs' seconds in one samples.jsonl would be double-counted).

samples.jsonl gets one line per second, flushed at once, so a crash or Ctrl-C
loses at most the second in progress. plan.json says what the run was, so that a
killed run can still be understood. plan.json and summary.json are written atomically
(temp file + rename): a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

from twload import __version__
from twload.plan import Plan

PLAN = "plan.json"
SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"
LATENCY_LOG = "latency.hdr"  # one base64 HdrHistogram per second, for other tools
RUN_FILES = (PLAN, SAMPLES, SUMMARY, LATENCY_LOG)


class RunFolderExists(Exception):
    """The folder already holds a run; the message is one line for the user."""


def default_run_dir(base: str = "twload-runs", prefix: str = "") -> Path:
    stamp = prefix + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(base) / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(base) / f"{stamp}-{n}"
    return path


def check_fresh(path: Path) -> None:
    """Raise RunFolderExists when `path` already holds (part of) a run."""
    held = [name for name in RUN_FILES if (Path(path) / name).exists()]
    if held:
        raise RunFolderExists(f"{path} already holds a run ({held[0]}); give a new or empty --out folder")


def plan_fields(plan: Plan) -> dict:
    """The plan as plain JSON values (the body by its size only: it may be large or binary)."""
    fields = {
        "url": plan.url,
        "method": plan.method,
        "headers": [list(h) for h in plan.headers],
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
    }
    engine = getattr(plan, "engine", None)  # the field comes with the compiled core
    if engine is not None:
        fields["engine"] = engine
    return fields


def plan_record(plan: Plan, sysctls: dict | None = None, preflight: dict | None = None) -> dict:
    """What plan.json holds: the command, the plan, where and when it ran, the kernel's settings."""
    now = time.time()
    return {
        "command": list(sys.argv),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "started_epoch_s": round(now, 3),
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "twload_version": __version__,
        "plan": plan_fields(plan),
        "sysctls": sysctls or {},
        "preflight": preflight or {},
    }


def _write_atomic(final: Path, text: str) -> None:
    tmp = final.with_name(final.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, final)


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        check_fresh(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        # "x": created here or refused, so two runs started at once cannot share the folder either
        try:
            self._samples = open(self.path / SAMPLES, "x", encoding="utf-8")
            self._hdr = open(self.path / LATENCY_LOG, "x", encoding="ascii")
        except FileExistsError:
            raise RunFolderExists(f"{path} already holds a run; give a new or empty --out folder") from None

    def write_plan(self, record: dict) -> None:
        _write_atomic(self.path / PLAN, json.dumps(record, indent=2) + "\n")

    def write_sample(self, sample: dict, latency_encoded: bytes = b"") -> None:
        self._samples.write(json.dumps(sample, separators=(",", ":")) + "\n")
        self._samples.flush()
        if latency_encoded:
            self._hdr.write(f"{sample['t']} {latency_encoded.decode('ascii')}\n")
            self._hdr.flush()

    def write_summary(self, summary: dict) -> Path:
        final = self.path / SUMMARY
        _write_atomic(final, json.dumps(summary, indent=2, sort_keys=False) + "\n")
        return final

    def close(self) -> None:
        self._samples.close()
        self._hdr.close()


def read_summary(path: Path) -> dict:
    return json.loads((Path(path) / SUMMARY).read_text(encoding="utf-8"))


def read_plan(path: Path) -> dict | None:
    """plan.json, or None for a folder without one (older runs)."""
    try:
        return json.loads((Path(path) / PLAN).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_samples(path: Path) -> list[dict]:
    with open(Path(path) / SAMPLES, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
