"""The EMS element client against a real emulated router over real SSH on 127.0.0.1 (the daemon as a
subprocess, restarted in place to prove the client reconnects), plus the log-buffer bookkeeping and
syslog parsing on their own."""
from __future__ import annotations

import calendar
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emulators.ems.element_client import (Alarm, ElementClient, ElementError, buffer_lines, log_time,
                                          parse_alarm, parse_ip_brief, unseen_lines)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One router daemon on a fixed port, so a restart comes back where the client looks for it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        ready = self.tmp / "ready.json"
        ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulators.run", "--kind", "router", "--name", "r1",
             "--state-dir", str(self.tmp / "state"), "--users", "admin:admin", "--enable-secret", "en",
             "--console-socket", str(self.tmp / "c.sock"), "--ready-file", str(ready), "--no-apply",
             "--mgmt-ip", "127.0.0.1", "--ssh-port", str(self.port), "--telnet-port", "-1",
             "--log", str(self.tmp / "daemon.log")], cwd=ROOT)
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert self.proc.poll() is None, (self.tmp / "daemon.log").read_text()
            assert time.monotonic() < deadline, "router daemon not ready"
            time.sleep(0.02)
        assert json.loads(ready.read_text())["ssh_port"] == self.port

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("ems-element"))
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def client(daemon):
    c = ElementClient("r1", "127.0.0.1", "admin", "admin", port=daemon.port, timeout=5, secret="en")
    yield c
    c.close()


def test_show_interfaces_and_brief_table(client):
    text = client.show_interfaces()
    assert "eth1 is up, line protocol is up" in text and "eth4 is" in text
    rows = {name: (addr, up) for name, addr, up in client.interfaces()}
    assert rows["eth1"] == ("", True)


def test_configure_applies_and_a_bad_line_stops_and_is_named(client):
    out = client.configure(["interface eth1", "description set-by-ems", "ip address 10.9.0.1 255.255.255.0"])
    assert "% Invalid" not in out
    with pytest.raises(ElementError) as ei:
        client.configure(["interface eth2", "bogus line", "description after-the-error"])
    assert "r1" in str(ei.value) and "'bogus line'" in str(ei.value) and "% Invalid" in str(ei.value)
    # the session left config mode, and nothing after the bad line was applied
    run = client.run("show running-config")
    assert "description set-by-ems" in run and "after-the-error" not in run
    assert ("eth1", "10.9.0.1", True) in client.interfaces()
    # a new hostname changes the prompt the client waits for, without a reconnect
    connects = client.connects
    client.configure(["hostname core-r1"])
    assert "hostname core-r1" in client.run("show running-config")
    client.configure(["hostname r1"])
    assert client.connects == connects


def test_new_log_lines_returns_each_line_once(client):
    client.new_log_lines()  # drain the history
    client.configure(["interface eth3", "description logged-once"])
    new = client.new_log_lines()
    assert any("logged command:description logged-once" in ln for ln in new), new
    assert any("%SYS-5-CONFIG_I" in ln for ln in new)
    assert client.new_log_lines() == []


def test_threads_share_one_client(client):
    results: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(client.run("show clock"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and all("UTC" in r for r in results)


def test_reconnects_by_itself_after_the_element_restarts(daemon, client):
    client.new_log_lines()
    before = client.connects
    daemon.stop()
    daemon.start()
    alarms = client.alarms()  # the buffer survived the restart: only its new lines come back
    assert client.connects == before + 1
    assert any(a.mnemonic == "LINK-3-UPDOWN" and a.severity == 3 and a.element == "r1" for a in alarms)
    assert all(abs(a.time - time.time()) < 60 for a in alarms)
    assert "description set-by-ems" not in client.run("show running-config")  # it was never saved


def test_connect_failures_name_element_and_address(daemon):
    with pytest.raises(ElementError, match=rf"r1 \(127\.0\.0\.1:{daemon.port}\).*authentication"):
        ElementClient("r1", "127.0.0.1", "admin", "wrong", port=daemon.port, timeout=5).run("show version")
    port = _free_port()
    with pytest.raises(ElementError, match=rf"r9 \(127\.0\.0\.1:{port}\): cannot connect"):
        ElementClient("r9", "127.0.0.1", "admin", "admin", port=port, timeout=2).run("show version")


# ---------------------------------------------------------------------- parsing, no network
NOW = calendar.timegm((2026, 11, 21, 12, 0, 0))


def test_parse_alarm_takes_severity_0_to_4_only():
    a = parse_alarm("r1", "*Nov 21 07:34:44.123: %LINK-3-UPDOWN: Interface eth1, changed state to down", NOW)
    assert a == Alarm("r1", calendar.timegm((2026, 11, 21, 7, 34, 44)) + 0.123, 3, "LINK-3-UPDOWN",
                      "Interface eth1, changed state to down")
    assert parse_alarm("r1", "*Nov 21 07:34:44.123: %SYS-5-CONFIG_I: Configured from console", NOW) is None
    assert parse_alarm("r1", "Log Buffer (4096 bytes):", NOW) is None
    assert parse_alarm("r1", "", NOW) is None
    bare = parse_alarm("r1", "%SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: x]", NOW)
    assert bare is not None and bare.time == NOW and bare.severity == 4
    seq = parse_alarm("r1", "000042: Nov  1 01:02:03 UTC: %SYS-2-MALLOCFAIL: Memory allocation failed", NOW)
    assert seq is not None and seq.time == calendar.timegm((2026, 11, 1, 1, 2, 3)) and seq.severity == 2


def test_log_time_puts_a_year_end_line_in_the_past():
    new_year = calendar.timegm((2027, 1, 1, 0, 0, 5))
    assert log_time("*Dec 31 23:59:59.500: %X-5-Y: z", new_year) == calendar.timegm((2026, 12, 31, 23, 59, 59)) + 0.5


def _line(sec: int, msg: str) -> str:
    return f"*Nov 21 10:00:{sec:02}.000: %SYS-5-X: {msg}"


def test_unseen_lines_follow_the_cumulative_buffer():
    lines = [_line(i, f"m{i}") for i in range(10)]
    tail, last = lines[5:8], log_time(lines[7], NOW)
    assert unseen_lines(lines, [], None) == lines
    assert unseen_lines(lines[:8], tail, last) == []
    assert unseen_lines(lines, tail, last) == lines[8:]
    # the buffer wrapped past what we saw: the timestamps decide
    assert unseen_lines(lines[7:], tail, last) == lines[8:]
    # cleared, then new messages
    after_clear = [_line(20, "new"), _line(21, "newer")]
    assert unseen_lines(after_clear, tail, last) == after_clear
    assert unseen_lines([], tail, last) == []


def test_buffer_lines_and_ip_brief_parsing():
    show = ("Syslog logging: enabled\r\n\r\n    Buffer logging:  level debugging, 2 messages logged\r\n"
            "Log Buffer (4096 bytes):\r\n\r\n" + _line(1, "a") + "\r\n" + _line(2, "b") + "\r\n")
    assert buffer_lines(show) == [_line(1, "a"), _line(2, "b")]
    brief = ("Interface              IP-Address      OK? Method Status                Protocol\n"
             "eth1                   10.1.0.1        YES manual up                    up\n"
             "eth2                   unassigned      YES unset  administratively down down\n")
    assert parse_ip_brief(brief) == [("eth1", "10.1.0.1", True), ("eth2", "", False)]
