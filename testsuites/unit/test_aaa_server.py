"""The `aaa` server kind in-process, on loopback addresses (127.0.0.x): real RADIUS with pyrad
clients, health scoring and hysteresis, failover and staggered reconnect messages, and the message
format's defences (HMAC over the secret and both addresses, replays, malformed input)."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from pyrad import packet as rp
from pyrad.client import Client, Timeout

from emulators.aaa import failover_msg as fm
from emulators.aaa.health import HealthPolicy, Hysteresis, Sample, health_score
from emulators.aaa.radius_dict import dictionary
from emulators.aaa.server import AaaServer
from emulators.cli.testing import ScriptedTerminal
from twin.polling import wait_for

pytestmark = pytest.mark.unit
KEY = "s3cret"


# ---- health ------------------------------------------------------------------------------------
def sample(**kw) -> Sample:
    base = dict(threads_available=16, threads_max=16, cpu_pct=5.0, mem_pct=10.0, processes=2,
                services={"radius-auth": True, "radius-acct": True, "user-db": True, "logging": True})
    base.update(kw)
    return Sample(**base)


def test_health_is_the_scarcest_resource_and_services_matter():
    p = HealthPolicy()
    assert health_score(sample(), p)[0] == 90
    assert health_score(sample(cpu_pct=95.0), p) == (5, "CPU 95%")
    assert health_score(sample(threads_available=2), p)[1] == "2/16 worker threads free"
    assert health_score(sample(processes=60), p)[1] == "60/64 processes"
    down = sample(services={"radius-auth": True, "radius-acct": True, "user-db": False, "logging": True})
    assert health_score(down, p) == (0, "mandatory service user-db down")
    dep = sample(services={"radius-auth": True, "radius-acct": False, "user-db": True, "logging": True})
    score, why = health_score(dep, p)
    assert score == 90 - p.dependent_penalty and "radius-acct" in why


def test_hysteresis_fails_over_once_and_reconnects_only_above_the_higher_threshold():
    p, h = HealthPolicy(failover_threshold=30, connection_threshold=60), Hysteresis()
    seq = [90, 40, 29, 10, 29, 45, 59, 60, 61, 90, 20]
    assert [h.update(s, p) for s in seq] == [None, None, "failover", None, None, None, None, None,
                                             "reconnect", None, "failover"]
    with pytest.raises(ValueError):
        HealthPolicy(failover_threshold=70, connection_threshold=60).validate()


# ---- message format ----------------------------------------------------------------------------
def msg(**kw) -> fm.FailoverMessage:
    base = dict(type=fm.FAILOVER, server="10.0.1.11", client="10.0.2.21", seq=7,
                time_ms=int(time.time() * 1000), alternates=("10.0.1.12", "10.0.1.13"))
    base.update(kw)
    return fm.FailoverMessage(**base)


def test_message_round_trip_and_every_forgery_is_named():
    m = msg()
    data = fm.encode(m, b"k")
    assert fm.peek_server(data) == "10.0.1.11"
    assert fm.decode(data, b"k", src_ip="10.0.1.11", dst_ip="10.0.2.21") == m
    cases = {
        "bad-hmac": lambda: fm.decode(data, b"wrong", src_ip="10.0.1.11", dst_ip="10.0.2.21"),
        "spoofed": lambda: fm.decode(data, b"k", src_ip="10.0.1.99", dst_ip="10.0.2.21"),
        "misdirected": lambda: fm.decode(data, b"k", src_ip="10.0.1.11", dst_ip="10.0.2.22"),
        "malformed": lambda: fm.decode(data[:-1], b"k", src_ip="10.0.1.11", dst_ip="10.0.2.21"),
    }
    for reason, call in cases.items():
        with pytest.raises(fm.MessageError) as err:
            call()
        assert err.value.reason == reason
    tampered = bytearray(data)
    tampered[33] ^= 1                       # an alternate's address changed in flight
    with pytest.raises(fm.MessageError, match="bad-hmac"):
        fm.decode(bytes(tampered), b"k", src_ip="10.0.1.11", dst_ip="10.0.2.21")
    for junk in (b"", b"TWAF", b"\x00" * 80, b"GET / HTTP/1.0\r\n\r\n" * 4):
        with pytest.raises(fm.MessageError, match="malformed"):
            fm.decode(junk, b"k", src_ip="10.0.1.11", dst_ip="10.0.2.21")


def test_replay_guard_wants_rising_sequence_and_fresh_time():
    g = fm.ReplayGuard()
    g.check(msg(seq=5))
    for stale in (msg(seq=5), msg(seq=4), msg(seq=9, time_ms=int((time.time() - 120) * 1000))):
        with pytest.raises(fm.MessageError, match="replay"):
            g.check(stale)
    g.check(msg(seq=6))
    g.check(msg(seq=1, server="10.0.1.12"))          # sequences are per server


def test_icmp_echo_carries_the_message():
    data = fm.encode(msg(), b"k")
    icmp = fm.icmp_echo(data, 0x1234, 1)
    assert fm.icmp_checksum(icmp) == 0
    ip_header = bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0]) + socket.inet_aton("10.0.1.11") + socket.inet_aton("10.0.2.21")
    assert fm.icmp_payload(ip_header + icmp) == ("10.0.1.11", data)
    assert fm.icmp_payload(ip_header + fm.icmp_echo(b"ordinary ping payload", 1, 1)) is None


# ---- the server in-process -------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path):
    dev = AaaServer("aaa1", state_dir=tmp_path, users={"admin": "admin"}, enable_secret="en", apply=False)
    dev.start()
    term = ScriptedTerminal(dev, user="admin")
    term.cmd("terminal length 0")
    config(term, "radius-server client 127.0.0.2 key s3cret group east",
           "radius-server client 127.0.0.3 key s3cret group east",
           "radius-server client 127.0.0.4 key s3cret group west",
           "radius-server user alice password 0 wonderland",
           "aaa failover alternate 10.0.1.12", "aaa failover alternate 10.0.1.13",
           # the "box" here is the pytest worker, whose memory grows with whatever tests it ran before
           "aaa health memory 1048576")
    yield dev, term
    dev.close()


def config(term: ScriptedTerminal, *lines: str) -> None:
    term.cmd("configure terminal")
    for line in lines:
        out = term.cmd(line)
        assert "%" not in out, (line, out)
    term.cmd("end")


def radius_client(dev: AaaServer, source: str, secret: str = KEY) -> Client:
    c = Client(server="127.0.0.1", authport=dev.radius.auth.port, acctport=dev.radius.acct.port,
               secret=secret.encode(), dict=dictionary())
    c.bind((source, 0))
    c.timeout, c.retries = 0.5, 1
    return c


def auth(c: Client, user: str, password: str) -> int:
    req = c.CreateAuthPacket(code=rp.AccessRequest, User_Name=user)
    req["User-Password"] = req.PwCrypt(password)
    req.add_message_authenticator()
    return c.SendPacket(req).code


def test_real_radius_accept_reject_and_accounting_persisted(server):
    dev, term = server
    c = radius_client(dev, "127.0.0.2")
    assert auth(c, "alice", "wonderland") == rp.AccessAccept
    assert auth(c, "alice", "guess") == rp.AccessReject
    assert auth(c, "mallory", "x") == rp.AccessReject
    acct = c.CreateAcctPacket(User_Name="alice")
    acct["Acct-Status-Type"] = "Start"
    acct["Acct-Session-Id"] = "s1"
    assert c.SendPacket(acct).code == rp.AccountingResponse
    assert dev.radius.db.accounting_count() == 1
    out = term.output("show aaa")
    assert "3 requests, 1 accepts, 2 rejects" in out and "1 accounting records" in out
    assert "127.0.0.2        east                3" in term.output("show aaa clients")


def test_bad_secret_unknown_client_and_garbage_are_dropped_and_logged_and_service_continues(server):
    dev, term = server
    with pytest.raises(Timeout):
        auth(radius_client(dev, "127.0.0.2", secret="wrong"), "alice", "wonderland")
    with pytest.raises(Timeout):
        auth(radius_client(dev, "127.0.0.9"), "alice", "wonderland")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))
        for junk in (b"", b"\x01", b"\x01\x02\x00\x05garbage", bytes(range(256)) * 4):
            s.sendto(junk, ("127.0.0.1", dev.radius.auth.port))
    counters = dev.radius.counters
    wait_for(lambda: counters["dropped-malformed"] >= 4, what="malformed packets counted")
    assert counters["dropped-bad-authenticator"] == 1 and counters["dropped-unknown-client"] == 1
    assert auth(radius_client(dev, "127.0.0.2"), "alice", "wonderland") == rp.AccessAccept
    log = term.output("show logging")
    assert "Message-Authenticator from 127.0.0.2 does not verify" in log
    assert "unknown client 127.0.0.9" in log


class Receiver:
    """A client's failover listener stand-in: collects decoded messages per client address."""

    def __init__(self, ips: list[str]) -> None:
        self.socks = {}
        port = None
        for ip in ips:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port or 0))
            port = s.getsockname()[1]
            s.settimeout(0.05)
            self.socks[ip] = s
        self.port = port
        self.got: list[tuple[float, str, fm.FailoverMessage]] = []

    def poll(self) -> None:
        for ip, s in self.socks.items():
            try:
                data, src = s.recvfrom(2048)
            except (TimeoutError, socket.timeout):
                continue
            self.got.append((time.time(), ip, fm.decode(data, KEY.encode(), src_ip=src[0], dst_ip=ip)))

    def wait(self, n: int, timeout: float = 15.0) -> list[tuple[float, str, fm.FailoverMessage]]:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            self.poll()
        assert len(self.got) >= n, f"{len(self.got)} of {n} messages arrived: {self.got}"
        return self.got

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


