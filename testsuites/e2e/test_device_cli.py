"""Routers configured only through their CLIs carry traffic; real automation clients (Netmiko over
SSH and telnet) drive them unchanged; the CLI survives abuse, restarts and many sessions."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from netmiko_client import netmiko

pytestmark = [pytest.mark.e2e, pytest.mark.lab("labs/routers.yaml")]

PLAN = {  # router: (interface lines, static routes)
    "r1": ([("eth1", "10.1.0.1 255.255.255.0"), ("eth2", "10.12.0.1 255.255.255.252")],
           ["ip route 10.3.0.0 255.255.255.0 10.12.0.2", "ip route 10.23.0.0 255.255.255.252 10.12.0.2"]),
    "r2": ([("eth1", "10.12.0.2 255.255.255.252"), ("eth2", "10.23.0.1 255.255.255.252")],
           ["ip route 10.1.0.0 255.255.255.0 10.12.0.1", "ip route 10.3.0.0 255.255.255.0 10.23.0.2"]),
    "r3": ([("eth1", "10.23.0.2 255.255.255.252"), ("eth2", "10.3.0.1 255.255.255.0")],
           ["ip route 10.1.0.0 255.255.255.0 10.23.0.1", "ip route 10.12.0.0 255.255.255.252 10.23.0.1"]),
}


def config_lines(router: str) -> list[str]:
    intfs, routes = PLAN[router]
    lines = []
    for name, addr in intfs:
        lines += [f"interface {name}", f"ip address {addr}", "no shutdown", "exit"]
    return lines + ["ip routing"] + routes


def wait_ping(lab, src: str, dst_ip: str, what: str, deadline_s: float = 10) -> None:
    deadline = time.monotonic() + deadline_s
    while lab.nodes.run(src, ["ping", "-c", "1", "-W", "1", dst_ip]).returncode != 0:
        assert time.monotonic() < deadline, what


@pytest.fixture(scope="module")
def configured(lab):
    """The routers configured through three transports, one each (the module's first test checks
    the lab before this runs)."""
    sessions = {"r1": lab.device("r1").console(), "r2": lab.device("r2").ssh(), "r3": lab.device("r3").telnet()}
    try:
        for router, s in sessions.items():
            s.enable()
            s.configure(config_lines(router))
    finally:
        for s in sessions.values():
            s.close()
    wait_ping(lab, "h1", "10.3.0.10", "h1 cannot reach h2 through the CLI-configured routers")
    return lab


def test_unconfigured_routers_do_not_forward(lab):
    assert "10.12.0.2" not in lab.nodes.run("r2", ["ip", "-o", "addr"]).stdout, "r2 booted with an address"
    assert lab.nodes.run("h1", ["ping", "-c", "1", "-W", "1", "10.3.0.10"]).returncode != 0


def test_configure_through_console_ssh_and_telnet_then_ping_end_to_end(lab, configured):
    for router, opener in (("r1", "console"), ("r2", "ssh"), ("r3", "telnet")):
        with lab.device(router).open(opener) as s:
            s.enable()
            brief = s.run("show ip interface brief")
            for name, addr in PLAN[router][0]:
                assert name in brief and addr.split()[0] in brief, brief
            routes = s.run("show ip route")
            assert any(line.startswith("S ") and "10." in line for line in routes.splitlines()), routes
    # the kernel of r2 really has what the CLI said
    assert "10.12.0.2/30" in lab.nodes.run("r2", ["ip", "-o", "addr"]).stdout


def test_shutdown_from_the_cli_breaks_the_path_and_no_shutdown_repairs_it(lab, configured):
    with lab.device("r2").ssh() as s:
        s.enable()
        s.configure(["interface eth2", "shutdown"])
        assert "DOWN" in lab.nodes.run("r2", ["ip", "-o", "link", "show", "eth2"]).stdout
        assert lab.nodes.run("h1", ["ping", "-c", "1", "-W", "1", "10.3.0.10"]).returncode != 0
        s.configure(["interface eth2", "no shutdown"])
    wait_ping(lab, "h1", "10.3.0.10", "no shutdown did not restore the path")


def test_netmiko_over_ssh_and_telnet(lab):
    ip = lab.mgmt_address("r1")
    st = lab.state.nodes["r1"]
    for device_type in ("cisco_ios", "cisco_ios_telnet"):
        out = netmiko(lab, f"""
            import json
            from netmiko import ConnectHandler
            dev = ConnectHandler(device_type={device_type!r}, host={ip!r}, username={st.username!r},
                                 password={st.password!r}, secret={st.enable_secret!r}, fast_cli=False)
            dev.enable()
            version = dev.send_command("show version")
            parsed = dev.send_command("show ip interface brief", use_textfsm=True)
            cfg = dev.send_config_set(["interface eth1", "description set-by-{device_type}"])
            saved = dev.save_config()
            run = dev.send_command("show running-config")
            dev.disconnect()
            print(json.dumps({{"version": version, "parsed": parsed, "cfg": cfg, "saved": saved, "run": run}}))
        """)
        assert "twin" in out["version"].lower() or "version" in out["version"].lower(), out["version"]
        assert isinstance(out["parsed"], list) and any(r.get("interface") == "eth1" for r in out["parsed"]), out["parsed"]
        assert "% Invalid" not in out["cfg"], out["cfg"]
        assert "[OK]" in out["saved"] or "OK" in out["saved"], out["saved"]
        assert f"description set-by-{device_type}" in out["run"]
    with lab.device("r1").console() as s:
        s.enable()
        assert "description set-by-cisco_ios_telnet" in s.run("show startup-config")


def test_restart_keeps_startup_config_and_loses_unsaved(lab, configured):
    with lab.device("r3").console() as s:
        s.enable()
        s.configure(["interface eth1", "description saved-before-restart"])
        s.run("write memory")
        s.configure(["interface eth2", "description not-saved"])
    lab.restart_device("r3")
    with lab.device("r3").ssh() as s:
        run = s.run("show running-config")
    assert "saved-before-restart" in run and "not-saved" not in run
    # its kernel state follows the restored config: traffic flows again
    wait_ping(lab, "h1", "10.3.0.10", "the restarted router does not forward")


def test_twenty_concurrent_ssh_sessions(lab):
    def one(i: int) -> str:
        with lab.device("r2").ssh() as s:
            return s.run("show version")

    with ThreadPoolExecutor(max_workers=20) as pool:
        outs = list(pool.map(one, range(20)))
    assert len(outs) == 20 and all("uptime" in o.lower() for o in outs)


def test_garbage_on_console_and_ssh_gets_errors_and_the_device_keeps_serving(lab):
    with lab.device("r1").console() as s:
        out = s.run("sh0w vers!on")
        assert "% Invalid input detected at '^' marker." in out
        s.send_raw(bytes(range(1, 32)) + b"\x7f\xff\xfe garbage \x1b[A\x00\r\n")
        assert "Version" in s.run("show version")
    with lab.device("r1").ssh() as s:
        s.send_raw(b"\xde\xad\xbe\xef" * 64 + b"\r")
        assert "Version" in s.run("show version")
        assert "% Ambiguous command" in s.run("s")
        assert "% Incomplete command." in s.run("show ip")
