"""End to end: the controller against a real userspace Open vSwitch bridge.

One bridge `<prefix>s1` (datapath_type=netdev, OpenFlow 1.3, fail_mode=secure) with two veth ports
`<prefix>s1-eth1/2`, whose peers `<prefix>p1/2` stay in the root namespace without any address
(IPv6 disabled before they come up, so not even a link-local one): nothing here sends traffic.
Everything created is deleted by name in the fixture's teardown, and the controller log must be
free of tracebacks and OpenFlow errors. Readiness is always polled with deadlines.
"""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from twin.controller_client import ControllerClient, ControllerError
from twin.controller_process import (controller_log_problems, dump_flows, start_controller, stop_controller,
                                     wait_listening)
from twin.datapath import reconfiguring
from twin.ovs import ensure_ovs
from twin.polling import wait_for as poll

pytestmark = pytest.mark.e2e

CONNECT_DEADLINE_S = 20.0


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def disable_ipv6(name: str) -> None:
    knob = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
    if knob.exists():
        knob.write_text("1\n")


class Lab:
    """A one-switch OVS lab plus its controller, with everything named from one short prefix."""

    def __init__(self, workdir: Path) -> None:
        self.prefix = self._free_prefix()
        self.switch = "s1"
        self.bridge = f"{self.prefix}s1"
        self.dpid = 0x7E5700 + int(self.prefix[2:])
        self.ports = {i: f"{self.prefix}s1-eth{i}" for i in (1, 2)}  # OVS side
        self.peers = {i: f"{self.prefix}p{i}" for i in (1, 2)}       # root-namespace side
        self.of_port = free_port()
        self.sock = workdir / "api.sock"
        self.log = workdir / "controller.log"
        self.config = {"lab": f"e2e-{self.prefix}", "prefix": self.prefix,
                       "switches": {self.switch: {"dpid": self.dpid}}}
        self.client = ControllerClient(self.sock, timeout=15)
        self.proc: subprocess.Popen | None = None
        self.created_links: list[str] = []
        self.created_bridge = False

    @staticmethod
    def _free_prefix() -> str:
        bridges = set(sh("ovs-vsctl", "list-br").stdout.split())
        base = os.getpid() % 1000
        for step in range(1000):
            prefix = f"tc{(base + step) % 1000:03d}"
            taken = f"{prefix}s1" in bridges or any(n.startswith(prefix) for n in os.listdir("/sys/class/net"))
            if not taken:
                return prefix
        raise RuntimeError("no free tcNNN prefix")

    def start_controller(self) -> None:
        self.proc = start_controller(self.of_port, self.sock, self.config, self.log)
        wait_listening(self.of_port, 20, api_socket=self.sock, log=self.log, proc=self.proc)

    def stop_controller(self) -> None:
        if self.proc is not None:
            stop_controller(self.proc.pid)
            self.proc.wait(timeout=5)
            self.proc = None

    def build(self) -> None:
        for i in (1, 2):
            sh("ip", "link", "add", self.ports[i], "type", "veth", "peer", "name", self.peers[i])
            self.created_links.append(self.ports[i])
            for name in (self.ports[i], self.peers[i]):
                disable_ipv6(name)
                sh("ip", "link", "set", name, "up")
                assert sh("ip", "-o", "addr", "show", "dev", name).stdout.strip() == "", f"{name} has an address"
        cmd = ["ovs-vsctl",
               "--", "add-br", self.bridge,
               "--", "set", "bridge", self.bridge, "datapath_type=netdev", "protocols=OpenFlow13",
               "fail_mode=secure", f"other-config:datapath-id={self.dpid:016x}",
               "other-config:disable-in-band=true",
               "--", "--id=@c", "create", "Controller", f'target="tcp:127.0.0.1:{self.of_port}"',
               "max_backoff=1000", "connection_mode=out-of-band",
               "--", "set", "bridge", self.bridge, "controller=@c"]
        for i in (1, 2):
            cmd += ["--", "add-port", self.bridge, self.ports[i],
                    "--", "set", "interface", self.ports[i], f"ofport_request={i}"]
        self.created_bridge = True
        with reconfiguring("test_controller_ovs bridge"):
            sh(*cmd)
        disable_ipv6(self.bridge)  # the bridge's LOCAL device: stays down and address-less

    def teardown(self) -> None:
        errors = []
        if self.created_bridge:
            with reconfiguring("test_controller_ovs bridge"):
                res = sh("ovs-vsctl", "--if-exists", "del-br", self.bridge, check=False)
            if res.returncode:
                errors.append(res.stderr)
        for name in self.created_links:  # deleting one end of a veth deletes its peer
            if link_exists(name):
                res = sh("ip", "link", "del", name, check=False)
                if res.returncode:
                    errors.append(res.stderr)
        self.stop_controller()
        assert not errors, f"teardown errors: {errors}"

    def dump(self) -> str:
        return dump_flows(self.bridge)

    def ovs_flows(self) -> list[str]:
        """dump-flows lines without the volatile counters, e.g. 'cookie=0x0 priority=0 actions=NORMAL'."""
        lines = []
        for line in self.dump().splitlines():
            line = line.strip()
            if not line.startswith("cookie="):
                continue
            parts = [p for p in line.replace(", ", " ").split() if not p.startswith(("duration=", "n_packets=", "n_bytes=", "table="))]
            lines.append(" ".join(parts))
        return lines


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0 or shutil.which("ovs-vsctl") is None:
        pytest.skip("needs root and Open vSwitch")
    ensure_ovs()  # starts ovsdb/ovs-vswitchd if a reboot stopped them, or fails saying why
    lab = Lab(tmp_path_factory.mktemp("ctl-e2e"))
    try:
        lab.start_controller()
        lab.build()
        lab.client.wait_connected([lab.switch], CONNECT_DEADLINE_S)
        yield lab
    except BaseException:
        print(f"flows of {lab.bridge} at failure:\n{lab.dump()}")
        raise
    finally:
        lab.teardown()
        assert not link_exists(lab.peers[1]) and not link_exists(lab.bridge)
    problems = controller_log_problems(lab.log)
    assert not problems, "controller log has problems:\n" + "\n".join(problems)


