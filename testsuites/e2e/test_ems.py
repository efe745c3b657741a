"""Element-management servers (spec 001), end to end in labs/ems.yaml: five servers elect a master
with the bully algorithm over their LAN, the master assigns seven routers, clients ask any server,
and circuits are routed across the servers' domains and provisioned through the routers' CLIs so
that real traffic flows. Servers are killed, restarted and partitioned; forged election messages
come from a client host."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import networkx as nx
import pytest

from twin.polling import wait_for
from twin.state import pid_alive
from twin.traffic.iperf import iperf3

pytestmark = [pytest.mark.e2e, pytest.mark.ems, pytest.mark.lab("labs/ems.yaml")]

SERVERS = {f"ems{i}": i for i in range(1, 6)}
ADDR = {i: f"10.0.0.{i}" for i in range(1, 6)}
ELEMENTS = [f"r{i}" for i in range(1, 8)]
SECRET = "twinems"
ELECTION_DEADLINE_S = 10.0      # the lab's timers are 100 ms heartbeats, 600 ms dead: generous on 2 busy cores


def client(lab, *args: str, node: str = "c1", servers: list[int] | None = None, timeout: float = 60) -> dict:
    """The EMS client, run in a client host; returns its JSON answer (or {"error": ...})."""
    addrs = ",".join(ADDR[i] for i in (servers or sorted(ADDR)))
    res = lab.nodes.run(node, [sys.executable, "-m", "emulators.ems.client", "--servers", addrs, "--json",
                               "--db", str(lab.dir / "ems.db"), *args], timeout=timeout)
    if res.returncode != 0:
        return {"error": res.stderr.strip(), "rc": res.returncode}
    return json.loads(res.stdout.strip().splitlines()[-1])


def statuses(lab) -> dict[int, dict]:
    """Each server's own view, asked over its console (reachable even across a partition)."""
    out = {}
    for node, i in SERVERS.items():
        if not lab.node_alive(node) or not _emulator_alive(lab, node):
            continue
        rep = client(lab, "status", servers=[i], node="c1" if i <= 2 else "c2")
        s = rep.get("servers", [{}])[0]
        if s.get("role") not in (None, "unreachable"):
            out[i] = s
    return out


def _emulator_alive(lab, node: str) -> bool:
    return bool(lab.state.nodes[node].emulator_pid) and pid_alive(lab.state.nodes[node].emulator_pid)


def converged(lab, servers: set[int], master: int) -> dict[int, dict] | None:
    """Every listed server agrees on `master`, only it is master, and its assignment covers every
    element once, on live servers only."""
    st = statuses(lab)
    if set(st) != servers:
        return None
    if any(s["master"] != master for s in st.values()):
        return None
    if [i for i, s in st.items() if s["role"] == "master"] != [master]:
        return None
    assignment = st[master]["assignment"]
    if sorted(assignment) != ELEMENTS or not set(assignment.values()) <= servers:
        return None
    return st


def kill(lab, node: str) -> float:
    """A crash, not a shutdown: the process gets no chance to say goodbye."""
    t = time.time()
    os.kill(lab.state.nodes[node].emulator_pid, signal.SIGKILL)
    wait_for(lambda: not _emulator_alive(lab, node), timeout=10, what=f"{node} to die")
    return t


@pytest.fixture
def stable(lab):
    """All five servers up, the trunk up, ems5 master, every element polled by its owner."""
    lab.faults.link_up("sa:eth9")
    dead = [n for n in SERVERS if not _emulator_alive(lab, n)]
    for n in dead:
        lab.start_device(n)
    if dead:
        lab.wait_devices(dead, 60)
    wait_for(lambda: converged(lab, set(SERVERS.values()), 5), timeout=60, what="one master (ems5) for all")

    def polled():
        v = client(lab, "view")
        return v if "elements" in v and [e["name"] for e in v["elements"]] == ELEMENTS and \
            all(e["reachable"] for e in v["elements"]) else None
    wait_for(polled, timeout=90, what="every element polled by its owner")
    return lab


