"""The device daemon's SSH, telnet and console, driven by the pexpect driver with the real clients.

Two namespaces of our own (no Mininet): the device's, where `emulators.run` serves, and a station's,
where the OpenSSH and telnet clients run, joined by a veth whose addresses exist only inside them.
The root namespace gets no address and sends no lab traffic. Teardown stops only the processes this
module started, by PID, and deletes only its own namespaces.

The device is the real router when the engine is installed (`emulators.kinds`), else the transports'
stand-in (`emulators.transports.fake`), so the transports are tested either way.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pexpect
import pytest

from netns_pair import netns_pair, stop

from twin.driver import CommandError, DriverError, LoginError, Target, connect
from twin.nodeexec import MNEXEC, NodeExec

pytestmark = pytest.mark.e2e

USERS = {"admin": "admin", "oper": "op3r"}
SECRET = "s3cret"
FAKE_KIND = "emulators.transports.fake:FakeDevice"


def _kind() -> str:
    """The real router when the engine is there (TWIN_TRANSPORT_FAKE=1 forces the stand-in)."""
    if os.environ.get("TWIN_TRANSPORT_FAKE") == "1":
        return FAKE_KIND
    try:
        from emulators.kinds import device_class

        device_class("router")
        return "router"
    except Exception:
        return FAKE_KIND


@dataclass
class Daemon:
    proc: subprocess.Popen
    dir: Path
    ready: dict
    log: Path

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Net:
    nodes: NodeExec              # "dev" and "sta"
    ns: dict[str, str]
    ip: dict[str, str]
    tmp: Path
    kind: str

    def start_daemon(self, name: str, ssh_port: int, telnet_port: int, extra: list[str] | None = None) -> Daemon:
        d = self.tmp / name
        d.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "emulators.run", "--kind", self.kind, "--name", name,
                "--state-dir", str(d / "state"), "--users", ",".join(f"{u}:{p}" for u, p in USERS.items()),
                "--enable-secret", SECRET, "--mgmt-ip", self.ip["dev"], "--ssh-port", str(ssh_port),
                "--telnet-port", str(telnet_port), "--console-socket", str(d / "con.sock"),
                "--ready-file", str(d / "ready.json"), "--log", str(d / "emulator.log"), *(extra or [])]
        with open(d / "emulator.err", "ab") as err:
            proc = self.nodes.popen("dev", argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + 30
        while not (d / "ready.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                raise AssertionError(f"emulator {name} never became ready (rc={proc.returncode}):\n"
                                     f"{(d / 'emulator.err').read_text(errors='replace')}\n"
                                     f"{(d / 'emulator.log').read_text(errors='replace') if (d / 'emulator.log').exists() else ''}")
            time.sleep(0.02)
        return Daemon(proc, d, json.loads((d / "ready.json").read_text()), d / "emulator.log")

    def target(self, daemon: Daemon, **over) -> Target:
        t = Target(device=daemon.ready["name"], node_pid=self.nodes.pid("dev"), station_pid=self.nodes.pid("sta"),
                   mgmt_ip=self.ip["dev"], console_socket=daemon.ready["console"],
                   ssh_port=daemon.ready["ssh_port"], telnet_port=daemon.ready["telnet_port"],
                   username="admin", password=USERS["admin"], enable_secret=SECRET)
        return replace(t, **over)


_stop = stop


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    pid = os.getpid()
    subnet = 10 + pid % 200
    tmp = Path(tempfile.mkdtemp(prefix="twtp"))  # short: console socket paths must fit in 108 bytes
    try:
        # the device's end is its management interface, which the router leaves to the lab
        with netns_pair(ns={"dev": f"twtp{pid}d", "sta": f"twtp{pid}s"},
                        intf={"dev": "mgmt0", "sta": f"tp{pid}s"},
                        addresses={"dev": f"10.198.{subnet}.1", "sta": f"10.198.{subnet}.2"}) as p:
            yield Net(nodes=p.nodes, ns=p.ns, ip=p.ip, tmp=tmp, kind=_kind())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def r1(net: Net) -> Iterator[Daemon]:
    daemon = net.start_daemon("r1", 22, 23)
    try:
        yield daemon
    finally:
        _stop_checked(daemon)


def _stop_checked(d: Daemon) -> None:
    _stop(d.proc)
    log = d.log_text()
    assert "Traceback" not in log, f"the emulator logged an exception:\n{log[-4000:]}"


def _alive(d: Daemon) -> None:
    assert d.proc.poll() is None, f"emulator died (rc={d.proc.returncode}):\n{d.log_text()[-3000:]}"


# ---- access over each transport ------------------------------------------------------------------
def test_ready_file_names_every_listener(net: Net, r1: Daemon) -> None:
    assert r1.ready["pid"] == r1.proc.pid or r1.ready["pid"] > 0
    assert (r1.ready["ssh_port"], r1.ready["telnet_port"]) == (22, 23)
    assert Path(r1.ready["console"]).exists()


def test_ssh_with_openssh_through_the_driver(net: Net, r1: Daemon) -> None:
    with connect(net.target(r1), "ssh") as s:
        assert s.mode in ("user", "privileged") and s.prompt.startswith("r1")  # lab users may be privilege 15
        out = s.run("show version")
        assert "Version" in out and "show version" not in out and not out.rstrip().endswith(">")
        s.enable()
        assert s.mode == "privileged"
    assert "> show version" in s.transcript and "********" in s.transcript and USERS["admin"] + "\r" not in s.transcript


def test_telnet_through_the_driver(net: Net, r1: Daemon) -> None:
    with connect(net.target(r1), "telnet") as s:
        assert "Version" in s.run("show version")
        s.enable()
        assert s.mode == "privileged"


def test_console_through_the_driver(net: Net, r1: Daemon) -> None:
    with connect(net.target(r1), "console") as s:
        assert "Version" in s.run("show version")
        assert s.mode == "user"
        s.enable()
        s.configure(["hostname r1"])
        assert s.mode == "privileged"
        with pytest.raises(CommandError) as err:
            s.configure(["hostname r1", "no such command here"])
        assert err.value.command == "no such command here" and "% Invalid input" in err.value.output
        assert s.mode == "privileged"


def test_second_console_attach_takes_the_line_over(net: Net, r1: Daemon) -> None:
    first = connect(net.target(r1), "console")
    try:
        with connect(net.target(r1), "console") as second:
            assert first.channel.wait_closed(5), "the first console session was not disconnected"
            assert "taken over" in first.transcript
            assert "Version" in second.run("show version")
    finally:
        first.close()


def test_ssh_exec_runs_one_command_and_exits(net: Net, r1: Daemon) -> None:
    argv = [MNEXEC, "-a", str(net.nodes.pid("sta")), "ssh", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no", "-o", "LogLevel=ERROR",
            f"admin@{net.ip['dev']}", "show version"]
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=15)
    try:
        child.expect("(?i)password:")
        child.sendline(USERS["admin"])
        child.expect(pexpect.EOF)
        assert "Version" in child.before
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)


@pytest.mark.parametrize("transport", ["ssh", "telnet"])
def test_wrong_password_is_refused(net: Net, r1: Daemon, transport: str) -> None:
    with pytest.raises(LoginError) as err:
        connect(net.target(r1, password="wrong"), transport, timeout=15).close()
    assert "r1" in str(err.value) and transport in str(err.value)
    with pytest.raises(LoginError):
        connect(net.target(r1, username="nobody"), transport, timeout=15).close()
    _alive(r1)


def test_twenty_concurrent_ssh_sessions(net: Net, r1: Daemon) -> None:
    def one(i: int) -> str:
        user = "admin" if i % 2 else "oper"
        with connect(net.target(r1, username=user, password=USERS[user]), "ssh", timeout=30) as s:
            return s.run("show version", timeout=30)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        outs = list(pool.map(one, range(20)))
    assert len(outs) == 20 and all("Version" in o for o in outs), outs
    assert time.monotonic() - t0 < 60
    _alive(r1)


# ---- robustness ---------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["ssh", "telnet", "console"])
def test_client_that_disconnects_mid_command_and_mid_more_leaves_the_device_healthy(
        net: Net, r1: Daemon, transport: str) -> None:
    # mid-command: Enter sent, nothing read, client killed
    s = connect(net.target(r1), transport)
    s.channel.send("show version\r")
    s.channel.close()
    # mid --More--: a 2-line terminal pages `show version`, and the client dies at the pager
    s = connect(net.target(r1), transport)
    s.run("terminal length 2")
    s.channel.send("show version\r")
    s.channel.expect([r"--More--"], 10, "pager", "show version")
    s.channel.close()
    with connect(net.target(r1), transport) as s:
        assert "Version" in s.run("show version")
    _alive(r1)


# Random bytes without line ends: a random line could otherwise be a real command ("q" is `quit`,
# as on IOS) and end the session the test wants to keep.
_NOISE = random.Random(11).randbytes(512).replace(b"\r", b"").replace(b"\n", b"")
GARBAGE = bytes(range(256)) + b"\xff\xfa\x1f\x00" + _NOISE + b"\xff\xff\xfe\x01" + b"\x1b[A\x00\r\n"


@pytest.mark.parametrize("transport", ["telnet", "console", "ssh"])
def test_binary_garbage_then_show_version_still_works(net: Net, r1: Daemon, transport: str) -> None:
    with connect(net.target(r1), transport) as s:
        s.send_raw(GARBAGE)
        assert "Version" in s.run("show version", timeout=20)
    with connect(net.target(r1), transport) as s:
        assert "Version" in s.run("show version")
    _alive(r1)


def test_raw_socket_garbage_on_the_telnet_port(net: Net, r1: Daemon) -> None:
    """Bytes a telnet client would never send (broken IAC sequences, endless subnegotiation)."""
    rnd = random.Random(7)
    blobs = [bytes(rnd.randrange(256) for _ in range(4096)), b"\xff\xfa" + b"A" * 10000,
             b"\xff" * 3001, b"\xff\xfb\x01\xff\xfd\x01" * 200 + b"\xff\xfa\x1f\x00\x00\x00\x00\xff\xf0"]
    script = (
        "import socket,sys,time\n"
        f"for blob in {blobs!r}:\n"
        f"    s=socket.create_connection(({net.ip['dev']!r},23),timeout=5)\n"
        "    s.sendall(blob); time.sleep(0.05)\n"
        "    s.settimeout(0.5)\n"
        "    try:\n"
        "        s.recv(65536)\n"
        "    except OSError:\n"
        "        pass\n"
        "    s.close()\n"
        "print('sent')\n")
    res = net.nodes.run("sta", [sys.executable, "-c", script], timeout=60)
    assert res.returncode == 0 and "sent" in res.stdout, res.stderr
    with connect(net.target(r1), "telnet") as s:
        assert "Version" in s.run("show version")
    _alive(r1)


# ---- lifecycle ----------------------------------------------------------------------------------
def test_reload_drops_sessions_and_the_device_comes_back(net: Net) -> None:
    d = net.start_daemon("r2", 2022, 2023)
    try:
        watcher = connect(net.target(d), "ssh")
        with connect(net.target(d), "console") as s:
            s.enable()
            _, i = s.channel.command("reload", 10, expect_extra=[r"Save\? \[yes/no\]: *\Z", r"\[confirm\] *\Z"])
            if i == 1:  # unsaved changes: don't save
                s.channel.send("no\r")
                i = 2 + s.channel.expect([r"\[confirm\] *\Z"], 10, "reload confirmation", "reload")
            assert i == 2, s.transcript
            s.channel.send("\r")
            assert s.channel.wait_closed(10), "the console session survived a reload"
        assert watcher.channel.wait_closed(10), "an SSH session survived a reload"
        watcher.close()
        with connect(net.target(d), "ssh") as s:
            assert "Version" in s.run("show version")
        _alive(d)
        assert "booted (boot #2)" in d.log_text()
    finally:
        _stop_checked(d)


def test_sigterm_exits_promptly_and_the_host_key_is_reused(net: Net) -> None:
    d = net.start_daemon("r3", 3022, 3023)
    key = (d.dir / "state" / "ssh_host_ed25519_key").read_bytes()
    sessions = [connect(net.target(d), t) for t in ("ssh", "telnet", "console")]
    try:
        t0 = time.monotonic()
        os.kill(d.proc.pid, signal.SIGTERM)
        rc = d.proc.wait(timeout=10)
        took = time.monotonic() - t0
        assert rc == 0 and took < 3.0, (rc, took, d.log_text()[-2000:])
        for s in sessions:
            assert s.channel.wait_closed(5), f"{s.transport} session still open after SIGTERM"
        assert not (d.dir / "ready.json").exists()
    finally:
        for s in sessions:
            s.close()
    d2 = net.start_daemon("r3", 3022, 3023)
    try:
        assert (d.dir / "state" / "ssh_host_ed25519_key").read_bytes() == key
        with connect(net.target(d2), "ssh") as s:
            assert "Version" in s.run("show version")
    finally:
        _stop_checked(d2)


def test_transport_input_on_the_vty_lines_is_enforced(net: Net) -> None:
    d = net.start_daemon("r4", 4022, 4023)
    try:
        with connect(net.target(d), "console") as s:
            s.enable()
            try:
                s.configure(["line vty 0 4", "transport input ssh"])
            except CommandError:
                pytest.skip("this device kind has no `transport input`")
        with pytest.raises(DriverError, match="r4"):
            connect(net.target(d), "telnet", timeout=5).close()
        with connect(net.target(d), "ssh") as s:
            assert "Version" in s.run("show version")
    finally:
        _stop_checked(d)


def test_interactive_console_client_leaves_on_ctrl_bracket(net: Net, r1: Daemon) -> None:
    from twin.driver.interactive import interactive_argv

    argv = interactive_argv(net.target(r1), "console")
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=10)
    try:
        child.expect(r"Ctrl-\] to leave")
        child.expect(r"r1[>#]")
        child.send("show version\r")
        child.expect("Version")
        child.expect(r"r1[>#]")
        child.send("\x1d")
        child.expect(r"\[console closed\]")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
