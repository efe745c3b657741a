"""An element-management server's connection to one managed network element (spec 001: the federated
service keeps each element's interfaces, nodal alarms and event log in the server's memory).

The server talks to its elements the way an operator's tooling talks to IOS routers: Netmiko over SSH.
The connection is kept open between polls (logging in costs far more than a command) and is re-opened
once, transparently, when a command finds it dropped, e.g. because the element restarted.
"""
from __future__ import annotations

import calendar
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoBaseException, ReadTimeout
from paramiko.ssh_exception import SSHException

T = TypeVar("T")

MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                      "Nov", "Dec"), start=1)}
ALARM_MAX_SEVERITY = 4  # emergencies(0) .. warnings(4): the nodal alarms; notifications and below are not
# `*Nov 21 07:34:44.123: %LINK-3-UPDOWN: text` as emulators/eventlog.py writes it; also tolerated: a
# sequence number, no `*` (clock synchronised), a year, a time zone, or no timestamp at all.
LOG_RE = re.compile(
    r"^\s*(?:\d+: )?(?:[*.]?(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2})(?: (?P<year>\d{4}))? "
    r"(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)(?P<frac>\.\d+)?(?: [A-Z]{3,5})?: )?"
    r"%(?P<fac>[A-Z0-9_]+)-(?P<sev>[0-7])-(?P<mn>[A-Z0-9_]+): ?(?P<text>.*?)\s*$")
BUFFER_HEADER_RE = re.compile(r"^Log Buffer \(\d+ bytes\):\s*$")
CONFIG_ERROR_RE = re.compile(r"^% ?(?:Invalid|Incomplete|Ambiguous)[^\n]*", re.M)
# transport failures: the element closed the connection or went away
DROP_ERRORS = (OSError, EOFError, SSHException)


class ElementError(Exception):
    pass


@dataclass(frozen=True)
class Alarm:
    """A nodal alarm; `mnemonic` is the full message code (`LINK-3-UPDOWN`), as operators grep it."""
    element: str
    time: float
    severity: int
    mnemonic: str
    text: str


def log_time(line: str, now: float | None = None) -> float | None:
    """The epoch time of a log line. The device stamps UTC without a year: take the year that puts the
    line in the past (a line from Dec 31 read on Jan 1 belongs to last year)."""
    m = LOG_RE.match(line)
    if not m or not m["mon"] or m["mon"] not in MONTHS:
        return None
    now = time.time() if now is None else now
    year = int(m["year"]) if m["year"] else time.gmtime(now).tm_year
    try:
        t = calendar.timegm((year, MONTHS[m["mon"]], int(m["day"]), int(m["h"]), int(m["m"]), int(m["s"])))
    except ValueError:
        return None
    if not m["year"] and t > now + 86400:
        t = calendar.timegm((year - 1, MONTHS[m["mon"]], int(m["day"]), int(m["h"]), int(m["m"]), int(m["s"])))
    return t + (float(m["frac"]) if m["frac"] else 0.0)


def parse_alarm(element: str, line: str, now: float | None = None) -> Alarm | None:
    m = LOG_RE.match(line)
    if not m or int(m["sev"]) > ALARM_MAX_SEVERITY:
        return None
    t = log_time(line, now)
    return Alarm(element=element, time=(time.time() if now is None else now) if t is None else t,
                 severity=int(m["sev"]), mnemonic=f"{m['fac']}-{m['sev']}-{m['mn']}", text=m["text"])


def buffer_lines(show_logging: str) -> list[str]:
    """The logging buffer's lines from `show logging` output (its header describes the buffer)."""
    lines = show_logging.replace("\r", "").splitlines()
    for i, line in enumerate(lines):
        if BUFFER_HEADER_RE.match(line):
            return [ln.rstrip() for ln in lines[i + 1:] if ln.strip()]
    return [ln.rstrip() for ln in lines if LOG_RE.match(ln)]


def unseen_lines(lines: list[str], tail: list[str], last_time: float | None) -> list[str]:
    """Lines after the previously seen `tail`. The buffer is cumulative, so normally the tail is in it;
    when it is not (buffer cleared, wrapped past it, or the element lost its state) the timestamps
    decide, and an unstamped line counts as new."""
    if not tail:
        return list(lines)
    k = len(tail)
    for i in range(len(lines) - k, -1, -1):
        if lines[i:i + k] == tail:
            return lines[i + k:]
    if last_time is None:
        return list(lines)
    out = []
    for ln in lines:
        t = log_time(ln)
        if t is None or t > last_time or (t == last_time and ln not in tail):
            out.append(ln)
    return out


def parse_ip_brief(text: str) -> list[tuple[str, str, bool]]:
    """`show ip interface brief` -> [(name, address, up)]; `address` is "" when unassigned."""
    out = []
    for line in text.replace("\r", "").splitlines():
        f = line.split()
        if len(f) < 6 or f[0] == "Interface" or f[2] not in ("YES", "NO"):
            continue
        out.append((f[0], "" if f[1] == "unassigned" else f[1], f[-1] == "up" and f[-2] == "up"))
    return out