def test_switch_connects_and_gets_table_miss_normal(lab: Lab) -> None:
    health = lab.client.health()
    assert health["switches_connected"] == 1
    assert lab.client.switches() == [{"name": "s1", "dpid": lab.dpid, "connected": True}]
    # "connected" means the table-miss rule is confirmed, so no polling is needed here
    assert "cookie=0x0 priority=0 actions=NORMAL" in lab.ovs_flows()
    miss = [f for f in lab.client.flows("s1") if f["priority"] == 0]
    assert len(miss) == 1 and miss[0]["match"] == {} and miss[0]["actions"] == ["OUTPUT:NORMAL"]
    enter = lab.client.wait_event(0, 5, type="switch_enter", switch="s1")
    assert enter["dpid"] == lab.dpid


def test_ports_are_shown_with_short_names(lab: Lab) -> None:
    ports = {p["name"]: p for p in lab.client.ports("s1")}
    assert ports["eth1"]["port_no"] == 1 and ports["eth1"]["ovs_name"] == lab.ports[1]
    assert ports["eth2"]["port_no"] == 2 and ports["eth2"]["link_up"] is True and ports["eth2"]["admin_up"] is True
    assert ports[lab.bridge]["port_no"] == 0xFFFFFFFE  # LOCAL keeps its full name


def test_drop_rule_is_in_the_switch_when_post_returns_and_delete_removes_it(lab: Lab) -> None:
    before = lab.ovs_flows()
    lab.client.add_flow("s1", {"in_port": "eth1"}, [], priority=100, cookie=0x42)
    # the barrier makes this immediate: no polling
    assert "cookie=0x42 priority=100,in_port=1 actions=drop" in lab.ovs_flows()
    flow = next(f for f in lab.client.flows("s1") if f["cookie"] == 0x42)
    assert flow["match"] == {"in_port": 1} and flow["in_port_name"] == "eth1" and flow["actions"] == []
    lab.client.delete_flows("s1", {"in_port": "eth1"})
    assert lab.ovs_flows() == before


