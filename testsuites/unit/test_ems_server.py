"""The `ems` device kind in-process: its config round trip and errors, and three servers on
loopback (127.0.0.1-3, free ports) that elect, serve the peered service and answer from the shared
store when an element's owner cannot."""
from __future__ import annotations

import socket

import pytest

from emulators.cli.testing import ScriptedTerminal
from emulators.ems import peer_service
from emulators.ems.client import Client
from emulators.ems.server import EmsServer
from twin.polling import wait_for

pytestmark = pytest.mark.unit


def free_udp_ports(n: int) -> list[int]:
    """Two consecutive free ports per server: UDP election on p, TCP service on p + 1."""
    out: list[int] = []
    while len(out) < n:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind(("127.0.0.1", 0))
            p = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
            if all(abs(p - q) > 1 for q in out):
                out.append(p)
    return out


def server(tmp_path, i: int, config: str) -> tuple[EmsServer, ScriptedTerminal]:
    d = EmsServer(f"ems{i}", state_dir=tmp_path / f"ems{i}", users={}, enable_secret="", apply=False)
    d.tick_interval = 0.05
    d.start()
    d.lines["con"].privilege = 15
    t = ScriptedTerminal(d)
    t.cmd("terminal length 0")
    t.cmd("configure terminal")
    for line in config.strip().splitlines():
        out = t.cmd(line)
        assert not any(ln.startswith("%") for ln in out.split("\r\n")), (line, out)
    t.cmd("end")
    return d, t


def test_config_round_trips_and_says_why_it_is_not_running(tmp_path):
    d, t = server(tmp_path, 1, """
ems peer 1 address 127.0.0.1 port 7600
ems element r1 address 172.20.0.31
ems timers heartbeat 100 dead 600
ems poll-interval 2000
ems server-id 1
""")
    try:
        assert "not running (no `ems secret`)" in t.output("show ems")
        run = t.output("show running-config")
        for line in ("ems server-id 1", "ems peer 1 address 127.0.0.1 port 7600", "ems element r1 address 172.20.0.31",
                     "ems timers heartbeat 100 dead 600", "ems poll-interval 2000"):
            assert line in run
        t.cmd("configure terminal")
        assert "must be at least twice" in t.cmd("ems timers heartbeat 100 dead 150")
        assert "already belongs to another peer" in t.cmd("ems peer 2 address 127.0.0.1")
        assert "% Invalid" in t.cmd("ems peer 0 address 127.0.0.1")
        t.cmd("end")
    finally:
        d.close()


@pytest.fixture
def cluster(tmp_path):
    ports = free_udp_ports(3)
    store = tmp_path / "ems.db"
    common = "\n".join(f"ems peer {i} address 127.0.0.{i} port {p}" for i, p in enumerate(ports, 1))
    common += f"\nems secret s3cret\nems store {store}\nems timers heartbeat 20 dead 100\n"
    common += "\n".join(f"ems element r{i} address 127.0.9.{i}" for i in range(1, 6))
    servers = []
    try:
        for i in (1, 2, 3):
            servers.append(server(tmp_path, i, f"ems server-id {i}\n{common}"))
        yield servers, ports
    finally:
        for d, _ in servers:
            d.close()


def test_three_servers_elect_the_highest_and_any_answers(cluster):
    servers, ports = cluster
    wait_for(lambda: all(d.status()["master"] == 3 for d, _ in servers), timeout=10, what="master 3")
    master = wait_for(lambda: (a := servers[2][0].assignment()) and len(a) == 5 and a, timeout=10, what="assignment")
    assert sorted(list(master.values()).count(i) for i in (1, 2, 3)) == [1, 2, 2], master   # balanced
    out = servers[0][1].output("show ems")
    assert "role MEMBER" in out and "Master: 3" in out and "3   127.0.0.3        live" in out, out
    client = Client([("127.0.0.%d" % i, p + 1) for i, p in enumerate(ports, 1)])
    st = client.request({"op": "status"})["server"]
    assert st["master"] == 3 and st["assignment"] == master
    # an element nobody can reach: its owner answers from memory, a non-owner forwards to it
    owner = master["r1"]
    other = next(i for i in (1, 2, 3) if i != owner)
    rep = peer_service.call(f"127.0.0.{other}", ports[other - 1] + 1, {"op": "element", "name": "r1"})
    assert rep["forwarded_to"] == owner and rep["source"] == "memory", rep
    wait_for(lambda: peer_service.call(f"127.0.0.{owner}", ports[owner - 1] + 1,
                                       {"op": "element", "name": "r1"})["element"]["reachable"] is False,
             timeout=30, what="r1 polled and found unreachable")
    with pytest.raises(peer_service.PeerError, match="unknown element 'r9'"):
        client.request({"op": "element", "name": "r9"})
    with pytest.raises(peer_service.PeerError, match="no element has a LAN containing 10.9.9.9"):
        client.request({"op": "route", "src": "10.9.9.9", "dst": "10.9.9.10"})
    with pytest.raises(peer_service.PeerError, match="unknown op 'bogus'"):
        client.request({"op": "bogus"})
    # the master dies: 2 takes over and owns what 3 had
    servers[2][0].close()
    wait_for(lambda: servers[1][0].status()["role"] == "master", timeout=10, what="server 2 master")
    a = wait_for(lambda: (a := servers[1][0].assignment()) and 3 not in a.values() and a, timeout=10,
                 what="reassignment away from 3")
    assert sorted(a) == [f"r{i}" for i in range(1, 6)]
    rep = client.request({"op": "status"})                 # the client skips the dead server
    assert rep["server"]["master"] == 2
