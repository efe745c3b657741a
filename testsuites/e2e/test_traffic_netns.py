"""Traffic tools against two real network namespaces joined by a veth pair (no Mininet, no OVS).

The namespaces, the veth pair and its addresses exist only inside namespaces this module creates
(names carry our PID so parallel runs don't collide); the root namespace gets no address and sends no
lab traffic. Teardown stops only the `sleep` holders we started, by PID, and deletes only our
namespaces.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from twin.nodeexec import NodeExec
from twin.traffic import IperfError, ProbeError, ProbeStream, iperf3, ping_mesh
from twin.traffic.probe import outages_summary

pytestmark = pytest.mark.e2e


@dataclass
class Pair:
    nodes: NodeExec
    ns: dict[str, str]       # node -> namespace name
    intf: dict[str, str]     # node -> its veth end
    ip: dict[str, str]       # node -> address

    def link(self, node: str, up: bool) -> None:
        _ip(["-n", self.ns[node], "link", "set", self.intf[node], "up" if up else "down"])


def _ip(args: list[str]) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    pid = os.getpid()
    ns = {"a": f"twtr{pid}a", "b": f"twtr{pid}b"}
    intf = {"a": f"tv{pid}a", "b": f"tv{pid}b"}      # <= 15 characters for any PID up to 4194304
    subnet = 10 + pid % 200
    ip = {"a": f"10.199.{subnet}.1", "b": f"10.199.{subnet}.2"}
    holders: list[subprocess.Popen] = []
    created: list[str] = []
    try:
        for node in ("a", "b"):
            _ip(["netns", "add", ns[node]])
            created.append(ns[node])
        # Both ends are created directly inside the namespaces: never an interface in the root one.
        _ip(["link", "add", intf["a"], "netns", ns["a"], "type", "veth",
             "peer", "name", intf["b"], "netns", ns["b"]])
        for node in ("a", "b"):
            _ip(["-n", ns[node], "link", "set", "lo", "up"])
            _ip(["-n", ns[node], "addr", "add", f"{ip[node]}/24", "dev", intf[node]])
            _ip(["-n", ns[node], "link", "set", intf[node], "up"])
            # `ip netns exec` execs `sleep`, so this PID is a process living in the namespace.
            holders.append(subprocess.Popen(["ip", "netns", "exec", ns[node], "sleep", "infinity"],
                                            stdin=subprocess.DEVNULL))
        nodes = NodeExec({"a": holders[0].pid, "b": holders[1].pid})
        deadline = time.monotonic() + 5
        while any(os.readlink(f"/proc/{p.pid}/ns/net") == os.readlink("/proc/self/ns/net") for p in holders):
            assert time.monotonic() < deadline, "namespace holders never entered their namespaces"
            time.sleep(0.01)
        for node in ("a", "b"):
            nodes.run(node, ["ethtool", "-K", intf[node], "tx", "off"], timeout=10, check=True)
        yield Pair(nodes=nodes, ns=ns, intf=intf, ip=ip)
    finally:
        for proc in holders:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def _poll(cond, timeout_s: float, what: str, interval_s: float = 0.005):
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def test_probe_no_outage(pair: Pair) -> None:
    with ProbeStream(pair.nodes, "a", "b", pair.ip["b"], port=7777, interval_ms=5) as stream:
        first = stream.progress()
        _poll(lambda: (p := stream.progress()) and p.received >= first.received + 100, 10,
              "100 more echoes")
    r = stream.result
    assert r is not None
    assert r.sent >= 100 and r.lost == 0, f"{r}\n{outages_summary(r.outages)}"
    assert r.outages == [] and r.max_outage_ms == 0
    assert r.rtt_p50_ms is not None and 0 < r.rtt_p50_ms < 50
    assert r.start_wall <= time.time()


def test_probe_measures_link_down_outage(pair: Pair) -> None:
    down_for_s = 0.5
    stream = ProbeStream(pair.nodes, "a", "b", pair.ip["b"], port=7778, interval_ms=2)
    stream.start()
    try:
        _poll(lambda: stream.progress().received >= 50, 10, "echoes flowing before the fault")
        # The link is surely down between the end of the "down" command and the start of the "up"
        # command, and surely up outside the span from the start of "down" to the end of "up"; process
        # start-up of `ip` on a loaded machine can take tens of ms, so bound the outage by both.
        t_down = time.time()
        pair.link("a", up=False)
        t_down_done = time.time()
        # Packets stopped: no echo for clearly longer than a few intervals.
        _poll(lambda: (p := stream.progress()).last_rx_age_ms is not None and p.last_rx_age_ms > 50, 5,
              "echoes to stop after the link went down")
        stopped_at = stream.progress().received
        while time.time() < t_down + down_for_s:
            time.sleep(0.005)
        t_up = time.time()
        pair.link("a", up=True)
        t_up_done = time.time()
        _poll(lambda: stream.progress().received > stopped_at + 20, 10,
              "echoes to resume after the link came back")
    finally:
        r = stream.stop()
    surely_down_ms = (t_up - t_down_done) * 1000
    at_most_ms = (t_up_done - t_down) * 1000
    outage = r.outage_after(t_down)
    context = (f"link down for {surely_down_ms:.0f}..{at_most_ms:.0f} ms from {t_down:.3f}\n{r}\n"
               f"{outages_summary(r.outages)}")
    assert outage is not None, f"no outage after the fault\n{context}"
    assert outage.recovered, context
    # Measured from the first lost to the first recovered probe: at least the time the link was surely
    # down (minus an interval and an RTT), and not much more than link-up plus ARP.
    assert surely_down_ms - 20 <= outage.duration_ms <= at_most_ms + 500, context
    assert outage.lost >= int(surely_down_ms / 2 * 0.8), context
    assert t_down - 0.05 <= outage.start_wall <= t_down_done + 0.05, context
    assert r.max_outage_ms == pytest.approx(outage.duration_ms)
    assert len([o for o in r.outages if o.lost > 1]) == 1, context


def test_wait_until_flowing_names_the_path(pair: Pair) -> None:
    # Nobody at this address inside b's subnet: the error must say which path and what was seen.
    stream = ProbeStream(pair.nodes, "a", "b", pair.ip["b"].rsplit(".", 1)[0] + ".99", port=7779,
                         flow_timeout_s=0.5)
    with pytest.raises(ProbeError) as info:
        stream.start()
    msg = str(info.value)
    assert "a->b" in msg and "not flowing" in msg and "sent" in msg


def test_iperf3_tcp(pair: Pair) -> None:
    r = iperf3(pair.nodes, "a", "b", pair.ip["b"], seconds=1, port=5299)
    assert r.bits_per_second > 0 and r.bytes > 0, str(r)
    assert r.retransmits is not None
    assert "end" in r.raw


def test_iperf3_udp(pair: Pair) -> None:
    r = iperf3(pair.nodes, "b", "a", pair.ip["a"], seconds=1, udp=True, bitrate="10M", port=5298)
    assert r.udp and r.bits_per_second > 0 and r.lost_percent is not None, str(r)


def test_iperf3_error_is_clear(pair: Pair) -> None:
    with pytest.raises(IperfError) as info:
        # server listens in b, client targets an address nobody has: connect fails
        iperf3(pair.nodes, "a", "b", pair.ip["b"].rsplit(".", 1)[0] + ".99", seconds=1, port=5297)
    assert "iperf3" in str(info.value) and "a -> b" in str(info.value)


def test_ping_mesh(pair: Pair) -> None:
    mesh = ping_mesh(pair.nodes, {"a": pair.ip["a"], "b": pair.ip["b"]})
    assert mesh.ok, str(mesh)
    assert len(mesh.pairs) == 2 and mesh.failures == []
    pair.link("b", up=False)
    try:
        down = ping_mesh(pair.nodes, {"a": pair.ip["a"], "b": pair.ip["b"]}, timeout_s=0.3)
    finally:
        pair.link("b", up=True)
    assert not down.ok and len(down.failures) == 2, str(down)
    assert "FAIL" in str(down)
