"""EMS master election (spec 001, claims 6-8): the wire format and its defences, the bully state
machine on a simulated network (virtual clock, delay, failures, partitions), and the UDP runner on
loopback with forged, replayed and spoofed datagrams."""
from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import random
import socket
import time
from collections import Counter
from typing import Any

import pytest

from emulators.ems import messages as m
from emulators.ems.assignment import counts, moved
from emulators.ems.bully import BullyNode, Out, Timing
from emulators.ems.election_service import ElectionService
from twin.polling import wait_for

pytestmark = pytest.mark.unit

SECRET = b"cluster-secret"
ELEMENTS = [f"ne-{i:02d}" for i in range(23)]
T = Timing()


# ---- messages ----------------------------------------------------------------------------------
def msg(**kw: Any) -> m.Message:
    base: dict[str, Any] = dict(type=m.HEARTBEAT, sender=2, boot=12345, seq=1, ts=1000.0, term=3,
                                data={"role": "master", "assignment": {"ne-1": 2}})
    base.update(kw)
    return m.Message(**base)


def signed(body: bytes, secret: bytes = SECRET) -> bytes:
    """An authentic datagram around any body: what a buggy (not forging) peer could send."""
    return m.MAGIC + body + hmac.new(secret, m.MAGIC + body, hashlib.sha256).digest()


def reason(data: bytes, secret: bytes = SECRET) -> str:
    with pytest.raises(m.MessageError) as e:
        m.decode(data, secret)
    return e.value.reason


def test_message_round_trip_and_wire_shape():
    original = msg()
    wire = m.encode(original, SECRET)
    assert wire.startswith(b'TWEM{"v":1,"type":"HEARTBEAT","from":2,') and len(wire) < 200
    assert m.decode(wire, SECRET) == original
    for t in m.TYPES:
        assert m.decode(m.encode(msg(type=t, data={}), SECRET), SECRET).type == t


def test_message_errors_by_reason():
    wire = m.encode(msg(), SECRET)
    assert reason(wire, b"other-secret") == "bad-hmac"
    assert reason(wire[:-1] + bytes([wire[-1] ^ 1])) == "bad-hmac"
    assert reason(wire[:10] + b"X" + wire[11:]) == "bad-hmac"            # body tampered
    assert reason(b"garbage") == "malformed"
    assert reason(b"XXXX" + wire[4:]) == "malformed"
    assert reason(wire + b"\0" * m.MAX_DATAGRAM) == "malformed"
    good = dict(v=1, type="HEARTBEAT", boot=1, seq=1, ts=1.0, term=0, data={})
    good["from"] = 2
    assert m.decode(signed(json.dumps(good).encode()), SECRET).sender == 2
    for bad in ({"v": 2}, {"type": "VOTE"}, {"from": -1}, {"seq": "1"}, {"term": True}, {"ts": "now"},
                {"data": []}, {"extra": 1}):
        assert reason(signed(json.dumps({**good, **bad}).encode())) == "malformed", bad
    assert reason(signed(json.dumps({k: v for k, v in good.items() if k != "boot"}).encode())) == "malformed"
    assert reason(signed(b"{not json")) == "malformed"
    assert reason(signed(b'{"ts": NaN}')) == "malformed"
    assert reason(signed(b"\xff\xfe")) == "malformed"
    with pytest.raises(m.MessageError):
        m.encode(msg(data={"big": "x" * m.MAX_DATAGRAM}), SECRET)
    with pytest.raises(m.MessageError):
        m.encode(msg(type="VOTE"), SECRET)


