"""The AAA server's RADIUS service: authentication (UDP 1812) and accounting (UDP 1813) listeners,
a bounded pool of worker threads, and the SQLite database behind them.

Kept apart from the device class so the protocol work (pyrad packets, shared secrets, the
Message-Authenticator) can be read and tested on its own. What the health monitor needs from here
is real: the worker pool's free threads, and whether each service is running. A malformed packet,
an unknown client or a bad authenticator is dropped, counted and reported through `on_problem`;
nothing a client sends can stop the listener.
"""
from __future__ import annotations

import logging
import queue
import socket
import sqlite3
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyrad import packet as rp

from .radius_dict import dictionary

log = logging.getLogger(__name__)

AUTH_PORT, ACCT_PORT = 1812, 1813
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


@dataclass
class ClientEntry:
    ip: str
    key: str
    group: str | None = None


@dataclass
class SeenClient:
    """What the server knows of a client from its traffic: the address it used to reach us is the
    address the failover message must come from (the client checks it, claim 14)."""
    ip: str
    server_ip: str
    last_seen: float
    requests: int = 0


class UserDb:
    """Users and accounting records in SQLite (`aaa.db` in the device's state directory), so
    accounting survives a reload. Stopping the `user-db` service closes it: authentications then
    get no answer, as with a real server whose backend is down, and clients retry elsewhere."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.running = False
        self._local = threading.local()
        self._gen = 0

    def start(self) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS accounting (time REAL, client TEXT, user TEXT, "
                       "session TEXT, status INTEGER, session_time INTEGER)")
        self._gen += 1
        self.running = True

    def stop(self) -> None:
        self.running = False
        self._gen += 1

    def _db(self) -> sqlite3.Connection:
        if not self.running:
            raise sqlite3.OperationalError("user database is stopped")
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "gen", None) != self._gen:
            conn = sqlite3.connect(self.path, timeout=5)
            self._local.conn, self._local.gen = conn, self._gen
        return conn

    def set_users(self, users: dict[str, str]) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("DELETE FROM users")
            db.executemany("INSERT INTO users VALUES (?, ?)", sorted(users.items()))

    def password_of(self, name: str) -> str | None:
        row = self._db().execute("SELECT password FROM users WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def record_accounting(self, client: str, user: str, session: str, status: int, session_time: int) -> None:
        db = self._db()
        db.execute("INSERT INTO accounting VALUES (?, ?, ?, ?, ?, ?)",
                   (time.time(), client, user, session, status, session_time))
        db.commit()

    def accounting_count(self) -> int:
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT COUNT(*) FROM accounting").fetchone()[0]


class WorkerPool:
    """A fixed number of worker threads: `available` is what claim 5 compares with `size`. Work
    that finds every worker busy and the short queue full is refused (the request is dropped)."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self.busy = 0
        self._lock = threading.Lock()
        self._q: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max(4, size))
        self._threads = [self._spawn(i) for i in range(size)]

    def _spawn(self, i: int) -> threading.Thread:
        t = threading.Thread(target=self._run, name=f"{self.name}-w{i}", daemon=True)
        t.start()
        return t

    @property
    def available(self) -> int:
        with self._lock:
            return max(0, self.size - self.busy)

    def submit(self, fn: Callable[[], None]) -> bool:
        try:
            self._q.put_nowait(fn)
            return True
        except queue.Full:
            return False

    def _run(self) -> None:
        while True:
            fn = self._q.get()
            if fn is None:
                return
            with self._lock:
                self.busy += 1
            try:
                fn()
            except Exception:
                log.exception("%s: worker failed", self.name)
            finally:
                with self._lock:
                    self.busy -= 1

    def close(self) -> None:
        for _ in self._threads:
            try:
                self._q.put(None, timeout=1)
            except queue.Full:
                break


