"""Unit tests of the controller package and its client, without any switch.

Pure functions (port-name translation, request validation, event log, log scanning) are tested
directly; the API is tested against a real controller process with no switch connected, started
on a free 127.0.0.1 port with its socket in the test's temp directory.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controllers import flowspec
from controllers.errors import ApiError
from controllers.events import EventLog
from controllers.portnames import port_label, resolve_port, short_port_name
from controllers.run import app_load_order
from controllers.twin_base import TwinConfig
from twin.controller_client import ControllerClient, ControllerError, ControllerUnreachable, _UnixHTTPConnection
from twin.controller_process import (controller_log_problems, start_controller, stop_controller,
                                     wait_listening)

pytestmark = pytest.mark.unit

CONFIG = {"lab": "unit", "prefix": "def00", "switches": {"s1": {"dpid": 1}, "s2": {"dpid": 2}}}
PORTS = {1: "def00s1-eth1", 2: "def00s1-eth2", 3: "def00mgmt-s1", 0xFFFFFFFE: "def00s1"}


def free_port() -> int:
    """A currently free 127.0.0.1 TCP port (the kernel's choice, so never a well-known one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# port names


def test_short_port_name_strips_lab_and_switch_prefix() -> None:
    assert short_port_name("def00s1-eth1", "def00", "s1") == "eth1"
    assert short_port_name("def00s10-eth1", "def00", "s10") == "eth1"


@pytest.mark.parametrize("ovs_name", ["def00s1", "def00mgmt-s1", "def00s10-eth1", "def00s1-", "other-eth1"])
def test_short_port_name_keeps_names_outside_the_pattern(ovs_name: str) -> None:
    assert short_port_name(ovs_name, "def00", "s1") == ovs_name


@pytest.mark.parametrize("given, expected", [
    ("eth2", 2), ("def00s1-eth2", 2), (2, 2), ("2", 2), ("0x2", 2), ("def00mgmt-s1", 3),
    ("NORMAL", 0xFFFFFFFA), ("controller", 0xFFFFFFFD), ("LOCAL", 0xFFFFFFFE), ("eth7", None),
])
def test_resolve_port_accepts_names_numbers_and_reserved(given: Any, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(ApiError):
            resolve_port(given, PORTS, "def00", "s1", "match.in_port")
    else:
        assert resolve_port(given, PORTS, "def00", "s1", "match.in_port") == expected


def test_resolve_port_unknown_name_names_field_switch_and_ports() -> None:
    ports = {2: "def00s1-eth2", 1: "def00s1-eth1", 0xFFFFFFFE: "def00s1"}
    with pytest.raises(ApiError) as err:
        resolve_port("eth9", ports, "def00", "s1", "match.in_port")
    assert err.value.status == 400
    assert err.value.message == "match.in_port: no port named eth9 on switch s1 (ports: eth1, eth2)"


@pytest.mark.parametrize("bad", [True, 2**32, -1, 1.5, ""])
def test_resolve_port_rejects_bad_values(bad: Any) -> None:
    with pytest.raises(ApiError, match=r"^actions\[0\]\.port: "):
        resolve_port(bad, PORTS, "def00", "s1", "actions[0].port")


def test_port_label_prefers_short_then_reserved_then_number() -> None:
    assert port_label(1, PORTS, "def00", "s1") == "eth1"
    assert port_label(0xFFFFFFFA, {}, "def00", "s1") == "NORMAL"
    assert port_label(42, PORTS, "def00", "s1") == 42


# ---------------------------------------------------------------------------------------------
# request validation (pure)


@pytest.mark.parametrize("body, expected", [
    ([], "request body: expected a JSON object, got list"),
    ({"match": {}}, 'missing "switch" (switch name) or "dpid"'),
    ({"switch": "s1", "dpid": 1}, 'give either "switch" or "dpid", not both'),
    ({"switch": "s1", "prio": 5}, "unknown field 'prio'"),
    ({"switch": "s1", "priority": 70000}, "priority: 70000 out of range 0..65535"),
    ({"switch": "s1", "priority": True}, "priority: expected an integer, got True"),
    ({"switch": "s1", "priority": "high"}, "priority: expected an integer, got 'high'"),
    ({"switch": "s1", "match": []}, "match: expected a JSON object, got list"),
    ({"switch": "s1", "match": {"in_prot": 1}}, "match.in_prot: unknown match field"),
    ({"switch": "s1", "match": {"eth_dst": "zz"}}, "match.eth_dst: invalid value 'zz'"),
    ({"switch": "s1", "match": {"eth_type": 2048, "ipv4_dst": "300.1.1.1"}}, "match.ipv4_dst: invalid value"),
    ({"switch": "s1", "match": {"ipv4_dst": "10.0.0.1"}}, 'match.ipv4_dst: needs "eth_type": 2048 (0x0800, IPv4)'),
    ({"switch": "s1", "match": {"eth_type": 2048, "tcp_dst": 80}}, 'match.tcp_dst: needs "ip_proto": 6 (TCP)'),
    ({"switch": "s1", "match": {"eth_type": 2048, "tp_dst": 80}}, 'match.tp_dst: needs "ip_proto": 6 (TCP), 17 (UDP)'),
    ({"switch": "s1", "match": {"dl_type": 2048, "eth_type": 2048}}, "match.eth_type: same field as match.dl_type"),
    ({"switch": "s1", "match": {"vlan_pcp": 3}}, 'match.vlan_pcp: needs a "vlan_vid"'),
    ({"switch": "s1", "match": {"in_port": 2**32}}, "match.in_port: port number 4294967296 out of range"),
    ({"switch": "s1", "match": {"in_port": None}}, "match.in_port: expected a number or string, got None"),
    ({"switch": "s1", "actions": {"type": "OUTPUT"}}, "actions: expected a list of actions, got dict"),
    ({"switch": "s1", "actions": ["OUTPUT:1"]}, "actions[0]: expected an object"),
    ({"switch": "s1", "actions": [{"port": 1}]}, 'actions[0]: missing "type"'),
    ({"switch": "s1", "actions": [{"type": "FORWARD", "port": 1}]}, "actions[0].type: unknown action 'FORWARD'"),
    ({"switch": "s1", "actions": [{"type": "OUTPUT"}]}, 'actions[0]: OUTPUT needs "port"'),
    ({"switch": "s1", "actions": [{"type": "OUTPUT", "prot": 1, "port": 1}]}, "actions[0]: unknown field 'prot' for OUTPUT"),
    ({"switch": "s1", "actions": [{"type": "SET_FIELD", "field": "nope", "value": 1}]}, "actions[0]: invalid SET_FIELD"),
    ({"switch": "s1", "actions": [{"type": "GOTO_TABLE", "table_id": 0}]}, "actions[0].table_id: GOTO_TABLE 0 must go to a later table"),
    ({"switch": "s1", "actions": [{"type": "WRITE_ACTIONS", "actions": [{"type": "GOTO_TABLE", "table_id": 2}]}]},
     "actions[0].actions[0].type: GOTO_TABLE is an instruction"),
])
def test_parse_add_rejects_bad_input_with_precise_text(body: Any, expected: str) -> None:
    with pytest.raises(ApiError) as err:
        flowspec.parse_add(body)
    assert err.value.status == 400
    assert expected in err.value.message, err.value.message


def test_parse_add_normalizes_aliases_and_keeps_port_names_for_later() -> None:
    spec = flowspec.parse_add({
        "switch": "s1", "match": {"in_port": "eth1", "dl_type": "0x0800", "nw_proto": 6, "tp_dst": 80},
        "actions": [{"type": "output", "port": "eth2"}, {"type": "PUSH_VLAN"}],
    })
    assert spec.priority == flowspec.DEFAULT_PRIORITY
    assert spec.match == {"in_port": flowspec.PortRef("eth1", "match.in_port"), "eth_type": "0x0800",
                          "ip_proto": 6, "tcp_dst": 80}
    assert spec.actions[0] == {"type": "OUTPUT", "port": flowspec.PortRef("eth2", "actions[0].port")}
    assert spec.actions[1] == {"type": "PUSH_VLAN", "ethertype": 0x8100}
    resolved = flowspec.resolve_ports(spec, lambda ref: {"eth1": 1, "eth2": 2}[ref.name])
    assert resolved.match["in_port"] == 1 and resolved.actions[0]["port"] == 2


def test_parse_add_arp_uses_arp_fields_for_nw_addresses() -> None:
    spec = flowspec.parse_add({"dpid": "0x1", "match": {"eth_type": 0x0806, "nw_dst": "10.0.0.1"}})
    assert spec.switch == 1
    assert spec.match == {"eth_type": 0x0806, "arp_tpa": "10.0.0.1"}


def test_parse_delete_rules() -> None:
    with pytest.raises(ApiError, match="priority: required when strict is true"):
        flowspec.parse_delete({"switch": "s1", "strict": True})
    with pytest.raises(ApiError, match="strict: expected true or false"):
        flowspec.parse_delete({"switch": "s1", "strict": "yes"})
    spec = flowspec.parse_delete({"switch": "s1", "cookie": "0x10"})
    assert (spec.cookie, spec.cookie_mask, spec.table_id) == (0x10, flowspec.UINT64_MAX, 0xFF)
    spec = flowspec.parse_delete({"switch": "s1", "out_port": "eth3"})
    assert spec.out_port == flowspec.PortRef("eth3", "out_port")


def test_twin_config_validation() -> None:
    cfg = TwinConfig.from_dict({"switches": {"s1": {"dpid": "0000000000000010"}, "s2": 3}})
    assert cfg.switches == {"s1": 16, "s2": 3} and cfg.apps == ["controllers.twin_base"]
    with pytest.raises(ValueError, match=r"config.switches.s2.dpid: 1 already used by s1"):
        TwinConfig.from_dict({"switches": {"s1": {"dpid": 1}, "s2": {"dpid": 1}}})
    with pytest.raises(ValueError, match=r"config.switches.s1.dpid"):
        TwinConfig.from_dict({"switches": {"s1": {}}})


def test_app_load_order_puts_base_where_app_manager_needs_it() -> None:
    assert app_load_order([]) == ["controllers.twin_base"]
    assert app_load_order(["a", "controllers.twin_base", "a"], lambda m: False) == ["controllers.twin_base", "a"]
    assert app_load_order(["a", "b"], lambda m: m == "b") == ["a", "b", "controllers.twin_base"]


# ---------------------------------------------------------------------------------------------
# event log (pure)


def test_event_log_cursor_semantics() -> None:
    log = EventLog(maxlen=3)
    b = log.next_seq  # numbering starts at the start time in microseconds
    assert abs(b - time.time() * 1e6) < 60e6
    assert log.read(0) == {"events": [], "next": b, "boot": log.boot}
    for i in range(5):
        log.publish("port_status", n=i)
    first = log.read(0)
    assert [e["seq"] - b for e in first["events"]] == [2, 3, 4] and first["next"] == b + 5
    assert log.read(first["next"])["events"] == []
    assert [e["n"] for e in log.read(b + 4)["events"]] == [4]
    # a cursor from a previous controller process is below our numbering: it reads everything
    assert [e["seq"] - b for e in log.read(b - 1000)["events"]] == [2, 3, 4]
    # a cursor beyond our numbering (clock skew) restarts at the oldest too
    assert [e["seq"] - b for e in log.read(b + 10**9)["events"]] == [2, 3, 4]


def test_event_log_long_poll_wakes_on_publish() -> None:
    log = EventLog()
    timer = threading.Timer(0.2, lambda: log.publish("switch_enter", switch="s1"))
    timer.start()
    started = time.monotonic()
    b = log.next_seq
    result = log.read(b, timeout=10)
    assert time.monotonic() - started < 5
    assert result["events"][0]["switch"] == "s1" and result["next"] == b + 1
    started = time.monotonic()
    assert log.read(b + 1, timeout=0.3)["events"] == []
    assert time.monotonic() - started >= 0.25


# ---------------------------------------------------------------------------------------------
# log scanning (pure)


def test_controller_log_problems(tmp_path: Path) -> None:
    log = tmp_path / "ctl.log"
    log.write_text(textwrap.dedent("""\
        2024-01-01 00:00:00.001 INFO controllers.run [MainThread]: controller ready: lab x
        2024-01-01 00:00:00.002 DEBUG os_ken.base.app_manager [MainThread]:   CONSUMES EventOFPErrorMsg
        2024-01-01 00:00:00.003 ERROR controllers.twin_base [Thread-1]: OFPErrorMsg from switch s1: OFPET_BAD_MATCH
        2024-01-01 00:00:00.004 ERROR os_ken.base.app_manager [Thread-1]: TwinBase: Exception occurred
        Traceback (most recent call last):
          File "x.py", line 1, in f
            raise ValueError("boom")
        ValueError: boom
        2024-01-01 00:00:00.005 WARNING controllers.northbound [Thread-2]: POST /flows -> 400: bad
        """))
    problems = controller_log_problems(log)
    assert len(problems) == 3, problems
    assert "OFPErrorMsg from switch s1" in problems[0]
    assert problems[2].startswith("Traceback") and problems[2].endswith("ValueError: boom")
    assert controller_log_problems(tmp_path / "missing.log") == []


# ---------------------------------------------------------------------------------------------
# the real controller process, no switch connected


class Ctl:
    """A running controller for tests: process, client, paths."""

    def __init__(self, directory: Path, config: dict[str, Any], sock_name: str = "api.sock",
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.sock = directory / sock_name
        self.log = directory / "controller.log"
        self.proc = start_controller(self.port, self.sock, config, self.log, env=env)
        wait_listening(self.port, 20, api_socket=self.sock, log=self.log, proc=self.proc)
        self.client = ControllerClient(self.sock, timeout=10)

    def stop(self) -> None:
        stop_controller(self.proc.pid)
        self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctl]:
    c = Ctl(tmp_path_factory.mktemp("ctl"), CONFIG)
    try:
        yield c
    finally:
        c.stop()
    problems = controller_log_problems(c.log)
    assert not problems, "controller log has problems:\n" + "\n".join(problems)


def raw_request(sock: Path, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None
                ) -> tuple[int, Any]:
    conn = _UnixHTTPConnection(str(sock), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_health_and_every_configured_switch_listed(ctl: Ctl) -> None:
    health = ctl.client.health()
    assert health["ok"] is True and health["lab"] == "unit" and health["switches_connected"] == 0
    assert health["pid"] == ctl.proc.pid
    assert ctl.client.switches() == [{"name": "s1", "dpid": 1, "connected": False},
                                     {"name": "s2", "dpid": 2, "connected": False}]
    assert ctl.client.request("GET", "/switches/2") == {"name": "s2", "dpid": 2, "connected": False}


@pytest.mark.parametrize("call", [
    lambda c: c.ports("s9"), lambda c: c.flows("s9"), lambda c: c.add_flow("s9", {}, []),
    lambda c: c.delete_flows("s9"), lambda c: c.add_flow("s9", {"bogus": 1}, []),
])
def test_unknown_switch_is_404(ctl: Ctl, call: Any) -> None:
    with pytest.raises(ControllerError) as err:
        call(ctl.client)
    assert err.value.status == 404
    assert err.value.message == "unknown switch 's9' (configured: s1 (dpid 0x1), s2 (dpid 0x2))"


def test_switch_not_connected_is_503(ctl: Ctl) -> None:
    for call in (lambda: ctl.client.ports("s1"), lambda: ctl.client.flows("s2"),
                 lambda: ctl.client.add_flow("s1", {"in_port": "eth1"}, [{"type": "OUTPUT", "port": "eth2"}], priority=10),
                 lambda: ctl.client.delete_flows("s1", {"in_port": 1})):
        with pytest.raises(ControllerError) as err:
            call()
        assert err.value.status == 503
        assert "is not connected to the controller" in err.value.message


def test_validation_errors_come_back_as_400_with_text(ctl: Ctl) -> None:
    with pytest.raises(ControllerError) as err:
        ctl.client.add_flow("s1", {"eth_type": 2048, "ipv4_dst": "10.0.0.0/33"}, [])
    assert err.value.status == 400 and err.value.message.startswith("match.ipv4_dst: invalid value '10.0.0.0/33'")
    assert "HTTP 400" in str(err.value) and "POST /flows" in str(err.value)
    with pytest.raises(ControllerError) as err:
        ctl.client.add_flow("s1", {}, [{"type": "OUTPUT", "port": "eth1", "max_len": "huge"}])
    assert err.value.status == 400 and err.value.message.startswith("actions[0]: invalid OUTPUT")
    with pytest.raises(ControllerError) as err:
        ctl.client.delete_flows("s1", strict=True)
    assert err.value.status == 400 and err.value.message.startswith("priority: required when strict is true")


def test_malformed_requests(ctl: Ctl) -> None:
    assert raw_request(ctl.sock, "POST", "/flows", b'{"switch": ') == \
        (400, {"error": "malformed JSON body: Expecting value: line 1 column 12 (char 11)"})
    assert raw_request(ctl.sock, "POST", "/flows", b"")[0] == 400
    assert raw_request(ctl.sock, "POST", "/flows", b"\xff\xfe")[0] == 400
    status, body = raw_request(ctl.sock, "GET", "/nope", None)
    assert (status, body["error"]) == (404, "no such API path: GET /nope")
    status, body = raw_request(ctl.sock, "PUT", "/flows", b"{}")
    assert (status, body["error"]) == (405, "PUT not allowed on /flows (allowed: POST, DELETE)")
    status, body = raw_request(ctl.sock, "GET", "/events?since=x", None)
    assert (status, body["error"]) == (400, "since: expected a number, got 'x'")
    status, body = raw_request(ctl.sock, "GET", "/events?timeout=1000", None)
    assert status == 400 and body["error"].startswith("timeout: must be between 0 and 300")
    # the controller survived all of it
    assert ctl.client.health()["ok"] is True


def test_events_long_poll_returns_empty_after_timeout(ctl: Ctl) -> None:
    started = time.monotonic()
    cursor = ctl.client.events()["next"]
    started = time.monotonic()
    result = ctl.client.events(since=cursor, timeout=0.5)
    elapsed = time.monotonic() - started
    assert result["events"] == [] and result["next"] == cursor
    assert 0.4 <= elapsed < 5


def test_wait_connected_names_switches_that_never_connected(ctl: Ctl) -> None:
    started = time.monotonic()
    with pytest.raises(ControllerError, match=r"never connected within 0.3 s: s1, s2"):
        ctl.client.wait_connected(["s1", "s2"], deadline_s=0.3)
    assert time.monotonic() - started < 5
    with pytest.raises(ControllerError) as err:
        ctl.client.wait_connected(["s1", "s7"], deadline_s=30)
    assert err.value.status == 404 and "s7" in err.value.message


def test_client_reports_unreachable_controller(tmp_path: Path) -> None:
    client = ControllerClient(tmp_path / "nothing.sock", timeout=1)
    with pytest.raises(ControllerUnreachable) as err:
        client.health()
    assert err.value.status is None and "not reachable" in err.value.message
    # a stale socket file (no listener) is reported the same way
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    with pytest.raises(ControllerUnreachable):
        ControllerClient(stale, timeout=1).switches()
    with pytest.raises(ControllerError, match=r"never connected.*last API error"):
        client.wait_connected(["s1"], deadline_s=0.2)


def test_client_timeout_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    try:
        with pytest.raises(ControllerUnreachable, match="no answer from controller API"):
            ControllerClient(path, timeout=0.3).health()
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------
# process lifecycle


def test_stale_socket_replaced_long_path_and_sigterm_exit(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    sock_name = "controller-api.sock"
    assert len(str(deep / sock_name)) > 108  # beyond sun_path: needs the /proc fd route
    # a stale socket left by a killed controller
    stale = socket.socket(socket.AF_UNIX)
    dir_fd = os.open(deep, os.O_PATH | os.O_DIRECTORY)
    stale.bind(f"/proc/self/fd/{dir_fd}/{sock_name}")
    stale.close()
    os.close(dir_fd)
    assert (deep / sock_name).is_socket()

    c = Ctl(deep, CONFIG, sock_name=sock_name)
    assert c.client.health()["ok"] is True
    # a second controller on the same (live) socket refuses instead of stealing it
    port2 = free_port()
    log2 = tmp_path / "second.log"
    proc2 = start_controller(port2, c.sock, CONFIG, log2)
    assert proc2.wait(timeout=20) == 4
    assert "is in use by a running process" in log2.read_text()
    assert c.client.health()["pid"] == c.proc.pid

    started = time.monotonic()
    os.kill(c.proc.pid, signal.SIGTERM)
    assert c.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 3
    assert not (deep / sock_name).exists()
    assert "stopping on signal SIGTERM" in c.log.read_text()
    assert controller_log_problems(c.log) == []


def test_port_in_use_and_bad_config_fail_fast(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        log = tmp_path / "busy.log"
        proc = start_controller(port, tmp_path / "a.sock", CONFIG, log)
        with pytest.raises(Exception, match=r"exited with code 3"):
            wait_listening(port + 0, 20, api_socket=tmp_path / "a.sock", log=log, proc=proc)
    assert "already in use" in log.read_text()
    log = tmp_path / "badcfg.log"
    proc = start_controller(free_port(), tmp_path / "b.sock", {"switches": {"s1": {"dpid": "x"}}}, log)
    assert proc.wait(timeout=20) == 2
    assert "config.switches.s1.dpid" in log.read_text()
    assert (tmp_path / "badcfg.config.json").exists()


def test_stop_controller_never_signals_other_processes(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert stop_controller(other.pid, grace_s=0.2) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    assert stop_controller(other.pid) is False  # gone: nothing to do


def test_stop_controller_stops_a_controller(tmp_path: Path) -> None:
    c = Ctl(tmp_path, CONFIG)
    assert stop_controller(c.proc.pid, grace_s=3) is True
    assert not Path(f"/proc/{c.proc.pid}").exists() or c.proc.poll() is not None
    assert not c.sock.exists()


# ---------------------------------------------------------------------------------------------
# extension apps of later issues


EXT_CONTEXT_APP = '''
from os_ken.base import app_manager
from controllers.twin_base import TwinBase


class ExtContextApp(app_manager.OSKenApp):
    _CONTEXTS = {"twin": TwinBase}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        twin = kwargs["twin"]
        same = app_manager.lookup_service_brick("TwinBase") is twin
        twin.add_api_route("GET", r"/ext/ctx", lambda m, q, b: {"same": same, "lab": twin.config.lab})
'''

EXT_LOOKUP_APP = '''
from os_ken.base import app_manager
from controllers.twin_base import get_twin_base


class ExtLookupApp(app_manager.OSKenApp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        twin = get_twin_base()
        twin.add_api_route("POST", r"/ext/echo/(?P<word>\\w+)",
                           lambda m, q, b: (202, {"word": m["word"], "body": b}))
        twin.publish_event("ext_ready", app=self.name)
        twin.add_api_route("GET", r"/ext/boom", self.boom)

    def boom(self, match, query, body):
        raise RuntimeError("boom")
'''


@pytest.mark.parametrize("apps", [["ext_ctx_app", "ext_lookup_app"], ["ext_lookup_app"]])
def test_extra_apps_reach_the_base_app(tmp_path: Path, apps: list[str]) -> None:
    (tmp_path / "ext_ctx_app.py").write_text(EXT_CONTEXT_APP)
    (tmp_path / "ext_lookup_app.py").write_text(EXT_LOOKUP_APP)
    c = Ctl(tmp_path, {**CONFIG, "apps": apps}, env={"PYTHONPATH": str(tmp_path)})
    try:
        if "ext_ctx_app" in apps:
            assert c.client.request("GET", "/ext/ctx") == {"same": True, "lab": "unit"}
        assert c.client.request("POST", "/ext/echo/hi", {"x": 1}) == {"word": "hi", "body": {"x": 1}}
        event = c.client.wait_event(0, 5, type="ext_ready")
        assert event["app"] == "ExtLookupApp"
        assert c.client.switches()[0]["name"] == "s1"
        # a bug in an app's API handler: HTTP 500, the controller lives on, a Traceback is logged
        with pytest.raises(ControllerError) as err:
            c.client.request("GET", "/ext/boom")
        assert err.value.status == 500 and err.value.message == "internal controller error: RuntimeError: boom"
        assert c.client.health()["ok"] is True
    finally:
        c.stop()
    problems = controller_log_problems(c.log)
    assert len(problems) == 2, problems
    assert "ERROR controllers.northbound" in problems[0] and "internal error serving GET /ext/boom" in problems[0]
    assert problems[1].startswith("Traceback (most recent call last):") and problems[1].endswith("RuntimeError: boom")