def master_intervals(lab, since: float, killed: dict[str, float]) -> list[tuple[float, float, int]]:
    """Who was master when, from every server's own events (one clock: one machine)."""
    out = []
    for node, i in SERVERS.items():
        evs = sorted(lab.device_events(node, None, since), key=lambda e: e["time"])
        start = None
        for e in evs:
            if e["type"] == "ems-became-master" and start is None:
                start = e["time"]
            elif e["type"] in ("ems-stepped-down",) and start is not None:
                out.append((start, e["time"], i))
                start = None
            elif e["type"] == "start" and start is not None:          # restarted: the old life ended
                out.append((start, e["time"], i))
                start = None
        if start is not None:
            end = killed.get(node, time.time())
            out.append((start, end if end > start else time.time(), i))
    return sorted(out)


# ---------------------------------------------------------------------------------------- election
def test_boot_elects_the_highest_id_and_assigns_every_element_once(stable):
    lab = stable
    st = converged(lab, set(SERVERS.values()), 5)
    assert st is not None
    assignment = st[5]["assignment"]
    counts = [list(assignment.values()).count(i) for i in SERVERS.values()]
    assert max(counts) - min(counts) <= 1, f"unbalanced assignment {assignment}"
    for i, s in st.items():                                   # every member holds the master's assignment
        assert s["assignment"] == assignment, f"server {i} disagrees: {s['assignment']} vs {assignment}"
    with lab.device("ems1").console() as c:
        out = c.run("show ems")
    assert "Master: 5" in out and "role MEMBER" in out, out


