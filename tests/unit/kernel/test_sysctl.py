"""`doctor --restore` against a stand-in for /proc/sys: only the sysctls doctor sets, all checked first."""

import json

import pytest

from twload.kernel import sysctl


def fake_root(tmp_path):
    root = tmp_path / "proc-sys"
    for name in ("net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range"):
        path = sysctl.sysctl_path(name, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("untouched\n")
    return root


def saved(tmp_path, entries) -> sysctl.SavedSysctls:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(entries))
    return sysctl.SavedSysctls(state, root=fake_root(tmp_path))


def test_restore_writes_back_what_fix_saved(tmp_path):
    s = saved(tmp_path, {"net.ipv4.tcp_tw_reuse": "0", "net.ipv4.ip_local_port_range": "32768\t60999"})
    assert s.restore() == {"net.ipv4.tcp_tw_reuse": "0", "net.ipv4.ip_local_port_range": "32768\t60999"}
    assert sysctl.sysctl_path("net.ipv4.tcp_tw_reuse", s.root).read_text() == "0\n"
    assert sysctl.sysctl_path("net.ipv4.ip_local_port_range", s.root).read_text() == "32768\t60999\n"
    assert not s.path.exists()


@pytest.mark.parametrize("hostile", [
    {"/{outside}": "1"},  # root / "/abs" is "/abs": the old escape
    {"net/../../{outside}": "1"},
    {"kernel.core_pattern": "|/bin/sh"},  # a real sysctl, but not one doctor sets
    {"net.ipv4.tcp_tw_reuse": "1; reboot"},  # a name doctor sets, a value none of them holds
    {"net.ipv4.tcp_tw_reuse": 1},
])
def test_one_entry_doctor_never_saved_refuses_the_whole_file_before_any_write(tmp_path, hostile):
    outside = tmp_path / "outside"
    entries = {"net.ipv4.ip_local_port_range": "1024 65535"}  # fine on its own, and listed first
    entries |= {key.format(outside=outside): value for key, value in hostile.items()}
    s = saved(tmp_path, entries)
    with pytest.raises(sysctl.RefusedSysctl) as refused:
        s.restore()
    assert repr(next(iter(hostile)).format(outside=outside)) in str(refused.value)
    assert not outside.exists()
    for name in ("net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range"):
        assert sysctl.sysctl_path(name, s.root).read_text() == "untouched\n"
    assert s.path.exists()  # kept, for the user to read


@pytest.mark.parametrize("content", ["[]", "not json", '"net.ipv4.tcp_tw_reuse"'])
def test_a_state_file_that_is_no_mapping_is_refused(tmp_path, content):
    s = sysctl.SavedSysctls(tmp_path / "state.json", root=fake_root(tmp_path))
    s.path.write_text(content)
    with pytest.raises(sysctl.RefusedSysctl, match="no saved sysctls"):
        s.restore()


def test_write_sysctl_refuses_a_name_doctor_never_sets(tmp_path):
    with pytest.raises(sysctl.RefusedSysctl, match="not a sysctl doctor sets"):
        sysctl.write_sysctl("kernel.core_pattern", "core", fake_root(tmp_path))
    assert not (tmp_path / "proc-sys" / "kernel").exists()
