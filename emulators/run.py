"""The per-device daemon: one device's CLI on the console socket, SSH and telnet, in one process.

    python -m emulators.run --kind router --name r1 --state-dir DIR --users admin:admin \\
        --enable-secret S --mgmt-ip 172.20.0.11 --console-socket PATH --ready-file PATH --log PATH

The lab runs it inside the node's network namespace with `--listen 0.0.0.0`, so SSH and telnet answer
on every address the node has (its management address and its data-plane interfaces, as a router's
vty lines do: users on a LAN log in to their access server) and nothing is exposed in the root
namespace; the console is a Unix socket, which
every namespace reaches through the file system. The ready file (JSON: pid, ports, console path) is
written only once every listener accepts connections, so "ready" means "a client can log in now".
SIGTERM or SIGINT closes every session and listener and exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("emulators.run")

BIND_WAIT_S = 10.0  # the management address may still be on its way when the daemon starts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m emulators.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", required=True, help="device kind (router, ...) or module:Class")
    p.add_argument("--name", required=True)
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--users", required=True, help="user:password[,user2:password2]")
    p.add_argument("--enable-secret", required=True)
    p.add_argument("--version", default=None)
    p.add_argument("--initial-config", type=Path, default=None, help="config file for a device with no startup-config")
    p.add_argument("--no-apply", action="store_true", help="do not touch the namespace's real networking")
    p.add_argument("--mgmt-ip", default=None, help="the management address clients use (none: console only)")
    p.add_argument("--listen", default=None,
                   help="address SSH and telnet bind (default: the management address; 0.0.0.0: every "
                        "address of the namespace)")
    p.add_argument("--ssh-port", type=int, default=22, help="0 picks a free port, -1 disables SSH")
    p.add_argument("--telnet-port", type=int, default=23, help="0 picks a free port, -1 disables telnet")
    p.add_argument("--console-socket", required=True, type=Path)
    p.add_argument("--ready-file", type=Path, default=None)
    p.add_argument("--log", type=Path, default=None)
    return p.parse_args(argv)


def parse_users(spec: str) -> dict[str, str]:
    """`admin:admin,op:secret` -> {"admin": "admin", "op": "secret"} (a password may hold ':')."""
    users: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise SystemExit(f"--users: {item!r} is not user:password")
        users[user] = password
    return users


def device_class(kind: str) -> type:
    """The engine's class for a kind; `package.module:Class` names any class (used by tests)."""
    if ":" in kind:
        mod, _, cls = kind.partition(":")
        return getattr(importlib.import_module(mod), cls)
    from emulators.kinds import device_class as engine_device_class

    return engine_device_class(kind)


def write_ready(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


async def _bind_with_retry(start, what: str) -> Any:
    """Bind a listener; while the address is not (yet) on an interface, retry until a deadline."""
    deadline = time.monotonic() + BIND_WAIT_S
    while True:
        try:
            return await start()
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                raise OSError(exc.errno, f"{what}: {exc.strerror or exc}") from exc
            await asyncio.sleep(0.1)


def _port_of(server: Any) -> int:
    socks = server.sockets if hasattr(server, "sockets") else server.get_addresses()
    first = socks[0]
    return (first.getsockname() if hasattr(first, "getsockname") else first)[1]


async def serve(args: argparse.Namespace) -> int:
    from emulators.transports.console import ConsoleServer
    from emulators.transports.host import DeviceHost
    from emulators.transports.telnet import serve_telnet

    loop = asyncio.get_running_loop()
    cls = device_class(args.kind)
    users = parse_users(args.users)
    initial = args.initial_config.read_text() if args.initial_config else None
    args.state_dir.mkdir(parents=True, exist_ok=True)

    def factory(first_boot: bool) -> Any:
        # The device boots from its startup-config; the initial config only stands in while none has
        # been saved, so a reload behaves exactly like a restart of this daemon.
        return cls(args.name, state_dir=args.state_dir, users=users, enable_secret=args.enable_secret,
                   version=args.version, initial_config=initial, apply=not args.no_apply)

    host = DeviceHost(factory, loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    servers: list[Any] = []
    console = ConsoleServer(host, args.console_socket)
    try:
        host.boot()
        await console.start()
        info: dict[str, Any] = {"pid": os.getpid(), "name": args.name, "kind": args.kind,
                                "console": str(args.console_socket), "mgmt_ip": args.mgmt_ip,
                                "ssh_port": None, "telnet_port": None}
        if args.mgmt_ip:
            addr = args.listen or args.mgmt_ip.split("/")[0]
            if args.ssh_port >= 0:
                from emulators.transports.ssh import serve_ssh

                srv = await _bind_with_retry(lambda: serve_ssh(host, addr, args.ssh_port, args.state_dir),
                                             f"ssh on {addr}:{args.ssh_port}")
                servers.append(srv)
                info["ssh_port"] = _port_of(srv)
            if args.telnet_port >= 0:
                srv = await _bind_with_retry(lambda: serve_telnet(host, addr, args.telnet_port),
                                             f"telnet on {addr}:{args.telnet_port}")
                servers.append(srv)
                info["telnet_port"] = _port_of(srv)
        info["ready_time"] = time.time()
        if args.ready_file:
            write_ready(args.ready_file, info)
        log.info("ready: %s", json.dumps(info))
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        for srv in servers:
            srv.close()
        console.close()
        host.close()
        await asyncio.sleep(0.05)  # let connection handlers see their hangup and finish
        if args.ready_file:
            try:
                args.ready_file.unlink()
            except OSError:
                pass


def _setup_logging(path: Path | None) -> None:
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
    _setup_logging(args.log)
    try:
        return asyncio.run(serve(args))
    except Exception:
        log.exception("device %s failed", args.name)
        return 1


if __name__ == "__main__":
    sys.exit(main())
