"""Prefix and port allocation and the state file: what keeps parallel labs apart."""
from __future__ import annotations

import multiprocessing
import socket

import pytest

from twin import ports
from twin.lab.schema import PREFIX_LEN
from twin.naming import allocate_prefix, prefix_stem
from twin.state import LabState, LinkState, NodeState, all_states, pid_alive

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TWIN_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_prefix_shape():
    assert prefix_stem("default") == "def"
    assert prefix_stem("A-b") == "abx"
    p = allocate_prefix("default")
    assert len(p) == PREFIX_LEN and p.startswith("def")


def test_prefixes_are_unique_and_none_starts_another():
    got = [allocate_prefix("cluster") for _ in range(50)]
    assert len(set(got)) == 50
    assert all(len(p) == PREFIX_LEN for p in got)


def _alloc(n, q):
    q.put([allocate_prefix("par") for _ in range(n)])


def test_prefixes_unique_across_processes():
    q = multiprocessing.get_context("fork").Queue()
    procs = [multiprocessing.get_context("fork").Process(target=_alloc, args=(10, q)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [x for _ in procs for x in q.get(timeout=60)]
    for p in procs:
        p.join(10)
    assert len(got) == 40 and len(set(got)) == 40


def test_ports_unique_bindable_and_cooled_off():
    a = ports.allocate_port("lab-a")
    b = ports.allocate_port("lab-b")
    assert a != b and ports.PORT_MIN <= a <= ports.PORT_MAX
    with socket.socket() as s:
        s.bind(("127.0.0.1", a))  # it really is free
    assert ports.release_ports("lab-a") == [a]
    # a released port is not handed out again during the cool-off...
    again = {ports.allocate_port("lab-c") for _ in range(20)}
    assert a not in again
    # ...but is after it
    ports.release_ports("lab-c")
    later = ports.allocate_port("lab-a", now=10**10)
    assert ports.PORT_MIN <= later <= ports.PORT_MAX


def test_port_in_use_is_skipped(monkeypatch):
    monkeypatch.setattr(ports, "PORT_MIN", 30000)
    monkeypatch.setattr(ports, "PORT_MAX", 30001)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", 30000))
        except OSError:
            pytest.skip("port 30000 busy on this machine")
        s.listen()
        got = {ports.allocate_port(f"x{i}") for i in range(1)}
        assert got == {30001}


def test_state_round_trip_and_listing():
    st = LabState(name="t", prefix=allocate_prefix("t"), owner_pid=1)
    st.nodes["h1"] = NodeState(kind="host", pid=123, netns=456, interfaces={"eth1": "10.0.0.1/24"})
    st.links.append(LinkState(a="h1:eth1", b="s1:eth1", root_ifnames=["txx00s1-eth1"]))
    st.save()
    back = LabState.load(st.prefix)
    assert back.nodes["h1"].interfaces == {"eth1": "10.0.0.1/24"}
    assert back.links[0].root_ifnames == ["txx00s1-eth1"]
    assert [s.prefix for s in all_states()] == [st.prefix]


def test_pid_alive():
    import os
    assert pid_alive(os.getpid())
    assert not pid_alive(0) and not pid_alive(2**22 + 7)


def test_a_removed_labs_prefix_is_not_reused_at_once():
    import shutil

    from twin.naming import mark_released
    from twin.registry import lab_dir

    first = allocate_prefix("reuse")
    shutil.rmtree(lab_dir(first))
    mark_released(first)
    assert allocate_prefix("reuse") != first
