"""Outage and percentile arithmetic of the probe stream, and the ping-mesh matrix, on synthetic data."""
from __future__ import annotations

import json

import pytest

from twin.traffic.pingmesh import MeshResult, PingPair, format_matrix
from twin.traffic.probe import (LOST, OK, PENDING, STARTUP, ProbeRecord, ProbeRecords, analyze,
                                classify, parse_records, percentile)

pytestmark = pytest.mark.unit

MS = 1_000_000
START_WALL = 1_700_000_000.0


def make(n: int, lost: set[int] = frozenset(), interval_ms: float = 5, rtt_ms: float = 0.2,
         late: dict[int, float] | None = None, end_extra_ms: float = 250, timeout_ms: float = 1000,
         ) -> ProbeRecords:
    """n probes every interval_ms; `lost` never echoed; `late` maps seq -> rtt in ms."""
    late = late or {}
    recs = []
    for seq in range(n):
        send = int(seq * interval_ms * MS)
        if seq in lost:
            recv = None
        elif seq in late:
            recv = send + int(late[seq] * MS)
        else:
            recv = send + int(rtt_ms * MS)
        recs.append(ProbeRecord(seq, send, recv))
    end_send = int(n * interval_ms * MS)
    return ProbeRecords(start_wall=START_WALL, interval_ms=interval_ms, end_ns=end_send + int(end_extra_ms * MS),
                        end_send_ns=end_send, records=recs, timeout_ms=timeout_ms, target="10.0.0.2",
                        port=7777)


def test_no_loss():
    r = analyze(make(1000))
    assert (r.sent, r.received, r.lost, r.loss_pct) == (1000, 1000, 0, 0.0)
    assert r.outages == [] and r.max_outage_ms == 0.0
    assert r.outage_after(START_WALL) is None
    assert r.rtt_p50_ms == pytest.approx(0.2) and r.rtt_p99_ms == pytest.approx(0.2)


def test_one_outage_first_lost_to_first_recovered():
    r = analyze(make(1000, lost=set(range(100, 140))))  # 40 probes at 5 ms
    assert (r.sent, r.received, r.lost) == (1000, 960, 40)
    assert r.loss_pct == pytest.approx(4.0)
    [o] = r.outages
    assert o.lost == 40 and o.first_seq == 100 and o.recovered
    # seq 100 sent at 500 ms, seq 140 (first recovered) at 700 ms
    assert o.duration_ms == pytest.approx(200.0)
    assert o.start_wall == pytest.approx(START_WALL + 0.5)
    assert o.end_wall == pytest.approx(START_WALL + 0.7)
    assert r.max_outage_ms == pytest.approx(200.0)


def test_single_lost_probe_is_one_interval():
    r = analyze(make(100, lost={10}, interval_ms=1))
    [o] = r.outages
    assert o.lost == 1 and o.duration_ms == pytest.approx(1.0)


def test_two_outages_and_outage_after():
    r = analyze(make(2000, lost=set(range(100, 110)) | set(range(1000, 1200))))
    assert [o.lost for o in r.outages] == [10, 200]
    assert [o.duration_ms for o in r.outages] == [pytest.approx(50.0), pytest.approx(1000.0)]
    assert r.max_outage_ms == pytest.approx(1000.0)
    fault = START_WALL + 5.0  # seq 1000 is sent at exactly 5.0 s
    assert r.outage_after(fault).first_seq == 1000
    # first lost probe sent slightly before the recorded fault time: tolerance still finds it
    assert r.outage_after(fault + 0.02).first_seq == 1000
    assert r.outage_after(fault + 0.02, tolerance_ms=0) is None
    assert r.outage_after(START_WALL).first_seq == 100
    assert r.outage_after(START_WALL, min_lost=20).first_seq == 1000
    assert r.outage_after(START_WALL + 100) is None


def test_loss_at_end_is_open_outage_and_tail_pending():
    # Last 300 probes (1.5 s at 5 ms) unanswered; the stream stopped 250 ms after the last send.
    recs = make(1000, lost=set(range(700, 1000)))
    r = analyze(recs)
    [o] = r.outages
    assert not o.recovered
    # probes sent less than the 1 s timeout before the end are pending, not lost
    end_ms = 5000 + 250
    pending = sum(1 for s in range(700, 1000) if end_ms - s * 5 < 1000)
    assert r.pending == pending and o.lost == 300 - pending
    assert r.sent == 1000 - pending and r.lost == 300 - pending
    # the open outage lasts until the stream stopped sending
    assert o.duration_ms == pytest.approx(5000 - 3500)


