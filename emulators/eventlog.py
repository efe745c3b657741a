"""A device's logging buffer (what `show logging` prints) and its event stream.

Syslog-style lines carry IOS timestamps (`*Nov 21 12:34:56.789: %LINK-3-UPDOWN: ...`) and are also
appended to `state_dir/logging`, so the buffer survives an emulator restart and the test harness can
attach it as evidence. Structured events (`{"time", "device", "type", ...}`) go to subscribers (the
later event bus) and to `state_dir/events.jsonl`, one JSON object a line.
"""
from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_FILE_BYTES = 2 * 1024 * 1024


def log_timestamp(ts: float) -> str:
    """`*Nov 21 12:34:56.789` (the star: the clock is not NTP-synchronised, as on a fresh IOS)."""
    t = time.gmtime(ts)
    ms = int((ts % 1) * 1000)
    return f"*{MONTHS[t.tm_mon - 1]} {t.tm_mday:>2} {t.tm_hour:02}:{t.tm_min:02}:{t.tm_sec:02}.{ms:03}"


def clock_text(ts: float) -> str:
    """`*12:34:56.789 UTC Sat Nov 21 2026`, the `show clock` format."""
    t = time.gmtime(ts)
    ms = int((ts % 1) * 1000)
    return (f"*{t.tm_hour:02}:{t.tm_min:02}:{t.tm_sec:02}.{ms:03} UTC {DAYS[t.tm_wday]} "
            f"{MONTHS[t.tm_mon - 1]} {t.tm_mday} {t.tm_year}")


def date_text(ts: float) -> str:
    """`12:34:56 UTC Sat Nov 21 2026`, used inside messages."""
    t = time.gmtime(ts)
    return f"{t.tm_hour:02}:{t.tm_min:02}:{t.tm_sec:02} UTC {DAYS[t.tm_wday]} {MONTHS[t.tm_mon - 1]} {t.tm_mday} {t.tm_year}"


def uptime_text(seconds: float) -> str:
    """IOS uptime wording: `1 week, 2 days, 3 hours, 4 minutes` (zero units left out, minutes kept)."""
    s = int(seconds)
    parts = []
    for name, size in (("year", 365 * 86400), ("week", 7 * 86400), ("day", 86400), ("hour", 3600)):
        n, s = divmod(s, size)
        if n:
            parts.append(f"{n} {name}{'s' if n != 1 else ''}")
    m = s // 60
    parts.append(f"{m} minute{'s' if m != 1 else ''}")
    return ", ".join(parts)


class DeviceLog:
    def __init__(self, device: str, state_dir: Path | None, lines: int = 1000) -> None:
        self.device = device
        self.buffer: deque[str] = deque(maxlen=lines)
        self.logged = 0
        self.subscribers: list[Callable[[dict[str, Any]], None]] = []
        self.log_path = state_dir / "logging" if state_dir else None
        self.events_path = state_dir / "events.jsonl" if state_dir else None
        self._restore()

    def _restore(self) -> None:
        if not self.log_path or not self.log_path.exists():
            return
        try:
            data = self.log_path.read_text(errors="replace")
            if len(data) > MAX_FILE_BYTES:
                _keep_tail(self.log_path)
                data = self.log_path.read_text(errors="replace")
            self.buffer.extend(data.splitlines())
        except OSError:
            log.warning("%s: cannot read %s", self.device, self.log_path)

    def syslog(self, message: str, ts: float | None = None) -> str:
        """Add `%FAC-SEV-MNEMONIC: text` to the buffer; returns the timestamped line."""
        ts = time.time() if ts is None else ts
        line = f"{log_timestamp(ts)}: {message}"
        self.buffer.append(line)
        self.logged += 1
        self._append(self.log_path, line)
        log.info("%s: %s", self.device, message)
        return line

    def clear(self) -> None:
        self.buffer.clear()

    def publish(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"time": time.time(), "device": self.device, "type": type, **fields}
        self._append(self.events_path, json.dumps(event, default=str))
        for cb in list(self.subscribers):
            try:
                cb(event)
            except Exception:  # a broken subscriber must not break the device
                log.exception("%s: event subscriber failed", self.device)
        return event

    _appends = 0

    def _append(self, path: Path | None, line: str) -> None:
        if path is None:
            return
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                self._appends += 1
                if self._appends % 500 == 0 and f.tell() > MAX_FILE_BYTES:
                    _keep_tail(path)
        except OSError:
            log.debug("cannot append to %s", path, exc_info=True)


def _keep_tail(path: Path) -> None:
    """Bound a journal file: keep its newer half (whole lines), replaced atomically."""
    data = path.read_bytes()[-MAX_FILE_BYTES // 2:]
    data = data[data.find(b"\n") + 1:]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
