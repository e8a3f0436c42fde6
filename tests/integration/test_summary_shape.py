"""summary.json is an interface: the typed summary writes the same keys, in the same order and nesting,
as main wrote them before it was typed (summary_shapes_main.json, made with main's code for the same
plans), and reads its own file back to the same bytes."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.summary_shape import PLANS, shape
from twload.merge.summary import Summary

MAIN_SHAPES = json.loads((Path(__file__).parent / "summary_shapes_main.json").read_text())


@pytest.mark.parametrize("name", sorted(PLANS))
def test_summary_json_has_mains_keys_and_reads_back(twload_server, tmp_path, name):
    server = twload_server()
    out = tmp_path / "run"
    proc = run_cli("run", server.url, *PLANS[name], "--json", "-q", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    written = json.loads((out / "summary.json").read_text())
    # `behind` is written only when the open loop fell behind its schedule: on a loaded host it may
    # be, whatever the code (it failed this test once under a load average of 17); its own test is
    # the merger's. The rest of the shape is the plan's.
    assert isinstance(written.get("behind", ""), str)
    assert shape({k: v for k, v in written.items() if k != "behind"}) == MAIN_SHAPES[name]
    assert json.loads(proc.stdout) == written  # --json prints what was written
    assert json.dumps(Summary.from_dict(written).to_dict()) == json.dumps(written)
