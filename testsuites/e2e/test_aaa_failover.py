"""AAA servers that tell their clients to fail over (spec 002), end to end in labs/aaa.yaml: real
RADIUS between network access servers and servers across a routed network, real overloads on the
server (CPU burn, worker-thread exhaustion, a mandatory service stopped), failover messages over UDP
and ICMP, staggered return, and forged or malformed input that must change nothing."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from netmiko_client import netmiko

from twin.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.aaa, pytest.mark.lab("labs/aaa.yaml")]

AAA1, AAA2 = "10.1.0.11", "10.1.0.12"
NAS = {"nas1": "10.2.0.21", "nas2": "10.2.0.22", "nas3": "10.3.0.31", "nas4": "10.3.0.32"}
SECRET = "twinradius"


def current_server(cli) -> str:
    m = re.search(r"current server (\S+)", cli.run("show aaa"))
    assert m, "show aaa has no current server"
    return m.group(1)


def load_counts(cli) -> dict[str, int]:
    text = cli.run("show aaa load")
    out = {}
    for label, key in (("Offered", "offered"), ("Accepted", "accepted"), ("Rejected", "rejected"),
                       (r"Failed \(no answer\)", "failed"), (r"Late \(> [\d.]+ s\)", "late")):
        m = re.search(rf"{label}:\s+(\d+)", text)
        assert m, f"show aaa load lacks {key}:\n{text}"
        out[key] = int(m.group(1))
    return out


@pytest.fixture(scope="module")
def cli(lab):
    """One enabled console session per AAA server and NAS for the whole module."""
    sessions = {}
    try:
        for node in ("aaa1", "aaa2", "aaa3", *NAS):
            s = lab.device(node).console()
            s.enable()
            s.run("terminal length 0")
            sessions[node] = s
        yield sessions
    finally:
        for s in sessions.values():
            s.close()


@pytest.fixture
def healthy(lab, cli):
    """Every test starts with aaa1 healthy, notifying every client, and every NAS at home on aaa1,
    having authenticated once (so aaa1 counts it as a connected client)."""
    a = cli["aaa1"]
    for svc in ("radius-auth", "radius-acct", "user-db", "logging"):
        a.run(f"aaa service start {svc}")
    a.run("test aaa workers release")
    for node in NAS:
        cli[node].run("clear aaa counters")
    a.configure(["no aaa failover notify", "aaa failover transport udp", "aaa reconnect group-size 2",
                 "aaa reconnect interval 1000"])
    deadline = time.monotonic() + 20
    while "SERVING" not in a.run("show aaa"):
        assert time.monotonic() < deadline, f"aaa1 did not recover:\n{a.run('show aaa')}"
        time.sleep(0.1)
    for nas in NAS:
        deadline = time.monotonic() + 20
        while current_server(cli[nas]) != AAA1:
            assert time.monotonic() < deadline, f"{nas} did not return to aaa1:\n{cli[nas].run('show aaa')}"
            time.sleep(0.1)
        out = cli[nas].run("test aaa user alice password wonderland")
        assert f"User successfully authenticated via {AAA1}" in out, out
    return cli


def test_standard_radius_tools_authenticate_across_the_network(lab, healthy):
    ok = lab.nodes.run("h1", ["radtest", "alice", "wonderland", AAA1, "0", SECRET], timeout=20)
    assert ok.returncode == 0 and "Access-Accept" in ok.stdout, ok.stdout + ok.stderr
    bad = lab.nodes.run("h2", ["radtest", "alice", "guess", "10.1.0.13", "0", SECRET], timeout=20)
    assert "Access-Reject" in bad.stdout, bad.stdout + bad.stderr
    # a wrong shared secret gets no answer at all (the Message-Authenticator does not verify)
    wrong = lab.nodes.run("h1", ["radclient", "-r", "1", "-t", "1", f"{AAA2}:1812", "auth", "notthesecret"],
                          input="User-Name = alice\nUser-Password = wonderland\nMessage-Authenticator = 0x00\n",
                          timeout=20)
    assert "Access-Accept" not in wrong.stdout and wrong.returncode != 0
    assert "does not verify" in healthy["aaa2"].run("show logging | include RADIUS")


OVERLOADS = {
    "cpu-burn": None,                        # a CPU burn inside aaa1's namespace
    "thread-exhaustion": "test aaa workers hold 16",
    "mandatory-service-stopped": "aaa service stop user-db",
}


def login(lab, node: str, nas: str, user: str, password: str, device_type: str) -> dict:
    """A user on a LAN logs in to its access server with Netmiko (real SSH or telnet)."""
    return netmiko(lab, f"""
        import json
        from netmiko import ConnectHandler
        from netmiko.exceptions import NetmikoAuthenticationException
        try:
            dev = ConnectHandler(device_type={device_type!r}, host={NAS[nas]!r}, username={user!r},
                                 password={password!r}, fast_cli=False, conn_timeout=20, auth_timeout=20)
        except NetmikoAuthenticationException as exc:
            print(json.dumps({{"ok": False, "error": str(exc)[:200]}}))
        else:
            prompt = dev.find_prompt()
            users = dev.send_command("show users")
            dev.disconnect()
            print(json.dumps({{"ok": True, "prompt": prompt, "users": users}}))
    """, node=node)


def test_user_logins_at_a_nas_are_authenticated_by_radius_and_survive_a_failover(lab, healthy):
    """Users on the site LANs log in to their NAS over SSH and telnet with accounts that exist only
    on the RADIUS servers; a wrong password is refused by the server; when aaa1 fails over, logins
    keep working through the alternate; the lab's admin stays local."""
    cli = healthy
    t0 = time.time()
    out = login(lab, "h1", "nas1", "alice", "wonderland", "cisco_ios")
    assert out["ok"] and out["prompt"] == "nas1>", out
    assert "alice" in out["users"], out["users"]
    out = login(lab, "h2", "nas3", "bob", "builder", "cisco_ios_telnet")
    assert out["ok"] and out["prompt"] == "nas3>", out
    out = login(lab, "h1", "nas2", "alice", "not-her-password", "cisco_ios_telnet")
    assert not out["ok"], out
    for nas, user, result in (("nas1", "alice", "accept"), ("nas3", "bob", "accept"), ("nas2", "alice", "reject")):
        evs = lab.device_events(nas, "aaa-login", t0)   # a telnet client may retry a refused password
        assert evs and {(e["user"], e["result"], e["server"]) for e in evs} == {(user, result, AAA1)}, evs
    failed = lab.device_events("nas2", "login-failed", t0)
    assert failed and failed[-1]["user"] == "alice" and failed[-1]["transport"] == "telnet", failed
    assert "Login failed [user: alice]" in cli["nas2"].run("show logging | include LOGIN_FAILED")
    # aaa1 loses its user database: nas1 is told to fail over, and logins go to aaa2
    t1 = time.time()
    cli["aaa1"].run("aaa service stop user-db")
    try:
        lab.wait_device_event("nas1", "aaa-failover", t1)
        out = login(lab, "h1", "nas1", "alice", "wonderland", "cisco_ios_telnet")
        assert out["ok"] and out["prompt"] == "nas1>", out
        evs = lab.device_events("nas1", "aaa-login", t1)
        assert [(e["result"], e["server"]) for e in evs] == [("accept", AAA2)], evs
    finally:
        cli["aaa1"].run("aaa service start user-db")
    # the lab's own admin account is local on every NAS: the driver's SSH login needs no server
    t2 = time.time()
    with lab.device("nas4").ssh() as s:
        assert "Login authentication: default local group radius" in s.run("show aaa")
    (ev,) = lab.device_events("nas4", "login-authenticated", t2)
    assert (ev["method"], ev["transport"]) == ("local", "ssh"), ev
    assert not lab.device_events("nas4", "aaa-login", t2)


