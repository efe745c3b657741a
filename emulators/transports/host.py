"""The device a daemon serves, and the live CLI sessions attached to it.

Every transport opens its sessions through `DeviceHost.attach`, so one place knows all of them: a
`reload` must drop every connection (as a real reboot does) and then boot a fresh device from its
startup-config, and SIGTERM must close everything before the process exits.

The engine is synchronous and not thread-safe: `Link.feed` is called on the asyncio loop thread
only. The engine's `write`/`close` callbacks may come from any thread (a device timer, say); they are
marshalled onto the loop.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("emulators.transports")

DeviceFactory = Callable[[bool], Any]  # (first_boot) -> an unstarted BaseDevice


class Link:
    """One CLI session bound to one client connection (an SSH channel, a telnet or console socket).

    `send` puts engine output on the wire and `hangup` drops the connection; both are called on the
    loop thread. After `detach` (the client went away) engine output is discarded.
    """

    def __init__(self, host: "DeviceHost", transport: str, peer: str,
                 send: Callable[[bytes], None], hangup: Callable[[], None]) -> None:
        self.host = host
        self.transport = transport
        self.peer = peer
        self._send = send
        self._hangup = hangup
        self.session: Any = None
        self.alive = True

    # ---- engine -> client ----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """The engine's write callback: safe from any thread, a no-op once the client is gone."""
        if not self.alive or not data:
            return
        if self.host.on_loop_thread():
            self._safe_send(data)
        else:
            self.host.loop.call_soon_threadsafe(self._safe_send, bytes(data))

    def _safe_send(self, data: bytes) -> None:
        if not self.alive:
            return
        try:
            self._send(data)
        except Exception as exc:  # a connection torn down under us: the client is gone
            log.debug("%s %s: send failed: %s", self.transport, self.peer, exc)
            self.detach()

    def close(self) -> None:
        """The engine's close callback (logout, `exit`, too many login failures): drop the client."""
        if self.host.on_loop_thread():
            self.host.loop.call_soon(self.drop)
        else:
            self.host.loop.call_soon_threadsafe(self.drop)

    def drop(self) -> None:
        """Close the client connection (sends what is buffered first where the transport can)."""
        if not self.alive:
            return
        self.detach()
        try:
            self._hangup()
        except Exception as exc:
            log.debug("%s %s: hangup failed: %s", self.transport, self.peer, exc)

    # ---- client -> engine ----------------------------------------------------------------------
    def start(self) -> None:
        self._guard("start", lambda: self.session.start())

    def feed(self, data: bytes) -> None:
        """Client bytes into the engine. An engine error is logged and the daemon keeps serving."""
        if self.alive and data:
            self._guard("feed", lambda: self.session.feed(bytes(data)))

    def set_window(self, width: int, height: int) -> None:
        if self.alive and width > 0 and height >= 0:
            self._guard("set_window", lambda: self.session.set_window(int(width), int(height)))

    def detach(self) -> None:
        """The client went away (or is being dropped): forget the session and end it in the engine."""
        if not self.alive:
            return
        self.alive = False
        self.host.forget(self)
        # End the engine's session too, so the device forgets the line (`show users`, its registry).
        # Its close callback comes back here and finds the link already dead.
        close = getattr(self.session, "close", None)
        if callable(close) and not getattr(self.session, "closed", False):
            try:
                close()
            except Exception:
                log.exception("%s %s: closing the engine session failed", self.transport, self.peer)

    def _guard(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            log.exception("%s %s: engine %s() raised; the session goes on", self.transport, self.peer, what)
            self._safe_send(b"\r\n% Internal error\r\n")
        if self.session is not None and getattr(self.session, "closed", False):
            self.drop()


class DeviceHost:
    """Owns the device object, reboots it on `reload`, and tracks every attached session."""

    def __init__(self, factory: DeviceFactory, loop: asyncio.AbstractEventLoop) -> None:
        self._factory = factory
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self.device: Any = None
        self.links: set[Link] = set()
        self.boots = 0
        self.reloading = False

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def boot(self) -> None:
        """Build and start the device (first boot, or again from startup-config after a reload)."""
        device = self._factory(self.boots == 0)
        device.on_reload = self._reload_requested
        device.start()
        self.device = device
        self.boots += 1
        log.info("device %s booted (boot #%d)", getattr(device, "name", "?"), self.boots)

    def allows(self, transport: str) -> bool:
        """Whether the vty lines accept `transport` (`transport input ssh` shuts telnet out, as on IOS)."""
        line_config = getattr(self.device, "line_config", None)
        if transport == "console" or not callable(line_config):
            return True
        try:
            allowed = getattr(line_config("vty"), "transport_input", None)
        except Exception:
            return True
        if not allowed:
            return True
        words = str(allowed).split()
        return "all" in words or transport in words

    def attach(self, transport: str, peer: str, send: Callable[[bytes], None], hangup: Callable[[], None],
               *, user: str | None = None, width: int = 80, height: int = 24) -> Link:
        """A new CLI session for a client connection; the caller then calls `link.start()`."""
        link = Link(self, transport, peer, send, hangup)
        link.session = self.device.new_session(transport=transport, write=link.write, close=link.close,
                                               peer=peer, authenticated_user=user,
                                               width=width or 80, height=height if height >= 0 else 24)
        self.links.add(link)
        log.info("%s session from %s%s (%d open)", transport, peer or "?", f" as {user}" if user else "",
                 len(self.links))
        return link

    def forget(self, link: Link) -> None:
        if link in self.links:
            self.links.discard(link)
            log.info("%s session from %s closed (%d open)", link.transport, link.peer or "?", len(self.links))

    def drop_all(self) -> None:
        for link in list(self.links):
            link.drop()

    def _reload_requested(self) -> None:
        """device.on_reload: runs inside the engine's feed(), so the reboot is scheduled, not done here."""
        log.info("reload requested")
        self.reloading = True
        if self.on_loop_thread():
            self.loop.call_soon(self._reload)
        else:
            self.loop.call_soon_threadsafe(self._reload)

    def _reload(self) -> None:
        self.drop_all()
        old, self.device = self.device, None
        try:
            old.close()
        except Exception:
            log.exception("closing the device for reload failed")
        try:
            self.boot()
        finally:
            self.reloading = False

    def close(self) -> None:
        self.drop_all()
        if self.device is not None:
            try:
                self.device.close()
            except Exception:
                log.exception("closing the device failed")
            self.device = None