def test_mandatory_service_down_sends_authenticated_failover_then_staggered_reconnect(server):
    dev, term = server
    clients = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    rx = Receiver(clients)
    dev.notifier.port = rx.port
    # this test is about the mandatory service: the worker process's own CPU and memory (it is the
    # "box" of an in-process server) must not keep the health below the connection threshold
    config(term, "aaa reconnect group-size 2", "aaa reconnect interval 300",
           "aaa health failover-threshold 1", "aaa health connection-threshold 2")
    try:
        for ip in clients:
            assert auth(radius_client(dev, ip), "alice", "wonderland") == rp.AccessAccept
        term.cmd("aaa service stop user-db")
        got = rx.wait(3)
        assert sorted(ip for _, ip, _ in got) == clients
        for _, ip, m in got:
            assert m.type == fm.FAILOVER and m.server == "127.0.0.1" and m.client == ip
            assert m.alternates == ("10.0.1.12", "10.0.1.13")
        assert "FAILED-OVER" in term.output("show aaa") and "user-db DOWN" in term.output("show aaa")
        assert term.output("show aaa clients").count("failed-over") == 3
        rx.got.clear()
        term.cmd("aaa service start user-db")
        got = rx.wait(3)
        assert all(m.type == fm.RECONNECT for _, _, m in got)
        times = sorted(t for t, _, _ in got)
        assert {ip for _, ip, _ in sorted(got, key=lambda g: g[0])[:2]} == {"127.0.0.2", "127.0.0.3"}  # group 1
        assert times[2] - times[1] >= 0.25, f"groups not staggered: {times}"
        events = [e["type"] for e in dev.history]
        assert events[-4:] == ["aaa-failover-sent", "aaa-recovered", "aaa-reconnect-sent", "aaa-reconnect-sent"]
    finally:
        rx.close()


