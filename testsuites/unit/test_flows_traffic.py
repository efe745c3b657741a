"""The many-flow agent and its root-side API without a lab: the agents run in the root namespace and
talk over 127.0.0.1, through a stand-in for NodeExec that runs each argv as it is."""
from __future__ import annotations

import json
import random
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from twin.polling import wait_for
from twin.traffic.flows import FlowError, FlowStream, burst, parse_flow_records, serve
from twin.traffic.probe import analyze

pytestmark = pytest.mark.unit

LOCAL = "127.0.0.1"
FAST = {"interval_ms": 5, "drain_ms": 100}  # loopback echoes in well under a millisecond


class LocalNodes:
    """Stands in for NodeExec: every node is the root namespace. ``serve_args`` are appended to the
    echo server's argv (how a test passes the test-only ``--drop-file``)."""

    def __init__(self, serve_args: Sequence[str] = ()) -> None:
        self.serve_args = list(serve_args)
        self.procs: dict[str, list[subprocess.Popen]] = {}

    def popen(self, node: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        argv = list(argv) + (self.serve_args if "serve" in argv else [])
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, **kwargs)
        self.procs.setdefault(node, []).append(proc)
        return proc

    def all_ended(self) -> bool:
        return all(p.poll() is not None for procs in self.procs.values() for p in procs)


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOCAL, port))
            except OSError:
                return False
    return True


@pytest.fixture
def port() -> int:
    """A port free for both UDP and TCP (the echo server binds both)."""
    while True:
        with socket.socket() as s:
            s.bind((LOCAL, 0))
            candidate = s.getsockname()[1]
        if _bindable(candidate):
            return candidate


