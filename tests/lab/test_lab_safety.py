"""The lab's own safety, as root in real namespaces: values reach the kernel as data."""

from __future__ import annotations

import pytest

from twload.lab.topology import LabError


def test_a_sysctl_value_is_data_not_a_command(direct, tmp_path):
    """Host.sysctl once ran `sh -c "echo '<value>' > <path>"`: a quote in the value ran the rest as root."""
    ran = tmp_path / "ran"
    before = direct.client.read_sysctl("net.ipv4.tcp_tw_reuse")
    with pytest.raises(LabError, match="cannot set net.ipv4.tcp_tw_reuse"):
        direct.client.sysctl("net.ipv4.tcp_tw_reuse", f"1'; touch {ran}; echo '")
    assert not ran.exists()
    assert direct.client.read_sysctl("net.ipv4.tcp_tw_reuse") == before
    direct.client.sysctl("net.ipv4.tcp_tw_reuse", 0)  # a plain value still lands
    assert direct.client.read_sysctl("net.ipv4.tcp_tw_reuse") == "0"


@pytest.mark.parametrize("name", ["/etc/passwd", "net/../../etc/x", "net.ipv4.tcp_tw_reuse/../../x", ""])
def test_a_sysctl_name_that_could_lead_out_of_proc_sys_is_refused(direct, name):
    with pytest.raises(LabError, match="not a sysctl name"):
        direct.client.sysctl(name, 1)