@pytest.mark.parametrize("overload", list(OVERLOADS))
def test_overload_moves_every_client_to_an_alternate_and_authentications_keep_succeeding(
        lab, healthy, faults, timings, overload):
    cli = healthy
    for nas in NAS:
        cli[nas].run("aaa load start rate 10 user alice password wonderland")
    burn = None
    try:
        for nas in NAS:                               # some load through aaa1 before the fault
            wait_for(lambda: load_counts(cli[nas])["accepted"] >= 3, 10, f"{nas}'s load answered by aaa1", 0.1)
        t0 = time.time()
        if overload == "cpu-burn":
            burn = faults.cpu_load("aaa1", workers=2, seconds=60)
        else:
            cli["aaa1"].run(OVERLOADS[overload])
        sent = lab.wait_device_event("aaa1", "aaa-failover-sent", t0)
        assert set(NAS.values()) <= set(sent["clients"]), sent     # (plus h1 if its radtest was recent)
        assert sent["alternates"] == [AAA2, "10.1.0.13"]
        switch_ms = []
        for nas in NAS:
            moved = lab.wait_device_event(nas, "aaa-failover", t0)
            assert moved["server"] == AAA1 and moved["alternate"] == AAA2, moved
            switch_ms.append((moved["time"] - sent["time"]) * 1000)
            assert current_server(cli[nas]) == AAA2
        timings.record(f"{overload}: fault to failover message", (sent["time"] - t0) * 1000)
        timings.record(f"{overload}: slowest of 4 NAS switched after the threshold crossing", max(switch_ms))
        # authentications keep succeeding through the alternate
        before = {nas: load_counts(cli[nas])["accepted"] for nas in NAS}
        deadline = time.monotonic() + 10
        while any(load_counts(cli[nas])["accepted"] < before[nas] + 5 for nas in NAS):
            assert time.monotonic() < deadline, "authentications stopped after the failover"
            time.sleep(0.2)
    finally:
        if burn is not None:
            burn.stop()
        cli["aaa1"].run("test aaa workers release")
        cli["aaa1"].run("aaa service start user-db")
    recovered = lab.wait_device_event("aaa1", "aaa-recovered", t0, timeout=30)
    for nas in NAS:
        back = lab.wait_device_event(nas, "aaa-reconnect", recovered["time"], timeout=15)
        assert back["server"] == AAA1, back
    for nas in NAS:
        cli[nas].run("aaa load stop")
    totals = {k: sum(load_counts(cli[nas])[k] for nas in NAS) for k in ("offered", "accepted", "failed", "late")}
    timings.record(f"{overload}: authentications failed or late", totals["failed"] + totals["late"],
                   f"of {totals['offered']}")
    assert totals["accepted"] > 0 and totals["failed"] <= 0.05 * totals["offered"], totals


