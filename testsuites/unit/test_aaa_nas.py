"""The router as a RADIUS client that AAA servers can tell to fail over (issue 7, claims 11-18):
config round trip, `test aaa user` with dead-server fallback, the load generator, failover and
reconnect messages over UDP (and ICMP as root), forged messages dropped, return-timeout.

Everything runs in-process on loopback: RADIUS responders on 127.0.0.1 and 127.0.0.2 (ephemeral
ports), the router built with apply=False, whose failover listener binds 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import re
import select
import socket
import threading
import time
from pathlib import Path

import pytest
from pyrad.packet import AccessAccept, AccessReject, AuthPacket

from emulators.aaa import failover_msg as fm
from emulators.aaa import radius_client
from emulators.aaa.radius_dict import dictionary
from emulators.cli.testing import ScriptedTerminal
from emulators.router import Router
from twin.polling import wait_for

pytestmark = pytest.mark.unit

A, B = "127.0.0.1", "127.0.0.2"
KEYS = {A: "k-one", B: "k-two"}


class Responder:
    """A tiny RADIUS server: accepts alice/pw, rejects everything else; `silent` drops requests;
    `reply_secret` signs replies with another secret (a misconfigured or forged server)."""

    def __init__(self, ip: str, secret: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.ip, self.port = ip, self.sock.getsockname()[1]
        self.secret = secret.encode()
        self.reply_secret: bytes | None = None
        self.silent = False
        self.requests = 0
        self.nas: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            data, addr = self.sock.recvfrom(4096)
            self.requests += 1
            if self.silent:
                continue
            req = AuthPacket(packet=data, secret=self.secret, dict=dictionary())
            assert req.verify_message_authenticator()
            self.nas.append((req["NAS-IP-Address"][0], req.get("NAS-Identifier", [""])[0]))
            ok = (req["User-Name"][0], req.PwDecrypt(req["User-Password"][0])) == ("alice", "pw")
            rep = req.CreateReply()
            rep.code = AccessAccept if ok else AccessReject
            if self.reply_secret is not None:
                rep.secret = self.reply_secret
            self.sock.sendto(rep.ReplyPacket(), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((A, 0))
        return s.getsockname()[1]


class Nas:
    """A started router, its console and its events."""

    def __init__(self, tmp: Path, config: str = "", icmp: bool = False) -> None:
        self.d = Router("r1", state_dir=tmp, users={}, enable_secret="", apply=False)
        self.d.tick_interval = 0
        self.d.failover_icmp = icmp
        self.events: list[dict] = []
        self.d.subscribe(self.events.append)
        self.d.start()
        self.d.lines["con"].privilege = 15
        self.t = ScriptedTerminal(self.d)
        self.t.cmd("terminal length 0")
        if config:
            self.configure(config)

    def configure(self, text: str) -> list[str]:
        self.t.cmd("configure terminal")
        errors = []
        for line in text.strip().splitlines():
            out = self.t.cmd(line)
            errors += [ln for ln in out.split("\r\n")[1:] if ln.startswith("%")]
        self.t.cmd("end")
        return errors

    def run(self, line: str, timeout: float = 10.0) -> str:
        """Type a command and collect its output until the prompt is back (commands like
        `test aaa` answer later, from another thread)."""
        out = self.t.cmd(line)
        deadline = time.monotonic() + timeout
        while not out.endswith("r1#"):
            assert time.monotonic() < deadline, out
            time.sleep(0.01)
            with self.d.lock:
                out += self.t.read()
        body = out.split("\r\n", 1)[1] if "\r\n" in out else ""
        return body[: -len("r1#")].replace("\r\n", "\n")

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def current(self) -> str | None:
        return self.d.aaa_status()["current"]


@pytest.fixture
def servers():
    rs = {ip: Responder(ip, KEYS[ip]) for ip in (A, B)}
    yield rs
    for r in rs.values():
        r.close()


@pytest.fixture
def nas(tmp_path, servers):
    port = free_udp_port()
    n = Nas(tmp_path, f"""