def test_replay_guard():
    g = m.ReplayGuard()
    assert g.check(msg(seq=5, ts=100.0), now=100.0) is None
    assert g.check(msg(seq=5, ts=100.0), now=100.0) == "replay"
    assert g.check(msg(seq=4, ts=100.5), now=100.5) == "replay"
    assert g.check(msg(seq=6, ts=101.0), now=101.0) is None
    assert g.check(msg(seq=7, ts=140.0), now=101.0) == "stale"          # from the future
    assert g.check(msg(seq=7, ts=60.0), now=101.0) == "stale"
    # A restart: new boot, seq from 0, newer time -> accepted; the old incarnation is then a replay.
    assert g.check(msg(boot=999, seq=0, ts=102.0), now=102.0) is None
    assert g.check(msg(boot=12345, seq=50, ts=101.5), now=102.0) == "replay"
    assert g.check(msg(boot=777, seq=0, ts=101.9), now=102.0) == "replay"   # forged "restart" from the past
    assert g.check(msg(sender=3, seq=1, ts=102.0), now=102.0) is None       # senders are independent
    small = m.ReplayGuard(max_senders=3, max_boots=2)
    for s in range(10):
        for b in range(5):
            small.check(msg(sender=s, boot=b, seq=1, ts=100.0 + b), now=101.0)
    assert len(small._senders) == 3 and all(len(st.boots) <= 2 for st in small._senders.values())


# ---- the state machine on its own --------------------------------------------------------------
def peers_of(my_id: int, ids: list[int]) -> dict[int, tuple[str, int]]:
    return {i: (f"10.0.0.{i}", 1900) for i in ids if i != my_id}


def types(outs: list[Out]) -> list[tuple[int, str]]:
    return [(o.dst_id, o.msg_type) for o in outs]


def test_alone_is_master_at_once_and_heartbeats_carry_the_assignment():
    n = BullyNode(1, {}, T, ELEMENTS)
    assert n.start(0.0) == [] and n.role == "master" and n.master == 1 and n.term == 1
    assert set(n.assignment.values()) == {1} and n.assignment_version == 1
    kinds = [e["type"] for e in n.drain_events()]
    assert kinds == ["election-started", "became-master", "master-changed", "assignment-changed"]
    assert n.drain_events() == []


def test_highest_waits_before_declaring_so_a_lower_master_can_yield():
    n = BullyNode(3, peers_of(3, [1, 2, 3]), T, ELEMENTS)
    assert types(n.start(0.0)) == [(1, "ELECTION"), (2, "ELECTION")]
    assert n.tick(0.01) and n.role == "electing"            # heartbeats only
    outs = n.tick(T.answer_timeout)
    assert n.role == "master" and {(1, "COORDINATOR"), (2, "COORDINATOR")} <= set(types(outs))
    assert n.counters["sent:ELECTION"] == 2 and n.counters["sent:COORDINATOR"] == 2


def test_master_answers_lower_election_with_coordinator_and_yields_to_higher_silently():
    n = BullyNode(2, peers_of(2, [1, 2, 3]), T, ELEMENTS)
    n.start(0.0)
    n.receive("ANSWER", 3, 0, {}, 0.001)
    n.tick(T.coordinator_timeout + 0.01)                    # 3 never declared: elect again
    assert n.role == "electing"
    n.tick(T.coordinator_timeout + T.answer_timeout + 0.02)
    assert n.role == "master"
    assert types(n.receive("ELECTION", 1, 0, {}, 0.3)) == [(1, "ANSWER"), (1, "COORDINATOR")]
    assert n.receive("ELECTION", 3, 0, {}, 0.31) == [] and n.role == "electing" and n.master is None
    assert any(e["type"] == "stepped-down" and e["reason"] == "bullied" and e["by"] == 3 for e in n.drain_events())
    n.receive("COORDINATOR", 3, 7, {"assignment": {"x": 3}, "assignment_version": 4}, 0.32)
    assert (n.role, n.master, n.term, n.assignment, n.assignment_version) == ("member", 3, 7, {"x": 3}, 4)
    # A lower server claiming mastership gets bullied: we start an election.
    assert (3, "ELECTION") in types(n.receive("COORDINATOR", 1, 8, {}, 0.33))


