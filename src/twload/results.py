"""The run folder: samples streamed as they come, summary written at the end.

One folder holds exactly one run: a folder that already holds one is refused, never
appended to (two runs' seconds in one samples.jsonl would be double-counted).

samples.jsonl gets one line per second, flushed at once, so a crash or Ctrl-C
loses at most the second in progress. summary.json is written atomically
(temp file + rename): a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"
LATENCY_LOG = "latency.hdr"  # one base64 HdrHistogram per second, for other tools
RUN_FILES = (SAMPLES, SUMMARY, LATENCY_LOG)


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

    def write_sample(self, sample: dict, latency_encoded: bytes = b"") -> None:
        self._samples.write(json.dumps(sample, separators=(",", ":")) + "\n")
        self._samples.flush()
        if latency_encoded:
            self._hdr.write(f"{sample['t']} {latency_encoded.decode('ascii')}\n")
            self._hdr.flush()

    def write_summary(self, summary: dict) -> Path:
        final = self.path / SUMMARY
        tmp = final.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, final)
        return final

    def close(self) -> None:
        self._samples.close()
        self._hdr.close()


def read_summary(path: Path) -> dict:
    return json.loads((Path(path) / SUMMARY).read_text(encoding="utf-8"))


def read_samples(path: Path) -> list[dict]:
    with open(Path(path) / SAMPLES, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