def free_sports(n: int) -> int:
    """A base of n consecutive free source ports, below the ephemeral range so nothing takes them."""
    for _ in range(100):
        base = random.randrange(10000, 32000 - n)
        if all(_bindable(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports")


def received_at_least(stream: FlowStream, n: int, flows: int) -> bool:
    seen = stream.progress()
    return len(seen) == flows and all(p.received >= n for p in seen.values())


# --------------------------------------------------------------------------------------------------

def test_records_parse_into_per_flow_probe_analysis():
    header = {"format": "twin-flows/1", "proto": "udp", "target": "10.0.0.2", "port": 7000, "flows": 2,
              "sport_base": 20000, "interval_ms": 10, "timeout_ms": 100, "start_wall": 1000.0,
              "start_mono_ns": 5, "end_send_ns": 100_000_000, "end_ns": 400_000_000,
              "flow_info": [{"sport": 20000, "send_errors": 0}, {"sport": 20001, "send_errors": 2}]}
    lines = [json.dumps(header)]
    for seq in range(10):
        for flow in (0, 1):
            sent = seq * 10_000_000 + flow * 5_000_000
            lost = flow == 1 and seq in (4, 5)
            lines.append(f"{flow} {seq} {sent} {-1 if lost else sent + 200_000}")
    got_header, per_flow = parse_flow_records("\n".join(lines) + "\n")
    assert got_header["sport_base"] == 20000 and sorted(per_flow) == [0, 1]
    assert per_flow[1].send_errors == 2
    ok, hit = analyze(per_flow[0]), analyze(per_flow[1])
    assert (ok.sent, ok.lost, ok.outages) == (10, 0, [])
    assert (hit.sent, hit.lost, len(hit.outages)) == (10, 2, 1)
    assert hit.outages[0].first_seq == 4 and hit.outages[0].duration_ms == pytest.approx(20.0)
    assert hit.outages[0].start_wall == pytest.approx(1000.045)


def test_five_udp_flows_all_echo_from_distinct_source_ports(port):
    nodes, base = LocalNodes(), free_sports(5)
    with FlowStream(nodes, "a", "b", LOCAL, port, flows=5, sport_base=base, **FAST) as stream:
        wait_for(lambda: received_at_least(stream, 10, 5), timeout=5, what="10 echoes on every flow")
    result = stream.result
    assert result is not None and sorted(result.per_flow) == [0, 1, 2, 3, 4]
    assert result.lossless() == [0, 1, 2, 3, 4] and result.with_outage() == {}
    assert [result.per_flow[i].extra["sport"] for i in range(5)] == [base + i for i in range(5)]
    assert [result.sport(i) for i in range(5)] == [base + i for i in range(5)]
    assert result.total_received == result.total_sent >= 50
    assert 0 <= result.max_lag_ms < 1000
    assert json.loads(json.dumps(result.to_dict()))["lossless"] == [0, 1, 2, 3, 4]
    assert nodes.all_ended()


def test_three_tcp_flows_echo_over_their_own_connections(port):
    nodes, base = LocalNodes(), free_sports(3)
    with FlowStream(nodes, "a", "b", LOCAL, port, flows=3, sport_base=base, proto="tcp",
                    **FAST) as stream:
        wait_for(lambda: received_at_least(stream, 10, 3), timeout=5, what="10 echoes on every connection")
    result = stream.result
    assert result is not None and result.lossless() == [0, 1, 2]
    for i, r in result.per_flow.items():
        assert r.extra["sport"] == base + i and r.extra["state"] == "up" and r.extra["breaks"] == []
        assert len(r.extra["connect_ms"]) == 1 and r.extra["connect_ms"][0] >= 0
    assert nodes.all_ended()


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_dropping_one_flow_mid_run_shows_loss_only_on_that_flow(tmp_path, port, proto):
    drop = tmp_path / "drop"
    drop.write_text("")
    nodes, base = LocalNodes(["--drop-file", str(drop)]), free_sports(4)
    stream = FlowStream(nodes, "a", "b", LOCAL, port, flows=4, sport_base=base, proto=proto, timeout_ms=100,
                        **FAST).start()
    try:
        drop.write_text(str(base + 2))
        wait_for(lambda: (stream.progress()[2].last_rx_age_ms or 0) >= 150, timeout=3,
                 what="flow 2 to stop getting echoes")
        drop.write_text("")
        stream.wait_until_flowing(3, flows=[2])
    finally:
        result = stream.stop()
    assert list(result.with_outage()) == [2], result
    assert result.lossless() == [0, 1, 3]
    outages = result.per_flow[2].outages
    assert len(outages) == 1 and outages[0].recovered
    if proto == "udp":  # dropped datagrams: lost for as long as the drop lasted (>= 150 ms)
        assert outages[0].duration_ms >= 100
    else:  # TCP holds the bytes: echoed late once the port is read again, and late is lost
        assert result.per_flow[2].late > 0
    assert nodes.all_ended()


def test_a_flow_that_never_gets_echoes_is_named_by_start(tmp_path, port):
    drop = tmp_path / "drop"
    base = free_sports(3)
    drop.write_text(str(base + 1))
    nodes = LocalNodes(["--drop-file", str(drop)])
    with pytest.raises(FlowError, match=rf"1 never echoed: flow 1 \(sport {base + 1}, sent \d+\)"):
        FlowStream(nodes, "a", "b", LOCAL, port, flows=3, sport_base=base, flow_timeout_s=1.0,
                   **FAST).start()
    assert nodes.all_ended()


def test_stopping_the_server_breaks_every_tcp_connection_for_good(port):
    nodes, base = LocalNodes(), free_sports(3)
    stream = FlowStream(nodes, "a", "b", LOCAL, port, flows=3, sport_base=base, proto="tcp", timeout_ms=100,
                        **FAST).start()
    try:
        server = nodes.procs["b"][0]
        server.terminate()
        server.wait(5)
        wait_for(lambda: all(p.send_errors >= 5 for p in stream.progress().values()), timeout=3,
                 what="every connection to count lost slots")
    finally:
        result = stream.stop()
    assert result.lossless() == [] and sorted(result.with_outage()) == [0, 1, 2]
    for r in result.per_flow.values():
        assert r.extra["state"] == "broken" and r.extra["reconnects"] == 0
        assert r.extra["breaks"][0]["error"] in ("closed by peer", "recv: ECONNRESET")
        assert not r.outages[-1].recovered
    assert nodes.all_ended()


def test_tcp_flows_reconnect_when_the_server_comes_back(port):
    nodes, base = LocalNodes(), free_sports(2)
    stream = FlowStream(nodes, "a", "b", LOCAL, port, flows=2, sport_base=base, proto="tcp", timeout_ms=100,
                        reconnect=True, **FAST).start()
    second = None
    try:
        first = nodes.procs["b"][0]
        first.terminate()
        first.wait(5)
        wait_for(lambda: all(p.send_errors >= 3 for p in stream.progress().values()), timeout=3,
                 what="both connections to count lost slots")
        second = serve(nodes, "b", port)  # a stand-in server: the stream's own one stays dead
        got = {i: p.received for i, p in stream.progress().items()}
        wait_for(lambda: all(p.received > got[i] for i, p in stream.progress().items()), timeout=5,
                 what="echoes again on both connections")
    finally:
        result = stream.stop()
        if second is not None:
            second.terminate()
            second.wait(5)
    assert list(result.with_outage()) == [0, 1]
    for r in result.per_flow.values():
        assert r.extra["state"] == "up" and r.extra["reconnects"] >= 1 and len(r.extra["connect_ms"]) >= 2
        assert len(r.extra["breaks"]) == 1 and all(o.recovered for o in r.outages)
    assert nodes.all_ended()


def test_a_source_port_in_use_fails_start_with_the_agents_words(port):
    nodes, base = LocalNodes(), free_sports(3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", base + 1))
        with pytest.raises(FlowError, match="sender in a exited with 2: .*Address already in use"):
            FlowStream(nodes, "a", "b", LOCAL, port, flows=3, sport_base=base, **FAST).start()
    assert nodes.all_ended()


def test_burst_of_200_new_udp_flows(port):
    nodes, base = LocalNodes(), free_sports(200)
    result = burst(nodes, "a", "b", LOCAL, port, count=200, window=8, sport_base=base)
    assert (result.count, result.ok, result.failed, result.errors) == (200, 200, 0, {})
    assert 0 < result.rtt_p50_ms <= result.rtt_p90_ms <= result.rtt_p99_ms <= result.rtt_max_ms < 1000
    assert result.flows_per_s > 0 and result.elapsed_s > 0
    assert sorted(f[0] for f in result.flows) == [base + i for i in range(200)]
    assert nodes.all_ended()


def test_burst_of_50_new_tcp_connections(port):
    nodes, base = LocalNodes(), free_sports(50)
    result = burst(nodes, "a", "b", LOCAL, port, count=50, proto="tcp", window=4, sport_base=base)
    assert (result.count, result.ok, result.failed) == (50, 50, 0), result.errors
    assert 0 < result.rtt_p50_ms <= result.rtt_p90_ms <= result.rtt_p99_ms <= result.rtt_max_ms < 1000
    assert nodes.all_ended()


def test_burst_source_ports_wrap_within_the_range(port):
    base = free_sports(10)
    result = burst(LocalNodes(), "a", "b", LOCAL, port, count=25, sport_base=base, port_range=10)
    assert result.ok == 25 and result.port_range == 10
    assert [f[0] for f in result.flows] == [base + k % 10 for k in range(25)]


def test_serve_echoes_exactly_the_bytes_it_got_on_udp_and_tcp(port):
    data = bytes(range(256)) * 3
    proc = serve(LocalNodes(), "b", port)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(3)
            u.sendto(data, (LOCAL, port))
            assert u.recvfrom(4096) == (data, (LOCAL, port))
        with socket.create_connection((LOCAL, port), timeout=3) as t:
            t.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = t.recv(4096)
                assert chunk, "server closed before echoing everything"
                got += chunk
            assert got == data
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
