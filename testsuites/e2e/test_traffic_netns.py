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

from netns_pair import NetnsPair, netns_pair

from twin.traffic import IperfError, ProbeError, ProbeStream, iperf3, ping_mesh
from twin.traffic.probe import outages_summary

# never beside fig5 (see test_fig5.py): probes every 2 ms
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cpu-heavy-or-timed")]


@pytest.fixture(scope="module")
def pair() -> Iterator[NetnsPair]:
    pid = os.getpid()
    subnet = 10 + pid % 200
    with netns_pair(ns={"a": f"twtr{pid}a", "b": f"twtr{pid}b"},
                    intf={"a": f"tv{pid}a", "b": f"tv{pid}b"},   # <= 15 characters for any PID
                    addresses={"a": f"10.199.{subnet}.1", "b": f"10.199.{subnet}.2"}) as p:
        yield p


def _poll(cond, timeout_s: float, what: str, interval_s: float = 0.005):
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def test_probe_no_outage(pair: NetnsPair) -> None:
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


def test_probe_measures_link_down_outage(pair: NetnsPair) -> None:
    down_for_s = 0.5
    # lost means dropped: an echo delayed by a busy machine (the suite's other worker) is not an outage
    stream = ProbeStream(pair.nodes, "a", "b", pair.ip["b"], port=7778, interval_ms=2, timeout_ms=3000)
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


def test_wait_until_flowing_names_the_path(pair: NetnsPair) -> None:
    # Nobody at this address inside b's subnet: the error must say which path and what was seen.
    stream = ProbeStream(pair.nodes, "a", "b", pair.ip["b"].rsplit(".", 1)[0] + ".99", port=7779,
                         flow_timeout_s=0.5)
    with pytest.raises(ProbeError) as info:
        stream.start()
    msg = str(info.value)
    assert "a->b" in msg and "not flowing" in msg and "sent" in msg


def test_iperf3_tcp(pair: NetnsPair) -> None:
    r = iperf3(pair.nodes, "a", "b", pair.ip["b"], seconds=1, port=5299)
    assert r.bits_per_second > 0 and r.bytes > 0, str(r)
    assert r.retransmits is not None
    assert "end" in r.raw


def test_iperf3_udp(pair: NetnsPair) -> None:
    r = iperf3(pair.nodes, "b", "a", pair.ip["a"], seconds=1, udp=True, bitrate="10M", port=5298)
    assert r.udp and r.bits_per_second > 0 and r.lost_percent is not None, str(r)


def test_iperf3_error_is_clear(pair: NetnsPair) -> None:
    with pytest.raises(IperfError) as info:
        # server listens in b, client targets an address nobody has: connect fails
        iperf3(pair.nodes, "a", "b", pair.ip["b"].rsplit(".", 1)[0] + ".99", seconds=1, port=5297)
    assert "iperf3" in str(info.value) and "a -> b" in str(info.value)


def test_ping_mesh(pair: NetnsPair) -> None:
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