def test_master_death_elects_the_next_highest_and_clients_keep_being_answered(stable, timings):
    lab = stable
    load = subprocess.Popen(lab.nodes.wrap("c1", [sys.executable, "-m", "emulators.ems.client", "--servers",
                                                  ",".join(ADDR.values()), "--json", "load", "--count", "80",
                                                  "--interval", "0.05", "--op", "view"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = json.loads(load.stdout.readline() or "{}")   # the load is flowing before the fault
    assert first.get("started"), load.stderr.read() if load.poll() is not None else first
    t0 = kill(lab, "ems5")
    became = lab.wait_device_event("ems4", "ems-became-master", t0, timeout=ELECTION_DEADLINE_S)
    st = wait_for(lambda: converged(lab, {1, 2, 3, 4}, 4), timeout=ELECTION_DEADLINE_S,
                  what="ems4 master of the four live servers")
    reassigned = time.time()
    out, err = load.communicate(timeout=120)
    summary = json.loads(out.strip().splitlines()[-1])
    timings.record("master death to new master (ems4)", (became["time"] - t0) * 1000)
    timings.record("master death to reassignment observed", (reassigned - t0) * 1000)
    timings.record("client requests failed during the change", summary["failed"], unit="requests")
    assert all(s != 5 for s in st[4]["assignment"].values())
    assert summary["failed"] == 0 and summary["answered"] == 80, summary


def test_restarted_old_master_bullies_back_without_two_masters(stable, timings):
    lab = stable
    t0 = time.time()
    killed = {"ems5": kill(lab, "ems5")}
    wait_for(lambda: converged(lab, {1, 2, 3, 4}, 4), timeout=ELECTION_DEADLINE_S, what="ems4 master")
    t1 = time.time()
    lab.start_device("ems5")
    lab.wait_devices(["ems5"], 60)
    back = lab.wait_device_event("ems5", "ems-became-master", t1, timeout=60)
    wait_for(lambda: converged(lab, set(SERVERS.values()), 5), timeout=ELECTION_DEADLINE_S, what="ems5 master again")
    stepped = lab.wait_device_event("ems4", "ems-stepped-down", t1, timeout=5)
    timings.record("ems4 stepped down before ems5 declared", (back["time"] - stepped["time"]) * 1000)
    intervals = master_intervals(lab, t0, killed)
    for (s1, e1, a), (s2, e2, b) in zip(intervals, intervals[1:]):
        assert s2 >= e1, f"servers {a} and {b} were both master from {s2:.3f} to {min(e1, e2):.3f}: {intervals}"
    assert [i for _, _, i in intervals][-2:] == [4, 5], intervals


def test_partition_elects_a_master_per_side_and_heals_to_one(stable, timings):
    lab = stable
    t0 = time.time()
    lab.faults.link_down("sa:eth9")
    try:
        wait_for(lambda: all(s["master"] == (2 if i <= 2 else 5) for i, s in statuses(lab).items()),
                 timeout=ELECTION_DEADLINE_S, what="each side of the partition to elect its own master")
        timings.record("partition to a master on each side (observed)", (time.time() - t0) * 1000)
        sides = {i: (s["role"], s["master"]) for i, s in statuses(lab).items()}
    finally:
        t1 = time.time()
        lab.faults.link_up("sa:eth9")
    assert sides == {1: ("member", 2), 2: ("master", 2), 3: ("member", 5), 4: ("member", 5), 5: ("master", 5)}
    wait_for(lambda: converged(lab, set(SERVERS.values()), 5), timeout=ELECTION_DEADLINE_S, what="one master after healing")
    stepped = lab.wait_device_event("ems2", "ems-stepped-down", t1, timeout=5)
    timings.record("partition healed to one master", (stepped["time"] - t1) * 1000)


def test_forged_and_malformed_election_messages_change_nothing(stable):
    """From c1, a host on the servers' LAN that is not a member: garbage, a wrong secret, a valid
    signature from an unknown server ID, and a COORDINATOR that claims to be server 5 (4, to ems5)
    from c1's address. Each is dropped, counted by reason and logged; the master and its term stay."""
    lab = stable
    before = statuses(lab)
    t0 = time.time()
    script = f"""
import json, hmac, hashlib, os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def sign(body, key):
    data = b"TWEM" + json.dumps(body, separators=(",", ":")).encode()
    return data + hmac.new(key, data, hashlib.sha256).digest()
def msg(sender, typ="COORDINATOR"):
    return {{"v": 1, "type": typ, "from": sender, "boot": 7, "seq": int(time.time() * 1e6), "ts": time.time(),
             "term": 99, "data": {{}}}}
for i in range(1, 6):
    dst = ("10.0.0.%d" % i, 7400)
    s.sendto(b"garbage", dst)
    s.sendto(sign(msg(5), b"wrong-secret"), dst)
    s.sendto(sign(msg(9), {SECRET!r}.encode()), dst)
    s.sendto(sign(msg(5 if i != 5 else 4), {SECRET!r}.encode()), dst)   # a real member's ID, from c1
print("sent")
"""
    res = lab.nodes.run("c1", [sys.executable, "-c", script], timeout=30)
    assert res.returncode == 0, res.stderr
    want = {"malformed", "bad-hmac", "unknown-sender", "spoofed"}

    seen: dict[str, set[str]] = {}

    def dropped():
        seen.update({n: {e["reason"] for e in lab.device_events(n, "ems-message-dropped", t0)} for n in SERVERS})
        return all(want <= r for r in seen.values())
    try:
        wait_for(dropped, timeout=10, what=f"every server to drop {sorted(want)}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; seen: {seen}") from None
    after = converged(lab, set(SERVERS.values()), 5)
    assert after is not None and after[5]["term"] == before[5]["term"], (before, after)
    with lab.device("ems3").console() as c:
        c.enable()
        assert "dropped (spoofed)" in c.run("show logging | include EMS-4-DROPPED")
    # the peered service: garbage gets an error reply, the server keeps serving
    junk = lab.nodes.run("c1", [sys.executable, "-c", "import socket; s = socket.create_connection(('10.0.0.3', 7401));"
                                "s.sendall(b'not json\\n'); print(s.recv(4096).decode())"], timeout=30)
    assert "malformed request" in junk.stdout, junk.stdout + junk.stderr
    assert client(lab, "status", servers=[3])["servers"][0]["master"] == 5


# ---------------------------------------------------------------------------------------- services
def test_views_from_memory_and_store_and_requests_forwarded_to_the_owner(stable):
    lab = stable
    mem = client(lab, "view")
    db = client(lab, "view", "--source", "db")
    assert [e["name"] for e in mem["elements"]] == ELEMENTS
    assert {e["name"]: e["server"] for e in db["elements"]} == {e["name"]: e["server"] for e in mem["elements"]}
    owner = {e["name"]: e["server"] for e in mem["elements"]}
    other = next(i for i in SERVERS.values() if i != owner["r6"])
    # a nodal alarm raised by r6 reaches its owner's memory, and any server answers for it
    with lab.device("r6").console() as c:
        c.enable()
        c.configure(["interface eth1", "shutdown"])
        c.configure(["interface eth1", "no shutdown"])

    def alarm():
        rep = client(lab, "element", "r6", servers=[other])
        return rep if any(a["mnemonic"] == "LINK-3-UPDOWN" for a in rep["element"]["alarms"]) else None
    rep = wait_for(alarm, timeout=30, what="r6's link alarm in its owner's memory")
    assert rep["forwarded_to"] == owner["r6"] and rep["source"] == "memory", rep
    events = client(lab, "events")["events"]
    assert any(e["type"] == "became-master" for e in events), events[-5:]
    # the operator's command: `twin ems` runs the client inside the lab
    twin = subprocess.run([os.path.join(os.path.dirname(sys.executable), "twin"), "ems", "--lab", lab.prefix, "view"],
                          capture_output=True, text=True, timeout=60)
    assert twin.returncode == 0 and "r7" in twin.stdout and "Servers (memory)" in twin.stdout, twin.stdout + twin.stderr


def _router_graph(lab) -> nx.Graph:
    g = nx.Graph()
    for link in lab.model.spec.links:
        a, b = (e.node for e in link.endpoints)
        if a.startswith("r") and b.startswith("r"):
            g.add_edge(a, b)
    return g


def _ping(lab, src: str, dst: str) -> bool:
    return lab.nodes.run(src, ["ping", "-c", "1", "-W", "1", dst], timeout=10).returncode == 0


def test_circuit_route_is_a_shortest_path_and_provisioning_carries_traffic(stable, timings):
    lab = stable
    g = _router_graph(lab)
    assert not _ping(lab, "h1", "10.4.0.10"), "h1 reaches h4 before any circuit"
    for src, dst, a, b in (("10.1.0.10", "10.4.0.10", "r1", "r4"), ("10.1.0.0/24", "10.3.0.10", "r1", "r3"),
                           ("10.4.0.10", "10.3.0.10", "r4", "r3")):
        r = client(lab, "route", src, dst)
        assert "path" in r, r
        assert r["path"][0] == a and r["path"][-1] == b and nx.is_path(g, r["path"]), r
        assert len(r["path"]) - 1 == nx.shortest_path_length(g, a, b), (r["path"], nx.shortest_path(g, a, b))
    t0 = time.monotonic()
    p = client(lab, "provision", "10.1.0.10", "10.4.0.10")
    assert p.get("state") == "provisioned", p
    wait_for(lambda: _ping(lab, "h1", "10.4.0.10"), timeout=20, what="h1 to reach h4 over the circuit")
    timings.record("circuit provisioned to first ping through", (time.monotonic() - t0) * 1000)
    assert p["servers_asked"] and set(p["config"]) == set(p["path"]), p
    tcp = iperf3(lab.nodes, "h1", "h4", "10.4.0.10", seconds=1)
    timings.record("TCP throughput over the circuit", tcp.bits_per_second / 1e6, unit="Mbit/s")
    assert tcp.bits_per_second > 1e6, tcp
    with lab.device(p["path"][1]).console() as c:
        c.enable()
        assert "10.4.0.0" in c.run("show ip route")
    r = client(lab, "unprovision", "10.1.0.10", "10.4.0.10")
    assert r.get("state") == "removed", r
    wait_for(lambda: not _ping(lab, "h1", "10.4.0.10"), timeout=20, what="the circuit to stop carrying traffic")
    # unreachable endpoints: clear errors
    assert "no route" in client(lab, "route", "10.1.0.10", "10.7.0.10").get("error", ""), "r7 is isolated"
    err = client(lab, "route", "10.1.0.10", "10.99.0.1").get("error", "")
    assert "no element has a LAN containing 10.99.0.1" in err, err