def test_output_by_port_name_and_named_flow_listing(lab: Lab) -> None:
    try:
        lab.client.add_flow("s1", {"in_port": "eth1", "eth_type": 0x0800, "ipv4_dst": "10.0.0.0/8"},
                            [{"type": "OUTPUT", "port": "eth2"}], priority=150, cookie=0x43)
        assert "cookie=0x43 priority=150,ip,in_port=1,nw_dst=10.0.0.0/8 actions=output:2" in lab.ovs_flows()
        flow = next(f for f in lab.client.flows("s1") if f["cookie"] == 0x43)
        assert flow["actions"] == ["OUTPUT:2"] and flow["actions_named"] == ["OUTPUT:eth2"]
    finally:
        lab.client.delete_flows("s1", cookie=0x43)
    assert not [f for f in lab.ovs_flows() if "0x43" in f]


def test_bad_input_is_rejected_and_installs_nothing(lab: Lab) -> None:
    before = lab.ovs_flows()
    with pytest.raises(ControllerError) as err:
        lab.client.add_flow("s1", {"in_port": "eth9"}, [], priority=100)
    assert err.value.status == 400
    assert err.value.message == "match.in_port: no port named eth9 on switch s1 (ports: eth1, eth2)"
    with pytest.raises(ControllerError) as err:
        lab.client.add_flow("s1", {"in_port": "eth1"}, [{"type": "OUTPUT", "port": "eth3"}], priority=100)
    assert err.value.message == "actions[0].port: no port named eth3 on switch s1 (ports: eth1, eth2)"
    with pytest.raises(ControllerError) as err:
        lab.client.add_flow("s1", {"in_port": 1, "tcp_dst": 22}, [], priority=100)
    assert err.value.status == 400 and err.value.message.startswith('match.tcp_dst: needs "eth_type"')
    assert lab.ovs_flows() == before


def test_table_miss_survives_deletes_unless_explicitly_deleted(lab: Lab) -> None:
    lab.client.add_flow("s1", {"in_port": "eth1"}, [], priority=10, cookie=0x50)
    lab.client.add_flow("s1", {"in_port": "eth1"}, [], priority=20, cookie=0x51)
    lab.client.add_flow("s1", {"in_port": "eth2"}, [], priority=30, cookie=0x52)
    # non-strict with a priority: only that priority goes
    assert lab.client.delete_flows("s1", {"in_port": "eth1"}, priority=10) == {"ok": True, "deleted": 1}
    # delete everything: the table-miss stays
    assert lab.client.delete_flows("s1") == {"ok": True, "deleted": 2}
    assert lab.ovs_flows() == ["cookie=0x0 priority=0 actions=NORMAL"]
    assert lab.client.delete_flows("s1", priority=0) == {"ok": True, "deleted": 0}
    assert lab.ovs_flows() == ["cookie=0x0 priority=0 actions=NORMAL"]
    # explicitly asked for: strict, priority 0
    lab.client.delete_flows("s1", priority=0, strict=True)
    assert lab.ovs_flows() == []
    lab.client.add_flow("s1", {}, [{"type": "OUTPUT", "port": "NORMAL"}], priority=0)
    assert lab.ovs_flows() == ["cookie=0x0 priority=0 actions=NORMAL"]


def test_port_down_and_up_arrive_as_events(lab: Lab) -> None:
    cursor = lab.client.events()["next"]
    try:
        sh("ip", "link", "set", lab.peers[1], "down")
        down = lab.client.wait_event(cursor, 10, type="port_status", port="eth1", link_up=False)
        assert down["switch"] == "s1" and down["port_no"] == 1 and down["reason"] == "modify"
        assert down["ovs_name"] == lab.ports[1]
        poll(lambda: not {p["name"]: p for p in lab.client.ports("s1")}["eth1"]["link_up"], 5,
             "eth1 link down in /ports")
    finally:
        sh("ip", "link", "set", lab.peers[1], "up")
    lab.client.wait_event(down["seq"] + 1, 10, type="port_status", port="eth1", link_up=True)


