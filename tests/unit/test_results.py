"""The run folder: each sample is on disk as soon as it is written, the summary appears whole.

(The per-second histogram logs are tested where their format is decided, with the run folder's
integration tests.)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from twload.results import (
    HDRH_CONNECT_LOG,
    HDRH_LOG,
    PLAN,
    SAMPLES,
    SUMMARY,
    RunFolder,
    claim_run_dir,
    read_samples,
    read_summary,
)


def test_samples_and_summary_read_back(tmp_path):
    folder = RunFolder(tmp_path / "a" / "run")  # parents are created
    samples = [{"t": 1, "requests": 10, "status": {"200": 10}}, {"t": 2, "requests": 0, "errors": {"EPIPE": 1}}]
    for sample in samples:
        folder.write_sample(sample)
    summary = {"url": "http://127.0.0.1:1/", "requests": 10, "latency_us": {"p50": 120}}
    written = folder.write_summary(summary)
    folder.close()
    assert written == folder.path / SUMMARY
    assert read_samples(folder.path) == samples
    assert read_summary(folder.path) == summary
    assert not [p.name for p in folder.path.iterdir() if p.name.endswith(".tmp")]  # written whole, renamed


def test_each_sample_is_flushed_as_it_is_written(tmp_path):
    folder = RunFolder(tmp_path / "run")
    try:
        for tick in (1, 2, 3):
            folder.write_sample({"t": tick, "requests": tick})
            # read by another file object while the folder is still open: already on disk
            assert [s["t"] for s in read_samples(folder.path)] == list(range(1, tick + 1))
    finally:
        folder.close()


def test_samples_survive_a_process_that_dies_without_closing(tmp_path):
    """os._exit skips every close and flush: what a kill -9 or a crash leaves behind."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from twload.results import RunFolder
        folder = RunFolder(Path({str(tmp_path / "run")!r}))
        for tick in (1, 2, 3):
            folder.write_sample({{"t": tick, "requests": 5}})
        os._exit(9)
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert done.returncode == 9
    assert [s["t"] for s in read_samples(tmp_path / "run")] == [1, 2, 3]


def test_a_later_summary_replaces_the_earlier_one(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_summary({"requests": 1})
    folder.write_summary({"requests": 2, "interrupted": "SIGINT"})
    folder.close()
    text = (folder.path / SUMMARY).read_text(encoding="utf-8")
    assert json.loads(text) == {"requests": 2, "interrupted": "SIGINT"}


def test_read_samples_skips_blank_lines(tmp_path):
    (tmp_path / SAMPLES).write_text('{"t":1}\n\n{"t":2}\n', encoding="utf-8")
    assert read_samples(tmp_path) == [{"t": 1}, {"t": 2}]


def test_claim_run_dir_never_takes_an_existing_folder(tmp_path):
    first = claim_run_dir(str(tmp_path), prefix="demo-")
    assert first.parent == tmp_path and first.name.startswith("demo-") and first.is_dir()
    second = claim_run_dir(str(tmp_path), prefix="demo-")
    assert second != first and second.is_dir()


CLAIMERS = 12


def _claim_and_start_a_run(base: str, barrier) -> str:
    """What `twload run` without --out does: claim the default folder, then start its run in it."""
    from twload.results import RunFolderError

    barrier.wait()  # every process claims at the same instant, in the same second
    try:
        path = claim_run_dir(base)
        folder = RunFolder(path)
    except RunFolderError as exc:
        return f"refused: {exc}"
    folder.write_sample({"t": 1, "requests": 1})
    folder.close()
    return str(path)


def test_runs_started_at_once_each_get_their_own_default_folder(tmp_path):
    """Two terminals, a CI matrix: runs started in the same second never share (or fight over) a folder."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(CLAIMERS)
        with ctx.Pool(CLAIMERS) as pool:
            got = pool.starmap(_claim_and_start_a_run, [(str(tmp_path), barrier)] * CLAIMERS, chunksize=1)
    assert not [g for g in got if g.startswith("refused")], got
    assert len(set(got)) == CLAIMERS
    for path in got:
        assert [s["t"] for s in read_samples(Path(path))] == [1]


def _folder_with_three_seconds(path):
    from twload.metrics import new_histogram

    folder = RunFolder(path)
    folder.begin(1.7e9)
    for tick in (1, 2, 3):
        hist = new_histogram()
        for value in range(100, 5000, 7 * tick):
            hist.record_value(value)
        folder.write_sample({"t": tick, "requests": tick}, {"latency": hist})
    folder.close()
    return folder.path


def test_a_run_killed_mid_line_reads_back_its_whole_seconds(tmp_path):
    """SIGKILL while the last line was written: samples.jsonl and hdrh.log end in a cut line. The
    seconds before it read back; the cut one is left out (it never finished)."""
    from twload.results import HDRH_LOG, read_hdrh

    path = _folder_with_three_seconds(tmp_path / "run")
    whole = read_hdrh(path)
    for name in (SAMPLES, HDRH_LOG):
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[:-15])
    assert [s["t"] for s in read_samples(path)] == [1, 2]
    cut = read_hdrh(path)
    assert len(whole) == 3 and len(cut) == 2
    assert [h.get_total_count() for h in cut] == [h.get_total_count() for h in whole[:2]]


def test_damage_before_the_last_line_is_not_hidden(tmp_path):
    import pytest

    path = _folder_with_three_seconds(tmp_path / "run")
    lines = (path / SAMPLES).read_text().splitlines(keepends=True)
    (path / SAMPLES).write_text(lines[0][:-8] + "\n" + "".join(lines[1:]))
    with pytest.raises(json.JSONDecodeError):
        read_samples(path)


def modes(folder: Path) -> dict[str, int]:
    """The permission bits of a folder and of everything in it, by name ("." for the folder)."""
    return {".": stat.S_IMODE(folder.stat().st_mode)} | {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def test_a_run_folder_is_private_whatever_the_umask(tmp_path):
    """plan.json holds the command line (headers, tokens): the folder is 0700, its files 0600, even
    under umask 0 (a shared CI runner's) or a claimed default folder."""
    from twload.metrics import new_histogram

    old = os.umask(0)
    try:
        for path in (tmp_path / "a" / "run", claim_run_dir(str(tmp_path / "runs"))):
            folder = RunFolder(path)
            folder.write_plan({"command": ["twload", "run"]})
            folder.begin(1.7e9)
            hist = new_histogram()
            hist.record_value(100)
            folder.write_sample({"t": 1, "requests": 1}, {"latency": hist, "connect": hist})
            folder.write_summary({"requests": 1})
            folder.write_summary({"requests": 1, "again": True})  # replaced: the new file is private too
            folder.close()
            assert modes(path) == {".": 0o700, PLAN: 0o600, SAMPLES: 0o600, SUMMARY: 0o600,
                                   HDRH_LOG: 0o600, HDRH_CONNECT_LOG: 0o600}
    finally:
        os.umask(old)


def test_an_empty_out_folder_given_keeps_its_mode_and_gets_private_files(tmp_path):
    """A folder the user made and named with --out is theirs: its mode stays, the run's files are 0600."""
    given = tmp_path / "given"
    given.mkdir(mode=0o750)
    os.chmod(given, 0o750)
    old = os.umask(0)
    try:
        folder = RunFolder(given)
        folder.write_plan({})
        folder.close()
    finally:
        os.umask(old)
    assert modes(given) == {".": 0o750, PLAN: 0o600, SAMPLES: 0o600}