class ElementClient:
    """One persistent SSH session to an element. A lock serialises callers: a CLI session is one
    conversation, so threads sharing the client take turns."""

    TAIL = 5  # lines remembered to find the place in the logging buffer

    def __init__(self, name: str, host: str, username: str, password: str, port: int = 22,
                 timeout: float = 10, secret: str | None = None) -> None:
        self.name, self.host, self.port = name, host, port
        self.username, self.password, self.secret = username, password, secret
        self.timeout = timeout
        self._lock = threading.RLock()
        self._conn: Any = None
        self._tail: list[str] = []
        self._last_time: float | None = None
        self.connects = 0

    def __repr__(self) -> str:
        return f"ElementClient({self.name!r}, {self.where})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ connection
    def _open(self) -> Any:
        try:
            conn = ConnectHandler(device_type="cisco_ios", host=self.host, port=self.port,
                                  username=self.username, password=self.password, secret=self.secret or "",
                                  fast_cli=False, timeout=self.timeout, conn_timeout=self.timeout,
                                  auth_timeout=self.timeout, banner_timeout=self.timeout,
                                  use_keys=False, allow_agent=False)
        except NetmikoAuthenticationException as exc:
            raise ElementError(f"element {self.name} ({self.where}): authentication failed for "
                               f"{self.username!r}") from exc
        except (NetmikoBaseException, *DROP_ERRORS, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ElementError(f"element {self.name} ({self.where}): cannot connect: {reason}") from exc
        try:
            if self.secret is not None and not conn.check_enable_mode():
                conn.enable()
        except Exception as exc:
            _disconnect(conn)
            raise ElementError(f"element {self.name} ({self.where}): enable failed: {exc}") from exc
        self.connects += 1
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _disconnect(conn)

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    self._conn = self._open()
                conn = self._conn
                try:
                    return fn(conn)
                except ElementError:
                    raise
                except Exception as exc:
                    # Dropped (or stuck waiting for a prompt that changed): one retry on a fresh
                    # session. Anything else: the session's state is unknown, so the next call
                    # starts afresh too, but this one fails.
                    retry = isinstance(exc, (*DROP_ERRORS, ReadTimeout)) or not _alive(conn)
                    self._drop()
                    if not retry or attempt == 2:
                        raise ElementError(f"element {self.name} ({self.where}): {what} failed: "
                                           f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> ElementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands
    def run(self, command: str) -> str:
        # Waiting for the known prompt instead of letting Netmiko rediscover it saves ~0.5 s of fixed
        # sleeps a command; a prompt that changed under us (new hostname) times out, and the retry on
        # a fresh session learns it.
        return self._call(repr(command), lambda c: c.send_command(
            command, expect_string=re.escape(c.base_prompt) + r"[^\r\n]*[>#]\s*$",
            read_timeout=max(self.timeout, 10)))

    def show_interfaces(self) -> str:
        return self.run("show interfaces")

    def interfaces(self) -> list[tuple[str, str, bool]]:
        """(name, address, up) rows, the shape EmsStore.export_element takes."""
        return parse_ip_brief(self.run("show ip interface brief"))

    def new_log_lines(self) -> list[str]:
        """Logging-buffer lines not returned by an earlier call (all of them on the first call)."""
        with self._lock:
            lines = buffer_lines(self.run("show logging"))
            new = unseen_lines(lines, self._tail, self._last_time)
            if lines:
                self._tail = lines[-self.TAIL:]
                times = [t for t in map(log_time, self._tail) if t is not None]
                self._last_time = max(times) if times else self._last_time
            return new

    def alarms(self) -> list[Alarm]:
        """Nodal alarms among the new log lines (consumes them, like new_log_lines)."""
        return [a for a in (parse_alarm(self.name, ln) for ln in self.new_log_lines()) if a]

    def configure(self, lines: Iterable[str]) -> str:
        """Apply config lines in order, stopping at the first one the element rejects (what follows a
        bad line would land in the wrong mode); raises ElementError naming that line."""
        lines = [ln for ln in lines if ln.strip()]

        def apply(conn: Any) -> str:
            out = [conn.config_mode()]
            try:
                for line in lines:
                    text = conn.send_config_set([line], enter_config_mode=False, exit_config_mode=False,
                                                read_timeout=max(self.timeout, 10))
                    out.append(text)
                    m = CONFIG_ERROR_RE.search(text)
                    if m:
                        raise ElementError(f"element {self.name} ({self.where}): config line {line!r} "
                                           f"rejected: {m.group(0).strip()}")
            finally:
                try:
                    out.append(conn.exit_config_mode())
                    if any(ln.split()[0] == "hostname" for ln in lines):
                        conn.set_base_prompt()  # run() waits for the prompt by name
                except Exception:
                    pass  # a dropped session: the caller's error says so; the next call reconnects
            return "\n".join(out)

        return self._call("configure", apply)


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.is_alive())
    except Exception:
        return False


def _disconnect(conn: Any) -> None:
    try:
        conn.disconnect()
    except Exception:
        pass
