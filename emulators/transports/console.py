"""The console: the device's serial line, served on a Unix stream socket with raw bytes both ways.

A serial line has one terminal on it, so there is one console session at a time. A second attach
takes the line over and the first is told so and disconnected: a harness whose earlier client died
without closing (a killed test) must never find the console locked. Each attach starts a fresh CLI
session (as if the line's exec-timeout had logged the previous user out), which keeps the state a
driver finds predictable.

`emulators.console_attach` is the client; the harness spawns it under pexpect inside the node's
namespace, which gives the console a real pty.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from emulators.transports.host import DeviceHost, Link

log = logging.getLogger("emulators.transports.console")

TAKEN_OVER = b"\r\n% Console session taken over by a new connection\r\n"


class ConsoleServer:
    def __init__(self, host: DeviceHost, path: str | os.PathLike[str]) -> None:
        self.host = host
        self.path = Path(path)
        self.active: Link | None = None
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.unlink()  # a socket file left by an earlier run of this device
        except FileNotFoundError:
            pass
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        try:
            self.path.unlink()
        except OSError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = None
        try:
            if self.active is not None and self.active.alive:
                log.info("console taken over by a new attach")
                self.active.write(TAKEN_OVER)
                self.active.drop()
            link = self.host.attach("console", "console", writer.write, writer.close)
            self.active = link
            link.start()
            while link.alive:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                link.feed(chunk)
        except asyncio.CancelledError:
            pass  # daemon shutdown: end quietly (cancellation of a stream handler is logged otherwise)
        except (ConnectionError, OSError) as exc:
            log.debug("console: %s", exc)
        except Exception:
            log.exception("console session failed")
        finally:
            if link is not None:
                link.detach()
                if self.active is link:
                    self.active = None
            writer.close()