def test_controller_restart_keeps_rules_and_switch_reconnects(lab: Lab) -> None:
    lab.client.add_flow("s1", {"in_port": "eth2"}, [], priority=300, cookie=0x77)
    old_boot = lab.client.health()["boot"]
    cursor = lab.client.events()["next"]
    lab.stop_controller()
    assert not lab.sock.exists()
    # fail_mode=secure: the switch keeps its rules while the controller is away
    assert "cookie=0x77 priority=300,in_port=2 actions=drop" in lab.ovs_flows()
    lab.start_controller()
    lab.client.wait_connected(["s1"], CONNECT_DEADLINE_S)
    health = lab.client.health()
    assert health["boot"] != old_boot and health["switches_connected"] == 1
    # the new controller numbers its events above every old cursor: the old cursor finds them
    enter = lab.client.wait_event(cursor, 5, type="switch_enter", switch="s1")
    assert enter["seq"] > cursor
    flows = lab.ovs_flows()
    assert "cookie=0x77 priority=300,in_port=2 actions=drop" in flows
    assert flows.count("cookie=0x0 priority=0 actions=NORMAL") == 1
    assert any(f["cookie"] == 0x77 and f["in_port_name"] == "eth2" for f in lab.client.flows("s1"))
    lab.client.delete_flows("s1", cookie=0x77)
    assert lab.ovs_flows() == ["cookie=0x0 priority=0 actions=NORMAL"]


def test_bridge_removal_is_seen_as_switch_leave(lab: Lab) -> None:
    """Runs last: removes the bridge (teardown tolerates that)."""
    cursor = lab.client.events()["next"]
    with reconfiguring("test_controller_ovs bridge"):
        sh("ovs-vsctl", "--if-exists", "del-br", lab.bridge)
    leave = lab.client.wait_event(cursor, 10, type="switch_leave", switch="s1")
    assert leave["dpid"] == lab.dpid
    assert lab.client.switches() == [{"name": "s1", "dpid": lab.dpid, "connected": False}]
    with pytest.raises(ControllerError) as err:
        lab.client.flows("s1")
    assert err.value.status == 503


# ---------------------------------------------------------------------------------------------
# A scripted OpenFlow 1.3 switch: misbehaves on purpose where OVS never would on demand (a stats
# or barrier reply that never comes, a rejected flow mod, a disconnect in mid-request). These
# exercise the controller's workarounds for os-ken 4.2.2's native hub (waits that must time out,
# disconnects that must be noticed). No OVS and no root needed.

OFP13 = 4
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_FEATURES_REQUEST, OFPT_FEATURES_REPLY, OFPT_FLOW_MOD = 5, 6, 14
OFPT_MULTIPART_REQUEST, OFPT_MULTIPART_REPLY, OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 18, 19, 20, 21
OFPMP_FLOW, OFPMP_PORT_DESC = 1, 13


