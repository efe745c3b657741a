"""The device daemon's pieces without a network: session registry, reload, engine errors contained,
the console socket (one line, take-over), console_attach, argument parsing, and how the driver finds
a device in a lab's state."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from emulators.console_attach import bridge
from emulators.run import device_class, parse_users
from emulators.transports.console import ConsoleServer
from emulators.transports.fake import FakeDevice
from emulators.transports.host import DeviceHost
from twin.driver import DeviceHandle, target_for
from twin.driver.interactive import interactive_argv

pytestmark = pytest.mark.unit


def _host(loop: asyncio.AbstractEventLoop, cls: type = FakeDevice) -> DeviceHost:
    return DeviceHost(lambda first: cls("r1", state_dir=Path("."), users={"admin": "pw"}, enable_secret="s"), loop)


def test_parse_users_and_kind_lookup() -> None:
    assert parse_users("admin:admin,op:se:cret") == {"admin": "admin", "op": "se:cret"}
    with pytest.raises(SystemExit):
        parse_users("nocolon")
    assert device_class("emulators.transports.fake:FakeDevice") is FakeDevice


def test_links_are_tracked_and_reload_drops_them_and_reboots() -> None:
    async def main() -> None:
        host = _host(asyncio.get_running_loop())
        host.boot()
        first = host.device
        out: list[bytes] = []
        hung: list[str] = []
        links = [host.attach("ssh", f"p{i}", out.append, lambda i=i: hung.append(f"p{i}"), user="admin")
                 for i in range(3)]
        for link in links:
            link.start()
        assert len(host.links) == 3 and b"r1>" in b"".join(out)
        links[0].feed(b"enable\rs\rreload\r\r")
        await asyncio.sleep(0.01)
        assert host.device is not first and first.closed_ and host.boots == 2
        assert sorted(hung) == ["p0", "p1", "p2"] and not host.links
        links[1].feed(b"show version\r")  # a dropped link ignores input
        host.close()

    asyncio.run(main())


def test_engine_exception_is_contained() -> None:
    class Broken(FakeDevice):
        def new_session(self, **kw):
            s = super().new_session(**kw)

            def boom(data: bytes) -> None:
                raise RuntimeError("engine bug")
            s.feed = boom
            return s

    async def main() -> None:
        host = _host(asyncio.get_running_loop(), Broken)
        host.boot()
        out: list[bytes] = []
        link = host.attach("telnet", "p", out.append, lambda: None)
        link.start()
        link.feed(b"x")
        assert link.alive and b"% Internal error" in b"".join(out)
        host.close()

    asyncio.run(main())


def test_engine_close_and_writes_from_other_threads_reach_the_loop() -> None:
    async def main() -> None:
        host = _host(asyncio.get_running_loop())
        host.boot()
        out: list[bytes] = []
        hung: list[int] = []
        link = host.attach("console", "c", out.append, lambda: hung.append(1))
        t = threading.Thread(target=lambda: (link.write(b"from-thread"), link.close()))
        t.start()
        t.join()
        await asyncio.sleep(0.01)
        assert b"from-thread" in b"".join(out) and hung == [1] and not host.links

    asyncio.run(main())


def test_console_socket_serves_one_line_and_a_new_attach_takes_it_over() -> None:
    async def main(path: str) -> None:
        host = _host(asyncio.get_running_loop())
        host.boot()
        con = ConsoleServer(host, path)
        await con.start()
        r1, w1 = await asyncio.open_unix_connection(path)
        assert b"r1>" in await r1.readuntil(b">")
        w1.write(b"show version\r")
        assert b"Version" in await r1.readuntil(b"r1>")
        r2, w2 = await asyncio.open_unix_connection(path)
        assert b"r1>" in await r2.readuntil(b">")
        rest = await asyncio.wait_for(r1.read(), 2)  # first one: told, then EOF
        assert b"taken over" in rest and len(host.links) == 1
        w2.close()
        con.close()
        host.close()
        assert not os.path.exists(path)

    with tempfile.TemporaryDirectory(prefix="twc") as d:
        asyncio.run(main(os.path.join(d, "con.sock")))


def test_console_attach_bridges_both_ways_and_ends_with_the_device() -> None:
    dev, client = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    t = threading.Thread(target=bridge, args=(client, in_r, out_w))
    t.start()
    os.write(in_w, b"\x00\xff typed\r")
    assert dev.recv(100) == b"\x00\xff typed\r"
    dev.sendall(b"r1>\xfe")
    assert os.read(out_r, 100) == b"r1>\xfe"
    dev.close()
    t.join(2)
    assert not t.is_alive()
    for fd in (in_r, in_w, out_r, out_w):
        os.close(fd)
    client.close()


def test_console_attach_reports_a_missing_socket() -> None:
    res = subprocess.run([sys.executable, "-m", "emulators.console_attach", "--wait", "0.1", "/nonexistent/x.sock"],
                         capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert res.returncode == 1 and "cannot connect" in res.stderr


def _lab(tmp: Path, with_creds: bool = True) -> SimpleNamespace:
    node = SimpleNamespace(kind="router", pid=111, mgmt_ip="172.20.0.11/24")
    if with_creds:
        node.username, node.password, node.enable_secret = "admin", "pw", "sec"
        node.console = str(tmp / "r1.sock")
    state = SimpleNamespace(name="t", nodes={"r1": node, "mgmt": SimpleNamespace(kind="host", pid=222, mgmt_ip=None)})
    return SimpleNamespace(state=state, dir=tmp)


def test_target_from_lab_state_and_ready_file(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    t = target_for(lab, "r1")
    assert (t.device, t.node_pid, t.station_pid, t.mgmt_ip) == ("r1", 111, 222, "172.20.0.11")
    assert (t.username, t.password, t.enable_secret, t.console_socket) == ("admin", "pw", "sec", str(tmp_path / "r1.sock"))
    assert (t.ssh_port, t.telnet_port) == (22, 23)
    (tmp_path / "devices" / "r1").mkdir(parents=True)
    (tmp_path / "devices" / "r1" / "ready.json").write_text(json.dumps({"ssh_port": 2022, "telnet_port": 2023}))
    t = target_for(lab, "r1", username="other")
    assert (t.ssh_port, t.telnet_port, t.username) == (2022, 2023, "other")


def test_target_works_before_the_state_has_credentials(tmp_path: Path) -> None:
    t = DeviceHandle(_lab(tmp_path, with_creds=False), "r1").target()
    assert t.username is None and t.console_socket == str(tmp_path / "devices" / "r1" / "console.sock")


def test_interactive_clients_run_in_lab_namespaces(tmp_path: Path) -> None:
    t = target_for(_lab(tmp_path), "r1")
    con = interactive_argv(t, "console")
    assert con[:3] == ["/usr/bin/mnexec", "-a", "111"] and "--escape" in con and con[-1] == t.console_socket
    ssh = interactive_argv(t, "ssh")
    assert ssh[:3] == ["/usr/bin/mnexec", "-a", "222"] and ssh[-1] == "admin@172.20.0.11"
    assert interactive_argv(t, "telnet")[-2:] == ["172.20.0.11", "23"]


def test_real_router_reload_and_client_disconnects_through_the_host(tmp_path: Path) -> None:
    """The engine's own router (no system changes): a dropped client leaves no session behind in the
    device, and `reload` ends every session and boots a new device from startup-config."""
    from emulators.kinds import device_class as kind_class

    cls = kind_class("router")

    async def main() -> None:
        host = DeviceHost(lambda first: cls("r9", state_dir=tmp_path, users={"admin": "pw"}, enable_secret="s",
                                            apply=False), asyncio.get_running_loop())
        host.boot()
        first = host.device
        out: dict[str, list[bytes]] = {"a": [], "b": []}
        hung: list[str] = []
        a = host.attach("ssh", "a", out["a"].append, lambda: hung.append("a"), user="admin")
        b = host.attach("console", "b", out["b"].append, lambda: hung.append("b"))
        a.start()
        b.start()
        assert len(first.sessions) == 2
        b.detach()  # the console client went away
        assert len(first.sessions) == 1 and not b.alive
        a.feed(b"reload\r")
        a.feed(b"no\r")
        a.feed(b"\r")
        for _ in range(50):
            if host.boots == 2:
                break
            await asyncio.sleep(0.01)
        assert host.boots == 2 and host.device is not first and hung == ["a"] and not host.links
        assert b"Proceed with reload? [confirm]" in b"".join(out["a"])
        c: list[bytes] = []
        host.attach("ssh", "c", c.append, lambda: None, user="admin").start()
        assert b"r9#" in b"".join(c)
        host.close()

    asyncio.run(main())
