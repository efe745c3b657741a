"""Attach a terminal to a device's console socket: `python -m emulators.console_attach SOCKET`.

Bridges stdin/stdout and the console's Unix socket, raw bytes both ways, and exits when either side
closes. When stdin is a tty it goes to raw mode first: the device does its own echo and Enter
handling, so the local line discipline must neither echo, buffer lines nor turn LF into CRLF (that
is what lets a pexpect pty see exactly the bytes a serial console would send). `--escape` makes
Ctrl-] end the session, for people; the harness leaves it off so any byte reaches the device.
"""
from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
import sys
import termios
import time
import tty

ESCAPE = 0x1D  # Ctrl-]


def connect(path: str, wait_s: float) -> socket.socket:
    """Connect, retrying while the socket is not there yet (the device may still be booting)."""
    deadline = time.monotonic() + wait_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def bridge(sock: socket.socket, fd_in: int, fd_out: int, escape: bool = False) -> None:
    """Copy bytes both ways until the device or the terminal closes."""
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "sock")
    sel.register(fd_in, selectors.EVENT_READ, "in")
    while True:
        for key, _ in sel.select():
            if key.data == "sock":
                data = sock.recv(65536)
                if not data:
                    return
                _write_all(fd_out, data)
            else:
                data = os.read(fd_in, 65536)
                if not data or (escape and ESCAPE in data):
                    if data and escape:
                        data = data[:data.index(ESCAPE)]
                        if data:
                            sock.sendall(data)
                    return
                sock.sendall(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulators.console_attach", description=__doc__.split("\n\n")[0])
    p.add_argument("socket")
    p.add_argument("--escape", action="store_true", help="Ctrl-] ends the session (for interactive use)")
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the socket to accept")
    args = p.parse_args(argv)
    fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
    saved = None
    if os.isatty(fd_in):  # raw before connecting: the device's first prompt must pass unaltered
        saved = termios.tcgetattr(fd_in)
        tty.setraw(fd_in)
    try:
        try:
            sock = connect(args.socket, args.wait)
        except OSError as exc:
            os.write(2, f"console_attach: cannot connect to {args.socket}: {exc.strerror or exc}\r\n".encode())
            return 1
        if args.escape:
            os.write(fd_out, b"[attached to the console; Ctrl-] to leave]\r\n")
        try:
            bridge(sock, fd_in, fd_out, escape=args.escape)
        except (ConnectionError, OSError):
            pass
        finally:
            sock.close()
    finally:
        if saved is not None:
            termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)
    if args.escape:
        os.write(fd_out, b"\r\n[console closed]\r\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
