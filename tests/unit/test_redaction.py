"""Credential headers: their values never reach plan.json or a report unless the user keeps them."""

from __future__ import annotations

import json
import sys

import pytest

from tests.unit.run_folders import Second, plan_json, summary_of, write_run
from twload.kernel.resolve import parse_target
from twload.plan import Plan
from twload.report import numbers
from twload.results import is_credential_header, plan_record, redact_command, redacted, shown_command

URL = "http://127.0.0.1:8080/"


@pytest.mark.parametrize("name", ["Authorization", "authorization", "PROXY-AUTHORIZATION", "Cookie", "set-cookie",
                                  "X-Api-Key", "x-auth-token", "X-My-Token", "X-Client-Secret", "X_API_KEY",
                                  "X-Amz-Security-Token", "X-Hub-Signature-256", "X-Session-Id", " Cookie"])
def test_credential_names(name):
    assert is_credential_header(name)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "User-Agent", "Host", "X-Request-Id", "Connection",
                                  "Cache-Control", "X-Forwarded-For"])
def test_other_names(name):
    assert not is_credential_header(name)


def test_redacted_says_the_size_in_bytes_and_only_once():
    assert redacted("Bearer abc") == "<redacted, 10 bytes>"
    assert redacted("clé") == "<redacted, 4 bytes>"  # UTF-8 bytes, as sent
    assert redacted(redacted("Bearer abc")) == "<redacted, 10 bytes>"


def test_every_spelling_of_the_header_option_is_redacted():
    argv = ["twload", "run", URL, "-H", "Authorization: Bearer abc", "--header", "cookie:a=b",
            "--header=X-Api-Key:  k3y ", "-HX-Auth-Token: t0k", "-H", "Accept: */*", "-H", "no colon",
            "--body", "Authorization: not a header"]
    assert redact_command(argv) == [
        "twload", "run", URL, "-H", "Authorization: <redacted, 10 bytes>", "--header", "cookie: <redacted, 3 bytes>",
        "--header=X-Api-Key: <redacted, 3 bytes>", "-HX-Auth-Token: <redacted, 3 bytes>", "-H", "Accept: */*",
        "-H", "no colon", "--body", "Authorization: not a header"]


def test_plan_record_redacts_unless_kept(monkeypatch):
    plan = Plan(target=parse_target(URL), url=URL, headers=(("Authorization", "Bearer abc"), ("Accept", "x")))
    monkeypatch.setattr(sys, "argv", ["twload", "run", URL, "-H", "Authorization: Bearer abc", "-H", "Accept: x"])
    record = plan_record(plan)
    assert "abc" not in json.dumps(record)
    assert record["plan"]["headers"] == [["Authorization", "<redacted, 10 bytes>"], ["Accept", "x"]]
    assert "credentials" not in record
    kept = plan_record(plan, keep_credentials=True)
    assert kept["credentials"] == "kept" and kept["plan"]["headers"][0] == ["Authorization", "Bearer abc"]
    assert "Authorization: Bearer abc" in kept["command"]
    assert plan.headers[0] == ("Authorization", "Bearer abc")  # what is sent is untouched


def test_a_report_of_an_older_folder_redacts_its_command(tmp_path):
    """Run folders written before redaction hold the command verbatim: the report does not show it."""
    seconds = [Second(latencies_us=[200] * 5)]
    command = ["twload", "run", URL, "-H", "Cookie: sid=0ld-s3cret"]
    old = write_run(tmp_path / "old", seconds, summary=summary_of(seconds), plan=plan_json() | {"command": command})
    kept = write_run(tmp_path / "kept", seconds, summary=summary_of(seconds),
                     plan=plan_json() | {"command": command, "credentials": "kept"})
    assert shown_command({"command": command})[-1] == "Cookie: <redacted, 14 bytes>"
    old_meta = numbers.run_numbers(numbers.read_run(old))
    assert "0ld-s3cret" not in json.dumps(old_meta)
    assert "Cookie: <redacted, 14 bytes>" in json.dumps(old_meta)
    assert "Cookie: sid=0ld-s3cret" in json.dumps(numbers.run_numbers(numbers.read_run(kept)))


def test_a_header_option_inside_a_cluster_of_short_flags_is_redacted():
    """click reads `-qH V` and `-kqHV` as -q, -k and -H V (the flags -q and -k take no value): the header
    is sent, and its value must not reach plan.json or a report either."""
    argv = ["twload", "run", URL, "-qH", "Authorization: Bearer abc", "-kqHCookie: sid=s3", "-kH", "Accept: */*",
            "-mHEAD", "-c4H"]
    assert redact_command(argv) == [
        "twload", "run", URL, "-qH", "Authorization: <redacted, 10 bytes>", "-kqHCookie: <redacted, 6 bytes>",
        "-kH", "Accept: */*", "-mHEAD", "-c4H"]