class Listener:
    """One UDP socket and the thread reading it; `handler(data, src, local_ip)`."""

    def __init__(self, port: int, handler: Callable[[bytes, tuple[str, int], str], None], name: str,
                 host: str = "0.0.0.0") -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.name = name
        self.sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.sock is not None

    def start(self) -> None:
        if self.sock is not None:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.bind((self.host, self.port))
        self.port = s.getsockname()[1]
        self.sock = s
        self._thread = threading.Thread(target=self._loop, args=(s,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _loop(self, s: socket.socket) -> None:
        while self.sock is s:
            try:
                data, anc, _flags, src = s.recvmsg(4096, socket.CMSG_SPACE(12))
            except OSError:
                return
            if self.sock is not s:
                return          # woken by stop()
            if src is None:
                continue
            local = ""
            for level, kind, cdata in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 12:
                    local = socket.inet_ntoa(cdata[8:12])   # ipi_addr: the header's destination
            try:
                self.handler(data, src, local)
            except Exception:
                log.exception("%s: handler failed", self.name)

    def reply(self, data: bytes, dst: tuple[str, int], local_ip: str) -> None:
        """Answer from the address the request was sent to (clients check the source)."""
        s = self.sock
        if s is None:
            return
        anc = []
        if local_ip:
            anc = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("@I4s4s", 0, socket.inet_aton(local_ip),
                                                                 socket.inet_aton("0.0.0.0")))]
        try:
            s.sendmsg([data], anc, 0, dst)
        except OSError as exc:
            log.warning("%s: reply to %s failed: %s", self.name, dst, exc)