def test_member_adopts_only_newer_assignments_and_a_higher_master():
    n = BullyNode(1, peers_of(1, [1, 2, 3]), T, ELEMENTS)
    n.start(0.0)
    n.receive("COORDINATOR", 2, 5, {"assignment": {"a": 2}, "assignment_version": 3}, 0.01)
    hb = {"role": "master", "master": 2, "term": 5, "assignment_version": 2, "assignment": {"a": 1}}
    n.receive("HEARTBEAT", 2, 5, hb, 0.02)
    assert n.assignment == {"a": 2}                         # older version: ignored
    n.receive("HEARTBEAT", 2, 5, {**hb, "assignment_version": 4}, 0.03)
    assert (n.assignment, n.assignment_version) == ({"a": 1}, 4)
    n.receive("HEARTBEAT", 3, 6, {**hb, "master": 3, "assignment_version": 1, "assignment": {"a": 3}}, 0.04)
    assert (n.master, n.term, n.assignment) == (3, 6, {"a": 3})
    n.receive("HEARTBEAT", 2, 5, hb, 0.05)                  # the lower one, still claiming: ignored
    assert n.master == 3


def test_member_elects_when_its_master_goes_silent():
    n = BullyNode(1, peers_of(1, [1, 2]), T, ELEMENTS)
    n.start(0.0)
    n.receive("COORDINATOR", 2, 1, {}, 0.01)
    assert n.live_peers(0.1) == {2}
    n.tick(0.1)
    n.drain_events()
    outs = n.tick(0.01 + T.dead_after + 0.001)
    assert n.role == "electing" and (2, "ELECTION") in types(outs) and n.live_peers(0.2) == set()
    assert [e["type"] for e in n.drain_events()][:2] == ["peer-dead", "election-started"]
    n.tick(0.3)
    assert n.role == "master" and set(n.assignment.values()) == {1}


