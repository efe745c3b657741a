"""A router emulator with real effects: run inside a network namespace of its own, configured only
through its CLI, checked with the kernel's own view (`ip`) and with real traffic (ping).

Two namespaces joined by a veth pair whose ends are created directly inside them; the root
namespace gets no address and sends no lab traffic. The device runs in `emulators.harness` under
`ip netns exec`. Teardown stops only the harness processes this module started, by PID, and deletes
only our namespaces.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from twin import polling

pytestmark = pytest.mark.e2e
wait_for = functools.partial(polling.wait_for, timeout=10.0, interval=0.2)   # pings and ip(8) calls
ROOT = Path(__file__).resolve().parents[2]


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


class Harness:
    """The device process and its CLI session over JSON lines."""

    def __init__(self, ns: str, state_dir: Path) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "emulators.harness", "--name", "rt1",
             "--state-dir", str(state_dir), "--user", "admin:pw", "--enable-secret", "en"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(state_dir / "harness.err", "ab"),
            text=True, bufsize=1)
        self.first = self._answer()

    def _answer(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"harness died (exit {self.proc.poll()})")
        return json.loads(line)["out"]

    def _send(self, req: dict) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def cmd(self, line: str) -> str:
        return self._send({"cmd": line})

    def wait(self, seconds: float) -> str:
        return self._send({"wait": seconds})

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)


@dataclass
class Lab:
    ns: dict[str, str]
    net: str                       # first three octets of the link's /24
    state_dir: Path
    harnesses: list[Harness] = field(default_factory=list)

    def start(self) -> Harness:
        h = Harness(self.ns["a"], self.state_dir)
        self.harnesses.append(h)
        h.cmd("terminal length 0")
        h.cmd("enable")
        h.cmd("en")
        return h

    def current(self) -> Harness:
        """The running device (tests can run alone: start one if none is up)."""
        live = [h for h in self.harnesses if h.proc.poll() is None]
        return live[-1] if live else self.start()

    def ping(self, addr: str) -> bool:
        proc = subprocess.run(["ip", "netns", "exec", self.ns["b"], "ping", "-c", "1", "-W", "2", addr],
                              capture_output=True, text=True, timeout=15)
        return proc.returncode == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    pid = os.getpid()
    ns = {"a": f"twrt{pid}a", "b": f"twrt{pid}b"}
    net = f"10.198.{pid % 200 + 10}"
    created: list[str] = []
    lab = Lab(ns, net, tmp_path_factory.mktemp("rt1"))
    try:
        for side in ("a", "b"):
            _ip("netns", "add", ns[side])
            created.append(ns[side])
            _ip("-n", ns[side], "link", "set", "lo", "up")
        # Both ends are created directly inside the namespaces: never an interface in the root one.
        _ip("link", "add", "eth1", "netns", ns["a"], "type", "veth", "peer", "name", "eth1", "netns", ns["b"])
        _ip("-n", ns["b"], "addr", "add", f"{net}.2/24", "dev", "eth1")
        _ip("-n", ns["b"], "link", "set", "eth1", "up")
        yield lab
    finally:
        for h in lab.harnesses:
            h.stop()
        for name in created:
            _ip("netns", "del", name, check=False)


def test_cli_config_has_real_effects(lab):
    h = lab.start()
    a = lab.ns["a"]
    addr = f"{lab.net}.1"
    assert "rt1#" in h.cmd("show privilege")
    h.cmd("configure terminal")
    h.cmd("interface eth1")
    out = h.cmd(f"ip address {addr} 255.255.255.0")
    assert "%" not in out.split("\r\n", 1)[1].split("*")[0]
    h.cmd("no shutdown")
    h.cmd("exit")
    h.cmd(f"ip route 10.77.0.0 255.255.0.0 {lab.net}.2")
    h.cmd("end")

    assert f"inet {addr}/24" in _ip("-n", a, "-o", "addr", "show", "dev", "eth1")
    wait_for(lambda: lab.ping(addr), what=f"ping from b to {addr}")
    assert f"via {lab.net}.2" in _ip("-n", a, "route", "show", "10.77.0.0/16")
    assert _ip("netns", "exec", a, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"

    brief = h.cmd("show ip interface brief")
    assert f"eth1                   {addr:<15} YES manual up                    up" in brief
    route = h.cmd("show ip route")
    assert f"S        10.77.0.0/16 [1/0] via {lab.net}.2" in route
    assert f"C        {lab.net}.0/24 is directly connected, eth1" in route
    assert f"L        {addr}/32 is directly connected, eth1" in route

    h.cmd("configure terminal")
    h.cmd("interface eth1")
    h.cmd("shutdown")
    h.cmd("end")
    link = _ip("-n", a, "-o", "link", "show", "eth1")
    assert "state DOWN" in link and ",UP" not in link and "<UP" not in link
    assert not lab.ping(addr)
    assert "administratively down" in h.cmd("show interfaces eth1").split("\r\n")[1]

    h.cmd("configure terminal")
    h.cmd("interface eth1")
    h.cmd("no shutdown")
    h.cmd("end")
    wait_for(lambda: lab.ping(addr), what="ping after no shutdown")
    wait_for(lambda: "via" in _ip("-n", a, "route", "show", "10.77.0.0/16"), what="static route reinstalled")


def test_link_fault_from_outside_is_noticed(lab):
    h = lab.current()
    _ip("-n", lab.ns["b"], "link", "set", "eth1", "down")
    try:
        wait_for(lambda: "Interface eth1, changed state to down" in h.cmd("show logging"),
                 what="%LINK-3-UPDOWN down in show logging")
        assert "eth1 is down, line protocol is down" in h.cmd("show interfaces eth1")
    finally:
        _ip("-n", lab.ns["b"], "link", "set", "eth1", "up")
    wait_for(lambda: "Interface eth1, changed state to up" in h.cmd("show logging"), what="link back up")


def test_startup_config_survives_an_emulator_restart(lab):
    h = lab.current()
    for line in ("configure terminal", "hostname persisted", "interface eth1",
                 f"ip address {lab.net}.1 255.255.255.0", "no shutdown", "exit",
                 f"ip route 10.77.0.0 255.255.0.0 {lab.net}.2", "end"):
        h.cmd(line)
    assert "[OK]" in h.cmd("write memory")
    h.stop()
    # wipe the kernel state the old process left, then start a fresh emulator process
    _ip("-n", lab.ns["a"], "addr", "flush", "dev", "eth1")
    h2 = lab.start()
    assert "persisted#" in h2.cmd("show privilege")
    wait_for(lambda: f"inet {lab.net}.1/24" in _ip("-n", lab.ns["a"], "-o", "addr", "show", "dev", "eth1"),
             what="address restored from startup-config")
    wait_for(lambda: lab.ping(f"{lab.net}.1"), what="ping after restart")
    wait_for(lambda: "via" in _ip("-n", lab.ns["a"], "route", "show", "10.77.0.0/16"), what="route restored")