class RadiusService:
    """Serves Access-Request and Accounting-Request. `clients_of()` gives the configured clients by
    address; problems go to `on_problem(kind, detail)` (the device logs them)."""

    def __init__(self, state_dir: Path, clients_of: Callable[[], dict[str, ClientEntry]],
                 on_problem: Callable[[str, str], None], *, workers: int = 16,
                 auth_port: int = AUTH_PORT, acct_port: int = ACCT_PORT, host: str = "0.0.0.0",
                 name: str = "aaa") -> None:
        self.dict = dictionary()
        self.clients_of = clients_of
        self.on_problem = on_problem
        self.db = UserDb(state_dir / "aaa.db")
        self.pool = WorkerPool(workers, f"{name}-radius")
        self.auth = Listener(auth_port, self._on_auth, f"{name}-auth", host)
        self.acct = Listener(acct_port, self._on_acct, f"{name}-acct", host)
        self.counters: Counter[str] = Counter()
        self.seen: dict[str, SeenClient] = {}
        self.require_message_authenticator = False
        self._lock = threading.Lock()
        self._held: list[threading.Event] = []

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self.db.start()
        self.auth.start()
        self.acct.start()

    def close(self) -> None:
        self.auth.stop()
        self.acct.stop()
        self.db.stop()
        self.release_workers()
        self.pool.close()

    def resize(self, workers: int) -> None:
        if workers != self.pool.size:
            old, self.pool = self.pool, WorkerPool(workers, self.pool.name)
            old.close()

    def services(self) -> dict[str, bool]:
        return {"radius-auth": self.auth.running, "radius-acct": self.acct.running, "user-db": self.db.running}

    # ---- thread exhaustion (test aaa workers hold N) ---------------------------------------------
    def hold_workers(self, n: int) -> int:
        """Occupy `n` workers until released: what a stuck backend call does to a real server."""
        held = 0
        for _ in range(n):
            ev = threading.Event()
            if not self.pool.submit(ev.wait):
                break
            self._held.append(ev)
            held += 1
        return held

    def release_workers(self) -> int:
        held, self._held = self._held, []
        for ev in held:
            ev.set()
        return len(held)

    # ---- requests ---------------------------------------------------------------------------------
    def _problem(self, kind: str, detail: str) -> None:
        self.counters[f"dropped-{kind}"] += 1
        self.on_problem(kind, detail)

    def _client(self, src_ip: str, request: str) -> ClientEntry | None:
        """The configured client a request came from; a stranger's request is dropped and logged."""
        client = self.clients_of().get(src_ip)
        if client is None:
            self._problem("unknown-client", f"{request} from unknown client {src_ip}")
        return client

    def _note_seen(self, src_ip: str, local_ip: str) -> None:
        with self._lock:
            sc = self.seen.get(src_ip)
            if sc is None:
                sc = self.seen[src_ip] = SeenClient(src_ip, local_ip, time.time())
            sc.server_ip = local_ip or sc.server_ip
            sc.last_seen = time.time()
            sc.requests += 1

    def _on_auth(self, data: bytes, src: tuple[str, int], local_ip: str) -> None:
        self.counters["requests"] += 1
        client = self._client(src[0], "Access-Request")
        if client is None:
            return
        try:
            pkt = rp.AuthPacket(packet=data, secret=client.key.encode(), dict=self.dict)
        except Exception as exc:
            self._problem("malformed", f"malformed RADIUS packet from {src[0]} ({len(data)} bytes): {exc}")
            return
        if pkt.code != rp.AccessRequest:
            self._problem("malformed", f"RADIUS code {pkt.code} from {src[0]} on the authentication port")
            return
        has_ma = "Message-Authenticator" in pkt
        if has_ma:
            try:
                ok = pkt.verify_message_authenticator()
            except Exception:
                ok = False
            if not ok:
                self._problem("bad-authenticator", f"Message-Authenticator from {src[0]} does not verify "
                                                   f"(wrong shared secret?)")
                return
        elif self.require_message_authenticator:
            self._problem("bad-authenticator", f"Access-Request from {src[0]} has no Message-Authenticator")
            return
        self._note_seen(src[0], local_ip)
        if not self.pool.submit(lambda: self._authenticate(pkt, src, local_ip, has_ma)):
            self._problem("busy", f"no free worker thread for {src[0]}")

    def _authenticate(self, pkt: rp.AuthPacket, src: tuple[str, int], local_ip: str, has_ma: bool) -> None:
        try:
            user = pkt["User-Name"][0]
            password = pkt.PwDecrypt(pkt["User-Password"][0])
        except Exception as exc:   # a packet without the attributes, or a password that is not text
            self._problem("malformed", f"Access-Request from {src[0]} without a usable User-Name/User-Password ({exc})")
            return
        try:
            stored = self.db.password_of(user)
        except sqlite3.Error as exc:
            self._problem("backend", f"user database unavailable: {exc}")
            return
        ok = stored is not None and stored == password
        reply = pkt.CreateReply()
        reply.code = rp.AccessAccept if ok else rp.AccessReject
        reply.AddAttribute("Reply-Message", "Welcome" if ok else "Authentication failed")
        reply.add_message_authenticator()   # always (BlastRADIUS): clients may insist on it
        self.counters["accepts" if ok else "rejects"] += 1
        self.auth.reply(reply.ReplyPacket(), src, local_ip)

    def _on_acct(self, data: bytes, src: tuple[str, int], local_ip: str) -> None:
        self.counters["acct-requests"] += 1
        client = self._client(src[0], "Accounting-Request")
        if client is None:
            return
        try:
            pkt = rp.AcctPacket(packet=data, secret=client.key.encode(), dict=self.dict)
            if pkt.code != rp.AccountingRequest or not pkt.VerifyAcctRequest():
                raise ValueError("bad request authenticator (wrong shared secret?)")
        except Exception as exc:
            self._problem("malformed", f"bad Accounting-Request from {src[0]}: {exc}")
            return

        def work() -> None:
            def one(attr: str, default):
                try:
                    return pkt[attr][0]
                except (KeyError, IndexError):
                    return default
            try:
                status = one("Acct-Status-Type", 0)
                status = int(status) if isinstance(status, int) else {"Start": 1, "Stop": 2, "Interim-Update": 3}.get(status, 0)
                self.db.record_accounting(src[0], one("User-Name", ""), one("Acct-Session-Id", ""), status,
                                          int(one("Acct-Session-Time", 0)))
            except sqlite3.Error as exc:
                self._problem("backend", f"accounting database unavailable: {exc}")
                return
            self.counters["acct-responses"] += 1
            self.acct.reply(pkt.CreateReply().ReplyPacket(), src, local_ip)

        if not self.pool.submit(work):
            self._problem("busy", f"no free worker thread for {src[0]}")