class ScriptedSwitch:
    """Connects to the controller like a switch; answers what the flags allow."""

    def __init__(self, of_port: int, dpid: int, ports: dict[int, str]) -> None:
        self.of_port = of_port
        self.dpid = dpid
        self.ports = ports
        self.answer_flow_stats = True
        self.answer_barrier = True
        self.reject_flow_mods = False
        self.flow_stats_seen = threading.Event()  # a flow-stats request arrived
        self.sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.of_port), timeout=10)
        self.sock.settimeout(None)
        self._send(OFPT_HELLO, 1, b"")
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None

    def _send(self, msg_type: int, xid: int, body: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(struct.pack("!BBHI", OFP13, msg_type, 8 + len(body), xid) + body)

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            assert self.sock is not None
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _loop(self) -> None:
        try:
            while True:
                header = self._recv_exact(8)
                _version, msg_type, length, xid = struct.unpack("!BBHI", header)
                body = self._recv_exact(length - 8)
                if msg_type == OFPT_ECHO_REQUEST:
                    self._send(OFPT_ECHO_REPLY, xid, body)
                elif msg_type == OFPT_FEATURES_REQUEST:
                    self._send(OFPT_FEATURES_REPLY, xid, struct.pack("!QIBB2xII", self.dpid, 0, 1, 0, 0, 0))
                elif msg_type == OFPT_MULTIPART_REQUEST:
                    mp_type = struct.unpack("!H", body[:2])[0]
                    if mp_type == OFPMP_PORT_DESC:
                        ports = b"".join(
                            struct.pack("!I4x6s2x16sIIIIIIII", no, bytes([2, 0, 0, 0, 0, no]), name.encode(),
                                        0, 0, 0, 0, 0, 0, 0, 0) for no, name in self.ports.items())
                        self._send(OFPT_MULTIPART_REPLY, xid, struct.pack("!HH4x", OFPMP_PORT_DESC, 0) + ports)
                    elif mp_type == OFPMP_FLOW:
                        self.flow_stats_seen.set()
                    if mp_type == OFPMP_FLOW and self.answer_flow_stats:
                        self._send(OFPT_MULTIPART_REPLY, xid, struct.pack("!HH4x", OFPMP_FLOW, 0))
                elif msg_type == OFPT_BARRIER_REQUEST and self.answer_barrier:
                    self._send(OFPT_BARRIER_REPLY, xid, b"")
                elif msg_type == OFPT_FLOW_MOD and self.reject_flow_mods:
                    # OFPET_BAD_MATCH / OFPBMC_BAD_FIELD, with the start of the failed request
                    self._send(OFPT_ERROR, xid, struct.pack("!HH", 4, 6) + (header + body)[:64])
        except (EOFError, OSError):
            return


@pytest.fixture()
def scripted(tmp_path: Path) -> Iterator[tuple[ScriptedSwitch, ControllerClient, Path]]:
    of_port = free_port()
    sock, log = tmp_path / "api.sock", tmp_path / "controller.log"
    config = {"lab": "scripted", "prefix": "zz0", "switches": {"s1": {"dpid": 0x51}}, "reply_timeout_s": 1.5}
    proc = start_controller(of_port, sock, config, log)
    switch = ScriptedSwitch(of_port, 0x51, {1: "zz0s1-eth1", 2: "zz0s1-eth2"})
    try:
        wait_listening(of_port, 20, api_socket=sock, log=log, proc=proc)
        client = ControllerClient(sock, timeout=15)
        switch.connect()
        client.wait_connected(["s1"], CONNECT_DEADLINE_S)
        yield switch, client, log
    finally:
        switch.close()
        stop_controller(proc.pid)
        proc.wait(timeout=5)


def test_scripted_unanswered_requests_time_out_instead_of_hanging(scripted: tuple[ScriptedSwitch, ControllerClient, Path]) -> None:
    switch, client, log = scripted
    assert client.flows("s1") == []
    switch.answer_flow_stats = False
    started = time.monotonic()
    with pytest.raises(ControllerError) as err:
        client.flows("s1")
    assert err.value.status == 504 and "did not answer a OFPFlowStatsRequest within 1.5 s" in err.value.message
    assert time.monotonic() - started < 5
    switch.answer_barrier = False
    with pytest.raises(ControllerError) as err:
        client.add_flow("s1", {"in_port": "eth1"}, [], priority=5)
    assert err.value.status == 504 and "no barrier reply within 1.5 s" in err.value.message
    assert client.health()["ok"] is True
    assert controller_log_problems(log) == []


def test_scripted_rejected_flow_mod_is_an_error_for_the_call(scripted: tuple[ScriptedSwitch, ControllerClient, Path]) -> None:
    switch, client, log = scripted
    switch.reject_flow_mods = True
    with pytest.raises(ControllerError) as err:
        client.add_flow("s1", {"in_port": "eth2"}, [{"type": "OUTPUT", "port": "eth1"}], priority=5)
    assert err.value.status == 400
    assert err.value.message.startswith("switch s1 rejected the flow: OFPET_BAD_MATCH(4)/OFPBMC_BAD_FIELD(6)")
    problems = controller_log_problems(log)
    assert len(problems) == 1 and "OFPErrorMsg from switch s1" in problems[0]


def test_scripted_disconnect_fails_pending_call_and_is_seen(scripted: tuple[ScriptedSwitch, ControllerClient, Path]) -> None:
    switch, client, log = scripted
    cursor = client.events()["next"]
    switch.answer_flow_stats = False
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(client.flows("s1"))
        except ControllerError as exc:
            outcome.append(exc)

    switch.flow_stats_seen.clear()
    worker = threading.Thread(target=call)
    worker.start()
    assert switch.flow_stats_seen.wait(10), "the flow-stats request never reached the switch"
    switch.close()
    worker.join(timeout=10)
    assert outcome and isinstance(outcome[0], ControllerError), outcome
    # 503 "disconnected", not the 504 of the reply timeout: the disconnect ended the wait
    assert outcome[0].status == 503 and "disconnected" in outcome[0].message
    client.wait_event(cursor, 5, type="switch_leave", switch="s1")
    assert client.switches()[0]["connected"] is False
    assert controller_log_problems(log) == []
