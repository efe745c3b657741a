"""The federated service (claims 2-5): what one server knows about the elements it manages.

The server polls each of its elements over SSH (interfaces, new log lines), keeps the result in
memory (interfaces, nodal alarms) and exports it to the shared data store, so any server can answer
from the store and the owner can answer from memory. Elements come and go with the master's
assignment: `set_elements` starts polling new ones at once and forgets the ones handed away.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .element_client import Alarm, ElementClient, ElementError, parse_alarm
from .store import EmsStore
from .topology import Interface, parse_show_interfaces

log = logging.getLogger(__name__)

ALARMS_KEPT = 200


@dataclass
class ElementState:
    name: str
    address: str
    reachable: bool | None = None       # None: not polled yet
    polled: float = 0.0
    error: str = ""
    interfaces: list[Interface] = field(default_factory=list)
    alarms: deque[Alarm] = field(default_factory=lambda: deque(maxlen=ALARMS_KEPT))
    since: float = field(default_factory=time.time)    # managed by this server since

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "reachable": self.reachable, "polled": self.polled,
                "error": self.error, "since": self.since,
                "interfaces": [{"name": i.name, "address": str(i.address), "up": i.up} for i in self.interfaces],
                "alarms": [{"time": a.time, "severity": a.severity, "mnemonic": a.mnemonic, "text": a.text}
                           for a in self.alarms]}


ClientFactory = Callable[[str, str], ElementClient]


class Federation:
    def __init__(self, server_id: int, store: EmsStore | None, client_factory: ClientFactory,
                 on_event: Callable[[str, dict[str, Any]], None], interval: float = 1.0) -> None:
        self.server_id = server_id
        self.store = store
        self.client_factory = client_factory
        self.on_event = on_event
        self.interval = interval
        self._lock = threading.Lock()
        self._elements: dict[str, ElementState] = {}
        self._clients: dict[str, ElementClient] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ems-poll")
        self._thread = threading.Thread(target=self._run, name="ems-federation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()

    # ------------------------------------------------------------------ what I manage
    def set_elements(self, elements: dict[str, str]) -> None:
        """The master's assignment for this server: name -> management address."""
        with self._lock:
            gone = [n for n in self._elements if n not in elements or self._elements[n].address != elements[n]]
            closing = [self._clients.pop(n) for n in gone if n in self._clients]
            for n in gone:
                del self._elements[n]
            for n, addr in elements.items():
                if n not in self._elements:
                    self._elements[n] = ElementState(n, addr)
        for c in closing:
            c.close()
        if elements or gone:
            self._wake.set()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._elements)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._elements[n].to_json() for n in sorted(self._elements)]

    def element(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            st = self._elements.get(name)
            return st.to_json() if st else None

    def configure(self, name: str, lines: list[str]) -> str:
        """Provisioning (claim 20) goes through the owner's session to the element."""
        client = self._client(name)
        return client.configure(lines)

    def poll_now(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ polling
    def _client(self, name: str) -> ElementClient:
        with self._lock:
            st = self._elements.get(name)
            if st is None:
                raise ElementError(f"{name} is not managed by server {self.server_id}")
            c = self._clients.get(name)
            if c is None:
                c = self._clients[name] = self.client_factory(name, st.address)
            return c

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            names = self.names()
            futures = [self._pool.submit(self._poll, n) for n in names]
            for f in futures:
                try:
                    f.result()
                except Exception:
                    log.exception("poll failed")
            self._wake.wait(self.interval)

    def _poll(self, name: str) -> None:
        try:
            client = self._client(name)
            text = client.show_interfaces()
            lines = client.new_log_lines()
            interfaces = parse_show_interfaces(name, text)
            alarms = [a for a in (parse_alarm(name, ln) for ln in lines) if a is not None]
            err = ""
        except ElementError as exc:
            interfaces, alarms, err = [], [], str(exc)
        except Exception as exc:  # a poll must never take the thread down
            log.exception("polling %s", name)
            interfaces, alarms, err = [], [], repr(exc)
        now = time.time()
        with self._lock:
            st = self._elements.get(name)
            if st is None:              # handed away meanwhile
                return
            was = st.reachable
            st.reachable, st.polled, st.error = not err, now, err
            if not err:
                st.interfaces = interfaces
                st.alarms.extend(alarms)
            address = st.address
        if was is not False and err:
            self.on_event("element-unreachable", {"element": name, "error": err})
        elif was is False and not err:
            self.on_event("element-reachable", {"element": name})
        for a in alarms:
            self.on_event("element-alarm", {"element": name, "severity": a.severity, "mnemonic": a.mnemonic,
                                            "text": a.text})
        if self.store is not None:
            try:
                if not err:
                    self.store.export_element(name, address, self.server_id, True,
                                              [(i.name, str(i.address), i.up) for i in interfaces], now)
                    if alarms:
                        self.store.add_alarms(name, self.server_id, alarms)
                else:
                    self.store.export_element(name, address, self.server_id, False, None, now)
            except Exception:
                log.exception("exporting %s to the store", name)
