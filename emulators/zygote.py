"""A preloaded parent that forks device emulators into their nodes' namespaces.

Starting a hundred emulators as fresh interpreters costs a hundred imports of asyncssh,
cryptography and pyroute2 (about half a second of CPU each, 27 s for 100 routers on 2 cores). The
lab starts one zygote that imports them once; each device is a fork that enters its node's network
namespace (setns) before it opens a single socket, then runs `emulators.run` as usual. Each device
is still its own process inside its own namespace: cleanup finds it by namespace like any other.

Protocol (Unix stream socket, one JSON line each way):
    {"argv": [...emulators.run args...], "netns": "/run/netns/NAME", "stderr": "/path/emulator.err"}
    -> {"pid": 5678} | {"error": "..."}
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import sys
from pathlib import Path

CLONE_NEWNET = 0x40000000
PRELOAD = ("asyncio", "asyncssh", "pyroute2", "emulators.run", "emulators.kinds", "emulators.router",
           "emulators.transports.host", "emulators.transports.ssh", "emulators.transports.telnet",
           "emulators.transports.console")


def _setns(path: str) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _child(req: dict, listener: socket.socket, conn: socket.socket) -> None:
    """Runs in the forked child: never returns."""
    rc = 1
    try:
        listener.close()
        conn.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        _setns(req["netns"])
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        err = os.open(req.get("stderr") or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(err, 2)
        from emulators import run

        sys.argv = ["emulators.run", *req["argv"]]
        rc = run.main(list(req["argv"]))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report and leave
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(rc or 0)


def serve(path: Path) -> None:
    for mod in PRELOAD:
        __import__(mod)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    print("READY", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                req = json.loads(conn.makefile().readline())
                pid = os.fork()
                if pid == 0:
                    _child(req, listener, conn)
                conn.sendall((json.dumps({"pid": pid}) + "\n").encode())
            except Exception as exc:  # noqa: BLE001 - a bad request must not end the zygote
                try:
                    conn.sendall((json.dumps({"error": str(exc)}) + "\n").encode())
                except OSError:
                    pass


def spawn(path: str | Path, argv: list[str], netns: str, stderr: str | Path, timeout: float = 10.0) -> int:
    """Ask a zygote for a device process; returns its PID."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall((json.dumps({"argv": argv, "netns": netns, "stderr": str(stderr)}) + "\n").encode())
        reply = json.loads(s.makefile().readline())
    if "error" in reply:
        raise RuntimeError(f"emulator zygote: {reply['error']}")
    return int(reply["pid"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emulators.zygote")
    ap.add_argument("--socket", required=True, type=Path)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    serve(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