def test_only_the_chosen_device_group_moves(lab, healthy):
    cli = healthy
    cli["aaa1"].configure(["aaa failover notify group east"])
    t0 = time.time()
    cli["aaa1"].run("test aaa workers hold 16")
    try:
        sent = lab.wait_device_event("aaa1", "aaa-failover-sent", t0)
        assert sorted(sent["clients"]) == [NAS["nas1"], NAS["nas2"]], sent
        for nas in ("nas1", "nas2"):
            lab.wait_device_event(nas, "aaa-failover", t0)
            assert current_server(cli[nas]) == AAA2
        for nas in ("nas3", "nas4"):
            assert current_server(cli[nas]) == AAA1 and not lab.device_events(nas, "aaa-failover", t0)
    finally:
        cli["aaa1"].run("test aaa workers release")
    for nas in ("nas1", "nas2"):
        lab.wait_device_event(nas, "aaa-reconnect", t0, timeout=20)


def test_topology_selection_moves_one_site_over_icmp(lab, healthy):
    cli = healthy
    cli["aaa1"].configure(["aaa failover notify subnet 10.3.0.0/24", "aaa failover transport icmp"])
    t0 = time.time()
    cli["aaa1"].run("aaa service stop user-db")
    try:
        sent = lab.wait_device_event("aaa1", "aaa-failover-sent", t0)
        assert sorted(sent["clients"]) == [NAS["nas3"], NAS["nas4"]] and sent["transport"] == "icmp", sent
        for nas in ("nas3", "nas4"):
            moved = lab.wait_device_event(nas, "aaa-failover", t0)
            assert moved["via"] == "icmp", moved
        for nas in ("nas1", "nas2"):
            assert current_server(cli[nas]) == AAA1
    finally:
        cli["aaa1"].run("aaa service start user-db")
    for nas in ("nas3", "nas4"):
        lab.wait_device_event(nas, "aaa-reconnect", t0, timeout=20)