def test_notify_rules_choose_a_proper_subset(server):
    dev, term = server
    rx = Receiver(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    dev.notifier.port = rx.port
    config(term, "aaa failover notify group west", "aaa failover notify client 127.0.0.2")
    try:
        for ip in rx.socks:
            auth(radius_client(dev, ip), "alice", "wonderland")
        term.cmd("test aaa workers hold 16")          # thread exhaustion
        rx.wait(2)
        sent = wait_for(lambda: [e for e in dev.history if e["type"] == "aaa-failover-sent"], what="failover sent")
        assert sorted(sent[-1]["clients"]) == ["127.0.0.2", "127.0.0.4"]   # the server chose exactly these
        rx.poll()
        assert sorted(ip for _, ip, _ in rx.got) == ["127.0.0.2", "127.0.0.4"]
        assert "0/16 worker threads free" in term.output("show aaa")
        assert "16 worker thread(s) released" in term.output("test aaa workers release")
    finally:
        rx.close()


def test_config_round_trip_and_bad_thresholds(server, tmp_path):
    dev, term = server
    config(term, "aaa health failover-threshold 25", "aaa health connection-threshold 70",
           "aaa failover notify subnet 10.1.0.0/16", "aaa failover transport both",
           "aaa reconnect group-size 3", "aaa reconnect interval 500", "aaa health max-threads 8")
    text = dev.running_config()
    term.cmd("configure terminal")
    assert "must be below the connection threshold" in term.cmd("aaa health failover-threshold 80")
    term.cmd("end")
    other = AaaServer("aaa1", state_dir=tmp_path / "b", users={"admin": "admin"}, enable_secret="en", apply=False)
    try:
        assert other.load_config(text, source="startup") == []
        assert other.running_config().split("!", 1)[1] == text.split("!", 1)[1]
        assert other.policy.failover_threshold == 25 and other.transport == "both"
    finally:
        other.close()