radius-server host {A} key {KEYS[A]} auth-port {servers[A].port}
radius-server host {B} key {KEYS[B]} auth-port {servers[B].port}
radius-server timeout 1
radius-server retransmit 0
aaa failover listen port {port}
""")
    n.port = port
    yield n
    n.d.close()


def message(mtype: int, server: str = A, client: str = A, seq: int | None = None, alternates=(B,),
            secret: str | None = None, age_s: float = 0.0) -> bytes:
    seq = time.monotonic_ns() if seq is None else seq
    msg = fm.FailoverMessage(mtype, server, client, seq, int((time.time() - age_s) * 1000), tuple(alternates))
    return fm.encode(msg, (secret or KEYS[server]).encode())


def send_udp(data: bytes, port: int, src: str = A) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.sendto(data, (A, port))


# ------------------------------------------------------------------------------------ config
CONFIG = """\
radius-server host 10.0.1.11 key s3cret
radius-server host 10.0.1.12 key other auth-port 1645
radius-server host 10.0.1.13 key third
radius-server timeout 2
radius-server retransmit 1
aaa failover listen port 5000
no aaa failover listen
aaa failover return-timeout 30
"""


def body(running: str) -> list[str]:
    lines = running.splitlines()
    return lines[lines.index("!"):]


def test_config_round_trip_and_canonical_form(tmp_path):
    a = Nas(tmp_path / "a", CONFIG + "radius-server host 10.0.1.11 key changed auth-port 1812\n"
                                        "no radius-server host 10.0.1.13\n")
    b = Nas(tmp_path / "b")
    try:
        first = a.d.running_config()
        assert "\n".join(body(first)).count("radius-server host") == 2
        block = [ln for ln in body(first) if ln.startswith(("radius-server", "aaa", "no aaa"))]
        assert block == ["radius-server host 10.0.1.11 key changed",          # updated in place, order kept
                         "radius-server host 10.0.1.12 key other auth-port 1645",
                         "radius-server timeout 2", "radius-server retransmit 1",
                         "aaa failover listen port 5000", "no aaa failover listen",
                         "aaa failover return-timeout 30"]
        assert b.configure("\n".join(body(first))) == []
        assert b.d.running_config() == first
        # defaults are not rendered; `no` forms restore them
        b.configure("no radius-server timeout\nno radius-server retransmit\naaa failover listen\n"
                    "no aaa failover return-timeout\nno radius-server host 10.0.1.12")
        block = [ln for ln in body(b.d.running_config()) if "radius" in ln or "aaa" in ln]
        assert block == ["radius-server host 10.0.1.11 key changed"]
        assert b.configure("no radius-server host 10.9.9.9") == ["% RADIUS server 10.9.9.9 is not configured"]
    finally:
        a.d.close()
        b.d.close()


def test_startup_config_restores_the_client(tmp_path):
    n = Nas(tmp_path, CONFIG)
    n.d.save_startup()
    n.d.restart()
    assert n.d.aaa_status()["current"] == "10.0.1.11"
    assert [s["ip"] for s in n.d.aaa_status()["servers"]] == ["10.0.1.11", "10.0.1.12", "10.0.1.13"]
    assert n.d.config_errors == []
    n.d.close()


# ------------------------------------------------------------------------------------ authentication
def test_radius_client_verifies_replies(servers):
    r = radius_client.authenticate(A, servers[A].port, KEYS[A], "alice", "pw", timeout=1, retransmit=0,
                                   nas_id="r1")
    assert (r.code, r.server, r.attempts) == ("accept", A, 1)
    assert servers[A].nas[-1] == (A, "r1")                    # NAS-IP-Address: our source address
    assert radius_client.authenticate(A, servers[A].port, KEYS[A], "alice", "nope", timeout=1,
                                      retransmit=0).code == "reject"
    servers[A].reply_secret = b"forged"                       # replies fail the Response Authenticator
    r = radius_client.authenticate(A, servers[A].port, KEYS[A], "alice", "pw", timeout=0.2, retransmit=1)
    assert (r.code, r.attempts) == ("bad-reply", 2)
    servers[A].silent = True
    r = radius_client.authenticate(A, servers[A].port, KEYS[A], "alice", "pw", timeout=0.2, retransmit=1)
    assert (r.code, r.attempts) == ("timeout", 2) and servers[A].requests == 6


def test_test_aaa_accept_reject_and_fallback_to_next_server(nas, servers):
    assert nas.run("test aaa user alice password pw").startswith("Type escape sequence to abort.\n")
    assert "User successfully authenticated via 127.0.0.1 in" in nas.run("test aaa user alice password pw")
    assert "User rejected by 127.0.0.1" in nas.run("test aaa user bob password pw")
    servers[A].silent = True
    out = nas.run("test aaa user alice password pw")
    assert "User successfully authenticated via 127.0.0.2" in out
    assert f"%RADIUS-4-RADIUS_DEAD: RADIUS server 127.0.0.1:{servers[A].port} is not responding." in out
    (dead,) = nas.of_type("aaa-server-dead")
    assert dead["server"] == A and dead["next"] == B and dead["result"] == "timeout"
    # sticky: the next request goes straight to the alternate
    before = servers[A].requests
    assert "via 127.0.0.2" in nas.run("test aaa user alice password pw")
    assert servers[A].requests == before
    status = nas.d.aaa_status()
    assert [(s["ip"], s["state"]) for s in status["servers"]] == [(A, "dead"), (B, "current")]
    assert status["last_switch"]["why"] == "server-dead"
    show = nas.run("show aaa")
    assert re.search(r"current server (\S+)", show).group(1) == B and "(home server 127.0.0.1)" in show
    assert re.search(r"127\.0\.0\.1 +\d+ +dead ", show)
    # nobody answers: every server is tried once, then the user is told
    servers[B].silent = True
    nas.d.radius_timeout = 0.2
    out = nas.run("test aaa user alice password pw")
    assert "% No response from RADIUS servers (tried 127.0.0.2, 127.0.0.1)" in out


def test_test_aaa_can_be_aborted_without_stray_output(nas, servers):
    servers[A].silent = servers[B].silent = True
    nas.d.radius_timeout = 0.3
    out = nas.t.cmd("test aaa user alice password pw")
    assert out.endswith("Type escape sequence to abort.")
    out = nas.t.feed("\x03")                                  # Ctrl-C
    assert out.endswith("r1#")
    wait_for(lambda: len(nas.of_type("aaa-server-dead")) == 2)
    # the worker has delivered (or dropped) its result once its thread is gone
    wait_for(lambda: not any(t.name == "r1-wait" for t in threading.enumerate()), what="test worker done")
    with nas.d.lock:
        late = nas.t.read()
    assert "No response" not in late and "User" not in late    # the abandoned result is not printed


def test_load_generator_counts_every_request(nas, servers):
    assert "started: 200 authentications/s" in nas.run("aaa load start rate 200 user alice password pw")
    assert "already running" in nas.run("aaa load start rate 5 user alice password pw")
    wait_for(lambda: nas.d.aaa_load_summary()["accepted"] >= 40)
    nas.run("aaa load stop")
    (done,) = wait_for(lambda: nas.of_type("aaa-load-stopped"))
    s = nas.d.aaa_load_summary()
    assert s["pending"] == 0 and s["failed"] == 0 and s["rejected"] == 0
    assert s["offered"] == s["accepted"] == done["accepted"] >= 40
    assert s["per_server"] == {A: {"accept": s["accepted"]}}
    rows = [json.loads(ln) for ln in (nas.d.state_dir / "aaa-load.jsonl").read_text().splitlines()]
    assert len(rows) == s["offered"] and {r["server"] for r in rows} == {A}
    show = nas.run("show aaa load")
    assert "Load generator: stopped, 200 req/s as alice" in show
    assert re.search(rf"Accepted:\s+{s['accepted']}\n", show) and re.search(r"Latency p50:\s+[\d.]+ ms", show)
    assert "% Load generator is not running" in nas.run("aaa load stop")


def test_load_generator_moves_off_a_dead_server(nas, servers):
    servers[A].silent = True
    nas.d.radius_timeout = 0.2
    nas.run("aaa load start rate 100 user bob password x")
    wait_for(lambda: nas.d.aaa_load_summary()["per_server"].get(B, {}).get("reject", 0) >= 30)
    nas.run("aaa load stop")
    wait_for(lambda: nas.of_type("aaa-load-stopped"))
    s = nas.d.aaa_load_summary()
    assert s["offered"] == s["rejected"] + s["failed"] and s["failed"] == 0
    assert len(nas.of_type("aaa-server-dead")) == 1          # many requests timed out, one marking
    assert nas.current == B


# ------------------------------------------------------------------------------------ failover messages
def test_failover_over_udp_switches_and_reconnect_brings_it_back(nas, servers):
    send_udp(message(fm.FAILOVER, alternates=("10.9.9.9", B)), nas.port)
    wait_for(lambda: nas.current == B)
    (ev,) = nas.of_type("aaa-failover")
    assert (ev["server"], ev["alternate"], ev["via"], ev["alternates"], ev["switched"]) == \
        (A, B, "udp", ["10.9.9.9", B], True)
    assert any("%AAA-4-FAILOVER: server 127.0.0.1 requested failover; now using 127.0.0.2 (udp)" in ln
               for ln in nas.d.log.buffer)
    assert "via 127.0.0.2" in nas.run("test aaa user alice password pw")
    assert [s["state"] for s in nas.d.aaa_status()["servers"]] == ["draining", "current"]

    send_udp(message(fm.RECONNECT, alternates=()), nas.port)
    wait_for(lambda: nas.current == A)
    (ev,) = nas.of_type("aaa-reconnect")
    assert (ev["server"], ev["previous"], ev["via"]) == (A, B, "udp")
    c = nas.d.aaa_status()["counters"]
    assert (c["accepted"], c["failover"], c["reconnect"]) == (2, 1, 1)
    assert "Failover listener: port %d, transports udp" % nas.port in nas.run("show aaa")


def test_failover_from_a_server_not_in_use_only_marks_it(nas):
    assert nas.d.failover_receive(message(fm.FAILOVER, server=B, alternates=(A,)), src_ip=B, dst_ip=A) == "failover"
    assert nas.current == A
    (ev,) = nas.of_type("aaa-failover")
    assert ev["switched"] is False and ev["alternate"] is None
    # a reconnect from a less preferred server does not move the client off its home server
    assert nas.d.failover_receive(message(fm.RECONNECT, server=B, alternates=()), src_ip=B, dst_ip=A) == "reconnect"
    assert nas.current == A and nas.of_type("aaa-reconnect")[0]["switched"] is False


@pytest.mark.parametrize("case,reason", [
    ("garbage", "malformed"), ("truncated", "malformed"), ("wrong-secret", "bad-hmac"),
    ("spoofed-source", "spoofed"), ("other-client", "misdirected"), ("stale", "replay"),
    ("unknown-server", "unknown-server"),
])
def test_forged_messages_are_dropped_counted_and_logged(nas, case, reason):
    good = message(fm.FAILOVER)
    data, src, dst = {
        "garbage": (os.urandom(80), A, A),
        "truncated": (good[:-1], A, A),
        "wrong-secret": (message(fm.FAILOVER, secret="guess"), A, A),
        "spoofed-source": (good, "127.0.0.9", A),
        "other-client": (message(fm.FAILOVER, client="10.0.0.99"), A, A),
        "stale": (message(fm.FAILOVER, age_s=120), A, A),
        "unknown-server": (message(fm.FAILOVER, server="10.9.9.9", secret="x"), "10.9.9.9", A),
    }[case]
    assert nas.d.failover_receive(data, src_ip=src, dst_ip=dst, via="udp") == reason
    assert nas.current == A
    c = nas.d.aaa_status()["counters"]
    assert c["dropped"][reason] == 1 and c["accepted"] == 0
    assert sum(c["dropped"].values()) == 1
    (ev,) = nas.of_type("aaa-failover-dropped")
    assert (ev["reason"], ev["src"], ev["via"]) == (reason, src, "udp") and ev["detail"]
    assert any(f"%AAA-3-FAILOVER_DROPPED: message from {src} (udp) dropped ({reason}: " in ln
               for ln in nas.d.log.buffer)
    assert not nas.of_type("aaa-failover")


def test_replay_is_dropped_but_the_other_transport_is_a_duplicate(nas):
    data = message(fm.FAILOVER, seq=7)
    assert nas.d.failover_receive(data, src_ip=A, dst_ip=A, via="udp") == "failover"
    assert nas.d.failover_receive(data, src_ip=A, dst_ip=A, via="icmp") == "duplicate"
    assert nas.d.failover_receive(data, src_ip=A, dst_ip=A, via="udp") == "replay"
    older = message(fm.RECONNECT, seq=6, alternates=())
    assert nas.d.failover_receive(older, src_ip=A, dst_ip=A, via="udp") == "replay"
    assert nas.current == B                                   # acted once, the older reconnect ignored
    c = nas.d.aaa_status()["counters"]
    assert (c["accepted"], c["duplicate"], c["dropped"]["replay"]) == (1, 1, 2)
    assert len(nas.of_type("aaa-failover")) == 1
    nas.run("clear aaa counters")
    assert nas.d.aaa_status()["counters"]["dropped"]["replay"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")
def test_failover_inside_icmp_echo(tmp_path, servers):
    n = Nas(tmp_path, f"radius-server host {A} key {KEYS[A]} auth-port {servers[A].port}\n"
                      f"radius-server host {B} key {KEYS[B]} auth-port {servers[B].port}\n"
                      f"aaa failover listen port {free_udp_port()}", icmp=True)
    try:
        assert n.d.aaa_status()["listener"]["transports"] == ["udp", "icmp"]
        data = message(fm.FAILOVER)
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
            s.sendto(fm.icmp_echo(data, 0x7777, 1), (A, 0))
        wait_for(lambda: n.current == B)
        assert n.of_type("aaa-failover")[0]["via"] == "icmp"
        send_udp(data, n.d.aaa_status()["listener"]["port"])
        wait_for(lambda: n.d.aaa_status()["counters"]["duplicate"] == 1)
    finally:
        n.d.close()


def test_return_timeout_brings_the_client_home(nas):
    nas.d.failover_receive(message(fm.FAILOVER), src_ip=A, dst_ip=A)
    assert nas.current == B
    nas.d._safe_tick()
    assert nas.current == B                                   # return-timeout 0: only when invited
    nas.configure("aaa failover return-timeout 30")
    nas.d._safe_tick()
    assert nas.current == B
    nas.d._left_home_at -= 31                                 # 31 s on the alternate
    nas.d._safe_tick()
    assert nas.current == A
    (ev,) = nas.of_type("aaa-return-home")
    assert (ev["server"], ev["previous"]) == (A, B) and ev["away_s"] >= 30
    assert nas.d.aaa_status()["last_switch"]["why"] == "return-timeout"


# ------------------------------------------------------------------------------------ listener lifecycle
def test_listener_follows_config_and_reports_a_busy_port(nas):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((A, 0))
        port = busy.getsockname()[1]
        assert nas.configure(f"aaa failover listen port {port}") == \
            [f"% Failover listener: cannot listen on UDP port {port}: Address already in use"]
        assert "Failover listener: not listening" in nas.run("show aaa")
        assert any("%AAA-3-FAILOVER_LISTEN" in ln for ln in nas.d.log.buffer)
    nas.configure(f"aaa failover listen port {nas.port}")
    assert nas.d.aaa_status()["listener"]["transports"] == ["udp"]
    nas.configure("no aaa failover listen")
    assert "Failover listener: disabled" in nas.run("show aaa")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((A, nas.port))                                 # closed at once
    nas.configure("aaa failover listen port %d" % nas.port)
    nas.d.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((A, nas.port))                                 # and on close


# ---------------------------------------------------------------------------------------- user logins
def _login(nas: Nas, user: str, password: str, timeout: float = 10.0) -> tuple[ScriptedTerminal, str]:
    """A telnet session's login dialog; returns the terminal and what the device said after the
    password, once it has decided (the answer comes from a worker thread)."""
    t = ScriptedTerminal(nas.d, transport="telnet", peer="127.0.0.9:40000")
    assert t.read().endswith("Username: ")
    assert t.feed(user + "\r").endswith("Password: ")
    out = t.feed(password + "\r")
    deadline = time.monotonic() + timeout
    while not re.search(r"r1[>#]$|Username: $", out):
        assert time.monotonic() < deadline, out
        time.sleep(0.01)
        with nas.d.lock:
            out += t.read()
    return t, out


def test_login_method_list_round_trips_and_shows(nas):
    assert "Login authentication: default local" in nas.run("show aaa")
    assert nas.configure("aaa authentication login default group radius local") == []
    assert "aaa authentication login default group radius local" in nas.run("show running-config")
    assert "Login authentication: default group radius local" in nas.run("show aaa")
    assert nas.d.login_methods() == ["radius", "local"]
    assert nas.configure("no aaa authentication login default") == []
    assert "aaa authentication login" not in nas.run("show running-config")
    assert nas.d.login_methods() == ["local"]


def test_telnet_login_is_authenticated_by_the_radius_server(nas, servers):
    nas.configure("username admin privilege 15 secret adm\naaa authentication login default group radius local")
    t, out = _login(nas, "alice", "pw")
    assert out.endswith("r1>") and t.session.user == "alice"
    (login,) = nas.of_type("aaa-login")
    assert (login["user"], login["result"], login["server"]) == ("alice", "accept", A)
    assert nas.of_type("login-authenticated")[-1]["method"] == "radius"
    # a RADIUS reject is final: the local table is not asked, even for a local user
    _, out = _login(nas, "admin", "adm")
    assert "% Login invalid" in out and out.endswith("Username: ")
    assert nas.of_type("login-failed")[-1]["user"] == "admin"
    # the session stayed responsive while RADIUS answered: other sessions too
    assert "r1#" in nas.t.cmd("")


def test_login_falls_back_to_local_only_when_no_radius_server_answers(nas, servers):
    nas.configure("username admin privilege 15 secret adm\naaa authentication login default group radius local")
    servers[A].silent = servers[B].silent = True
    nas.d.radius_timeout = 0.2
    t, out = _login(nas, "admin", "adm")
    assert out.endswith("r1#") and t.session.privilege == 15
    assert nas.of_type("login-authenticated")[-1]["method"] == "local"
    assert servers[A].requests >= 1 and servers[B].requests >= 1   # both were asked first
    _, out = _login(nas, "alice", "pw")                             # not a local user
    assert "% Login invalid" in out


def test_local_first_method_list_asks_radius_only_for_unknown_users(nas, servers):
    nas.configure("username admin privilege 15 secret adm\naaa authentication login default local group radius")
    assert nas.d.check_password("admin", "adm", transport="telnet")
    assert servers[A].requests == 0
    assert nas.d.check_password("alice", "pw", transport="telnet")
    assert servers[A].requests == 1
    assert not nas.d.check_password("admin", "wrong", transport="telnet")
    assert servers[A].requests == 1                                 # a local reject is final