def test_recovered_server_invites_clients_back_in_staggered_groups(lab, healthy, timings):
    cli = healthy
    cli["aaa1"].configure(["aaa reconnect group-size 1", "aaa reconnect interval 400"])
    t0 = time.time()
    cli["aaa1"].run("aaa service stop user-db")
    for nas in NAS:
        lab.wait_device_event(nas, "aaa-failover", t0)
    t1 = time.time()
    cli["aaa1"].run("aaa service start user-db")
    back = {nas: lab.wait_device_event(nas, "aaa-reconnect", t1, timeout=20)["time"] for nas in NAS}
    plan = lab.wait_device_event("aaa1", "aaa-recovered", t1)
    returns = sorted(back.values())
    gaps = [b - a for a, b in zip(returns, returns[1:])]
    timings.record("staggered return: first to last client", (returns[-1] - returns[0]) * 1000)
    timings.record("staggered return: smallest gap between returning clients", min(gaps) * 1000)
    # One client per group, so a client cannot be back before its group's slot in the plan: a
    # causal bound that holds however late a busy machine delivers a message.
    assert plan["interval_ms"] == 400 and all(len(g) == 1 for g in plan["groups"]), plan
    slot = {g[0]: plan["start"] + i * 0.4 for i, g in enumerate(plan["groups"])}
    assert all(NAS[nas] in slot for nas in NAS), f"every NAS is in the plan: {plan}"
    early = {nas: round(slot[NAS[nas]] - t, 3) for nas, t in back.items() if t < slot[NAS[nas]] - 0.01}
    assert not early, f"clients back before their group's slot (seconds early): {early}; plan {plan}"
    assert len({round(slot[NAS[n]], 3) for n in NAS}) == len(NAS), "each NAS has a slot of its own"


def test_forged_replayed_and_malformed_messages_move_no_client(lab, healthy):
    """A capture of a real failover message, then attacks from h1 (on nas1's LAN) with scapy:
    a replay of the captured message with the server's source address, a message signed with a wrong
    secret, garbage; and malformed RADIUS at the server. Nothing moves; everything is counted."""
    cli = healthy
    cli["aaa1"].configure(["aaa failover notify client 10.3.0.31"])
    cap = lab.capture("nas3", "eth1", "udp port 1814", name="failover-message.pcap").start()
    t0 = time.time()
    cli["aaa1"].run("aaa service stop user-db")
    try:
        lab.wait_device_event("nas3", "aaa-failover", t0)
    finally:
        cli["aaa1"].run("aaa service start user-db")
    lab.wait_device_event("nas3", "aaa-reconnect", t0, timeout=20)
    pcap = cap.stop()
    script = f"""
import sys, time
from scapy.all import IP, UDP, Raw, rdpcap, send
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from emulators.aaa import failover_msg as fm
real = [bytes(p[UDP].payload) for p in rdpcap({str(pcap)!r}) if UDP in p and p[UDP].dport == 1814]
assert real, "no failover message captured"
def to(dst, data, src={AAA1!r}):
    send(IP(src=src, dst=dst) / UDP(sport=40000, dport=1814) / Raw(data), verbose=False)
to("10.3.0.31", real[0])                                           # replay of a real message
forged = fm.FailoverMessage(fm.FAILOVER, {AAA1!r}, "10.2.0.21", int(time.time() * 1e6), int(time.time() * 1000), ("10.1.0.13",))
to("10.2.0.21", fm.encode(forged, b"guessed-secret"))              # wrong secret
to("10.2.0.21", fm.encode(forged, {SECRET!r}.encode()), src="10.2.0.101")  # right secret, wrong source
to("10.2.0.21", b"TWAF" + bytes(40))                               # malformed
print(len(real))
"""
    res = lab.nodes.run("h1", [sys.executable, "-c", script], timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    deadline = time.monotonic() + 10
    want = {"nas3": ["replay"], "nas1": ["bad-hmac", "spoofed", "malformed"]}
    while True:
        got = {nas: sorted(e["reason"] for e in lab.device_events(nas, "aaa-failover-dropped", t0)) for nas in want}
        if all(set(r) <= set(got[nas]) for nas, r in want.items()):
            break
        assert time.monotonic() < deadline, f"drops seen: {got}"
        time.sleep(0.1)
    for nas in NAS:
        assert current_server(cli[nas]) == AAA1, cli[nas].run("show aaa")
    assert "replay 1" in cli["nas3"].run("show aaa")
    # malformed RADIUS at the server: dropped and logged, the server keeps answering
    junk = lab.nodes.run("h1", [sys.executable, "-c", "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                                f"[s.sendto(b, ('{AAA1}', 1812)) for b in (b'', b'\\x01\\x00\\x00\\x04', b'x' * 5000)]"])
    assert junk.returncode == 0, junk.stderr
    out = cli["nas1"].run("test aaa user alice password wonderland")
    assert f"User successfully authenticated via {AAA1}" in out, out
    assert "malformed RADIUS packet from 10.2.0.101" in cli["aaa1"].run("show logging | include malformed")