def test_unanswered_tail_after_recovery_within_timeout_is_pending_not_outage():
    r = analyze(make(1000, lost={998, 999}, end_extra_ms=20))
    assert r.outages == [] and r.pending == 2 and r.sent == 998 and r.lost == 0


def test_startup_loss_excluded():
    r = analyze(make(500, lost=set(range(0, 5))))
    assert r.startup_lost == 5 and r.sent == 495 and r.lost == 0 and r.outages == []


def test_never_established_is_one_open_outage():
    r = analyze(make(500, lost=set(range(500))))
    assert r.received == 0 and r.startup_lost == 0
    [o] = r.outages
    assert not o.recovered and r.loss_pct == 100.0


def test_late_echoes_count_as_lost():
    late = {seq: 1500.0 for seq in range(200, 210)}  # echoes after 1.5 s: beyond the 1 s timeout
    late[300] = 900.0                                # slow but in time
    r = analyze(make(1000, late=late))
    assert r.late == 10 and r.lost == 10
    [o] = r.outages
    assert o.first_seq == 200 and o.lost == 10 and o.duration_ms == pytest.approx(50.0)
    assert r.rtt_p99_ms < 900.0 + 1e-9


def test_classify_labels():
    recs = make(10, lost={0, 4, 9}, end_extra_ms=1).records
    states = classify(recs, 1000, recs[-1].send_ns + MS)
    assert states == [STARTUP, OK, OK, OK, LOST, OK, OK, OK, OK, PENDING]


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 99) == pytest.approx(99.0)


def test_parse_records_roundtrip_and_to_dict():
    header = {"format": "twin-probe/1", "target": "10.1.1.2", "port": 9000, "interval_ms": 5,
              "timeout_ms": 1000, "start_wall": START_WALL, "start_mono_ns": 123, "end_send_ns": 15 * MS,
              "end_ns": 300 * MS, "sent": 3, "received": 2, "send_errors": 1}
    text = json.dumps(header) + "\n[0,0,200000]\n[1,5000000,null]\n[2,10000000,10300000]\n"
    recs = parse_records(text)
    assert recs.target == "10.1.1.2" and len(recs.records) == 3 and recs.records[1].recv_ns is None
    r = analyze(recs, src="h1", dst="h2")
    assert (r.sent, r.lost, r.dst_ip, r.port, r.send_errors) == (3, 1, "10.1.1.2", 9000, 1)
    d = r.to_dict()
    assert d["max_outage_ms"] == pytest.approx(5.0)
    assert d["outages"][0]["lost"] == 1
    json.dumps(d)  # serialisable for reports
    assert "h1->h2" in str(r)


def test_ping_matrix_formatting():
    nodes = ["h1", "h2", "longname3"]
    pairs = [PingPair("h1", "h2", "10.0.0.2", True), PingPair("h1", "longname3", "10.0.0.3", True, 2),
             PingPair("h2", "h1", "10.0.0.1", True), PingPair("h2", "longname3", "10.0.0.3", False, 2,
                                                               detail="100% packet loss"),
             PingPair("longname3", "h1", "10.0.0.1", True), PingPair("longname3", "h2", "10.0.0.2", True)]
    mesh = MeshResult(nodes=nodes, pairs=pairs)
    assert not mesh.ok and not mesh
    assert mesh.failures == [("h2", "longname3", "10.0.0.3")]
    text = str(mesh)
    lines = text.splitlines()
    assert lines[0].split() == ["src\\dst", "h1", "h2", "longname3"]
    assert lines[1].split() == ["h1", "-", "ok", "ok*"]
    assert lines[2].split() == ["h2", "ok", "-", "FAIL"]
    assert lines[3].split() == ["longname3", "ok", "ok", "-"]
    assert "5/6 pairs ok" in text and "FAIL h2 -> longname3 (10.0.0.3): 100% packet loss" in text
    # columns line up: every matrix row has the same width
    assert len({len(line) for line in lines[:4]}) == 1
    assert format_matrix(["a", "b"], [PingPair("a", "b", "x", True), PingPair("b", "a", "y", True)]).endswith(
        "2/2 pairs ok")
    assert MeshResult(nodes=["a"]).ok