# ---- a simulated network -----------------------------------------------------------------------
class Net:
    """BullyNodes on a virtual clock: ticks every `step`, each message delivered `delay` later unless
    an end is down or a partition separates them. The master count is checked at every instant."""

    def __init__(self, ids: list[int], delay: float = 0.001, step: float = 0.005) -> None:
        self.ids = list(ids)
        self.delay, self.step = delay, step
        self.t = 0.0
        self.nodes: dict[int, BullyNode] = {}
        self.down: set[int] = set()
        self.groups: list[set[int]] | None = None
        self.queue: list[tuple[float, int, int, Out]] = []
        self._n = itertools.count()
        self.sent: Counter[str] = Counter()
        self.max_masters = 0
        self.events: list[tuple[float, int, dict]] = []

    def boot(self, i: int) -> None:
        self.nodes[i] = BullyNode(i, peers_of(i, self.ids), T, ELEMENTS)
        self.down.discard(i)
        self._send(i, self.nodes[i].start(self.t))
        self._after(i)

    def boot_all(self) -> None:
        for i in self.ids:
            self.boot(i)

    def kill(self, i: int) -> None:
        self.down.add(i)

    def live(self) -> list[int]:
        return [i for i in self.ids if i in self.nodes and i not in self.down]

    def connected(self, a: int, b: int) -> bool:
        if a in self.down or b in self.down:
            return False
        return self.groups is None or any(a in g and b in g for g in self.groups)

    def _send(self, src: int, outs: list[Out]) -> None:
        for o in outs:
            self.sent[o.msg_type] += 1
            heapq.heappush(self.queue, (self.t + self.delay, next(self._n), src, o))

    def _after(self, i: int) -> None:
        self.events += [(self.t, i, e) for e in self.nodes[i].drain_events()]
        self.max_masters = max(self.max_masters, len(self.masters()))

    def masters(self) -> list[int]:
        return [i for i in self.live() if self.nodes[i].role == "master"]

    def advance(self) -> None:
        t_next = round(self.t + self.step, 9)
        while self.queue and self.queue[0][0] <= t_next:
            at, _, src, o = heapq.heappop(self.queue)
            self.t = at
            if self.connected(src, o.dst_id):
                self._send(o.dst_id, self.nodes[o.dst_id].receive(o.msg_type, src, o.term, o.data, at))
                self._after(o.dst_id)
        self.t = t_next
        for i in self.live():
            self._send(i, self.nodes[i].tick(self.t))
            self._after(i)

    def run(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.advance()

    def run_until(self, cond, timeout: float, what: str) -> float:
        """Simulated seconds until `cond()` holds."""
        start = self.t
        while not cond():
            if self.t - start > timeout:
                raise AssertionError(f"{what}: not after {timeout} simulated s (masters {self.masters()}, "
                                     f"views {[(i, self.nodes[i].role, self.nodes[i].master) for i in self.live()]})")
            self.advance()
        return self.t - start

    def agree(self, master: int, group: list[int] | None = None) -> bool:
        group = group if group is not None else self.live()
        return [i for i in group if self.nodes[i].role == "master"] == [master] and \
            all(self.nodes[i].master == master for i in group)

    def settled(self, master: int, group: list[int] | None = None) -> bool:
        """Agreement on the master, its term and its assignment (which covers exactly `group`)."""
        group = group if group is not None else self.live()
        if not self.agree(master, group):
            return False
        mn = self.nodes[master]
        return set(mn.assignment.values()) == set(group) and all(
            (self.nodes[i].assignment, self.nodes[i].assignment_version, self.nodes[i].term)
            == (mn.assignment, mn.assignment_version, mn.term) for i in group)


def check_assignment(a: dict[str, int], servers: list[int]) -> None:
    assert sorted(a) == ELEMENTS
    per = [counts(a).get(s, 0) for s in servers]
    assert set(a.values()) == set(servers) and max(per) - min(per) <= 1, per


@pytest.fixture
def net5() -> Net:
    net = Net([1, 2, 3, 4, 5])
    net.boot_all()
    net.run_until(lambda: net.settled(5), 0.5, "boot")
    return net


def test_boot_elects_the_highest_everyone_agrees_elements_assigned_once(net5: Net):
    assert net5.t < 0.2 and net5.max_masters == 1
    check_assignment(net5.nodes[5].assignment, [1, 2, 3, 4, 5])
    assert {n.term for n in net5.nodes.values()} == {1}
    net5.run(1.0)                                            # and it stays that way
    assert net5.settled(5) and net5.nodes[5].term == 1 and net5.max_masters == 1
    assert all(n.live_peers(net5.t) == set(net5.ids) - {i} for i, n in net5.nodes.items())


def test_master_failure_next_highest_takes_over_in_bounded_time(net5: Net):
    before = dict(net5.nodes[5].assignment)
    net5.kill(5)
    took = net5.run_until(lambda: net5.agree(4), 1.0, "failover to 4")
    assert took <= T.dead_after + T.answer_timeout + 0.03, took
    net5.run_until(lambda: net5.settled(4), 0.3, "assignment without 5")
    after = net5.nodes[4].assignment
    check_assignment(after, [1, 2, 3, 4])
    assert moved(before, after) == sum(1 for s in before.values() if s == 5)     # only 5's elements moved
    assert any(e["type"] == "peer-dead" and e["peer"] == 5 for _, i, e in net5.events if i == 4)
    assert net5.max_masters == 1


def test_restarted_master_takes_back_over_never_two_masters_at_once(net5: Net):
    net5.kill(5)
    net5.run_until(lambda: net5.settled(4), 1.0, "failover to 4")
    term4 = net5.nodes[4].term
    net5.boot(5)                                             # a new incarnation, same id
    net5.run_until(lambda: net5.settled(5), 0.5, "5 back as master")
    assert net5.max_masters == 1
    assert any(e["type"] == "stepped-down" and e["reason"] == "bullied" and e["by"] == 5
               for _, i, e in net5.events if i == 4)
    check_assignment(net5.nodes[5].assignment, [1, 2, 3, 4, 5])
    assert {n.term for n in net5.nodes.values()} == {net5.nodes[5].term} and net5.nodes[5].term > term4


def test_partition_gives_a_master_per_side_and_healing_leaves_one(net5: Net):
    net5.groups = [{1, 2}, {3, 4, 5}]
    net5.run_until(lambda: net5.settled(2, [1, 2]) and net5.settled(5, [3, 4, 5]), 1.0, "a master per side")
    check_assignment(net5.nodes[2].assignment, [1, 2])
    check_assignment(net5.nodes[5].assignment, [3, 4, 5])
    net5.groups = None
    took = net5.run_until(lambda: net5.settled(5), 1.0, "one master after healing")
    assert took <= 2 * T.heartbeat + 0.05, took
    check_assignment(net5.nodes[5].assignment, [1, 2, 3, 4, 5])
    stepped = [e for _, i, e in net5.events if i == 2 and e["type"] == "stepped-down"]
    assert stepped and stepped[-1]["by"] == 5


@pytest.mark.parametrize("n", [5, 8])
def test_worst_case_election_messages_are_n_n_minus_1_over_2(n: int):
    """The lowest id (re)starting with everyone alive: each of 1..n-1 sends ELECTION to all above it."""
    net = Net(list(range(1, n + 1)))
    net.boot_all()
    net.run_until(lambda: net.settled(n), 0.5, "boot")
    net.sent.clear()
    net.boot(1)
    net.run_until(lambda: net.settled(n), 0.5, "after 1 restarts")
    net.run(0.5)
    assert net.sent["ELECTION"] == n * (n - 1) // 2
    assert net.settled(n) and net.max_masters == 1


class LossyNet(Net):
    def __init__(self, ids: list[int], loss: float, seed: int) -> None:
        super().__init__(ids)
        self.rng, self.loss = random.Random(seed), loss

    def connected(self, a: int, b: int) -> bool:
        return super().connected(a, b) and self.rng.random() >= self.loss


@pytest.mark.parametrize("seed", range(3))
def test_lossy_network_still_converges(seed: int):
    """10% of datagrams lost: overlaps may happen (no guarantee without delivery), but every phase
    ends with one master that everyone follows and one assignment everyone holds."""
    net = LossyNet([1, 2, 3, 4, 5], 0.1, seed)
    net.boot_all()
    net.run_until(lambda: net.settled(5), 3, "boot")
    net.kill(5)
    net.run_until(lambda: net.settled(4), 3, "failover")
    net.boot(5)
    net.run_until(lambda: net.settled(5), 3, "restart")
    net.groups = [{1, 2}, {3, 4, 5}]
    net.run_until(lambda: net.settled(2, [1, 2]) and net.settled(5, [3, 4, 5]), 3, "partition")
    net.groups = None
    net.run_until(lambda: net.settled(5), 3, "heal")


# ---- real UDP on loopback ----------------------------------------------------------------------
UDP_TIMING = Timing(heartbeat=0.05, dead_after=0.3, answer_timeout=0.1, coordinator_timeout=0.3)


class Cluster:
    def __init__(self, ids: list[int], extra_peers: dict[int, tuple[str, int]] | None = None) -> None:
        self.events: list[dict] = []
        self.svc = {i: ElectionService(i, "127.0.0.1", 0, {}, SECRET, ELEMENTS, UDP_TIMING, self.events.append)
                    for i in ids}
        table = {i: ("127.0.0.1", s.port) for i, s in self.svc.items()} | (extra_peers or {})
        for i, s in self.svc.items():
            s.set_peers({j: a for j, a in table.items() if j != i})

    def start(self) -> None:
        for s in self.svc.values():
            s.start()

    def stop(self) -> None:
        for s in self.svc.values():
            s.stop()

    def agree(self, master: int, ids: list[int]) -> bool:
        st = [self.svc[i].status() for i in ids]
        return all(s["master"] == master for s in st) and [s["id"] for s in st if s["role"] == "master"] == [master]


@pytest.fixture
def cluster():
    made: list[Cluster] = []

    def make(ids: list[int], extra_peers: dict[int, tuple[str, int]] | None = None) -> Cluster:
        c = Cluster(ids, extra_peers)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


def test_udp_elects_the_highest_and_fails_over(cluster):
    c = cluster([1, 2, 3])
    c.start()
    wait_for(lambda: c.agree(3, [1, 2, 3]), timeout=3, what="3 elected over UDP")
    st = c.svc[3].status()
    check_assignment(st["assignment"], [1, 2, 3])
    assert st["live_peers"] == [1, 2] and st["counters"]["sent:HEARTBEAT"] > 0 and st["dropped"] == {}
    c.svc[3].stop()
    c.svc[3].stop()                                          # idempotent
    wait_for(lambda: c.agree(2, [1, 2]), timeout=3, what="failover to 2")
    wait_for(lambda: set(c.svc[1].status()["assignment"].values()) == {1, 2}, timeout=3, what="reassignment")
    assert any(e["type"] == "became-master" and e["node"] == 2 for e in c.events)


def test_udp_forged_datagrams_are_counted_by_reason_and_change_nothing(cluster):
    sniffer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sniffer.bind(("127.0.0.1", 0))
    spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofer.bind(("127.0.0.2", 0))
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Peer 0 is the sniffer: the services send it heartbeats we can capture and replay.
        c = cluster([1, 2, 3], {0: sniffer.getsockname()})
        c.start()
        wait_for(lambda: c.agree(3, [1, 2, 3]), timeout=3, what="3 elected over UDP")
        sniffer.settimeout(2)
        while True:
            captured, (_, port) = sniffer.recvfrom(65536)
            if port == c.svc[3].port:
                break
        hb = c.svc[1].status()["counters"]["received:HEARTBEAT"]
        wait_for(lambda: c.svc[1].status()["counters"]["received:HEARTBEAT"] >= hb + 2, timeout=2,
                 what="1 hears 3 again after the capture")
        before = c.svc[1].status()
        n_events = len(c.events)
        target = ("127.0.0.1", c.svc[1].port)

        def forged(sender: int, secret: bytes = SECRET, ts: float | None = None) -> bytes:
            return m.encode(m.Message(type=m.COORDINATOR, sender=sender, boot=42, seq=10**9,
                                      ts=time.time() if ts is None else ts, term=99,
                                      data={"assignment": {e: sender for e in ELEMENTS}, "assignment_version": 99}),
                            secret)
        plain.sendto(forged(3, b"wrong-secret"), target)          # bad-hmac
        plain.sendto(forged(42), target)                          # unknown-sender
        plain.sendto(b"\x00garbage\xff", target)                  # malformed
        plain.sendto(signed(b"{not json"), target)                # malformed, but authentic
        plain.sendto(captured, target)                            # replay
        plain.sendto(forged(1), target)                           # self
        plain.sendto(forged(2, ts=time.time() - 120), target)     # stale
        spoofer.sendto(forged(2), target)                         # spoofed: 2 is configured at 127.0.0.1
        want = {"bad-hmac": 1, "unknown-sender": 1, "malformed": 2, "replay": 1, "self": 1, "stale": 1,
                "spoofed": 1}
        wait_for(lambda: c.svc[1].status()["dropped"] == want, timeout=3, what="every forgery dropped")
        after = c.svc[1].status()
        for key in ("role", "master", "term", "assignment", "assignment_version"):
            assert after[key] == before[key], key
        new = [e for e in c.events[n_events:] if e["node"] == 1]
        assert {e["type"] for e in new} <= {"message-dropped"}
        dropped = Counter(e["reason"] for e in new)
        assert dropped == Counter(want)
        assert {e["sender"] for e in new if e["reason"] == "spoofed"} == {2}
        assert all(e["src"].startswith("127.0.0.2:") for e in new if e["reason"] == "spoofed")
        assert c.agree(3, [1, 2, 3])
    finally:
        for s in (sniffer, spoofer, plain):
            s.close()


def test_udp_paused_master_is_replaced_and_yields_when_resumed(cluster):
    c = cluster([1, 2, 3])
    c.start()
    wait_for(lambda: c.agree(3, [1, 2, 3]), timeout=3, what="3 elected over UDP")
    c.svc[3].pause()
    wait_for(lambda: c.agree(2, [1, 2]), timeout=3, what="2 takes over from the hung 3")
    c.svc[3].resume()
    wait_for(lambda: c.agree(3, [1, 2, 3]), timeout=3, what="3 back as the only master")
    assert c.svc[3].status()["paused"] is False
