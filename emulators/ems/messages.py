"""The datagrams element-management servers exchange to elect their master (spec 001, claims 7-8).

    b"TWEM" | JSON body (utf-8, compact) | HMAC-SHA256(cluster secret, magic + body) (32 bytes)

    body = {"v": 1, "type": "ELECTION" | "ANSWER" | "COORDINATOR" | "HEARTBEAT", "from": sender id,
            "boot": random 63-bit incarnation id, "seq": per-incarnation counter, "ts": unix time,
            "term": int, "data": {...}}

JSON rather than a packed struct because heartbeats carry the master's element assignment, a map
whose size varies; the HMAC is checked before the JSON is parsed, so an unauthenticated sender can
never reach the parser. Every server of a cluster shares one secret: a message is authentic when it
was made by *a* member, so the receiver also checks that the claimed sender id matches the source
address it is configured with (see `election_service`), and `ReplayGuard` rejects copies.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..wire import MessageError  # noqa: F401 - raised here, caught by importers

MAGIC = b"TWEM"
VERSION = 1
DIGEST_LEN = 32
MAX_DATAGRAM = 60000
MAX_AGE_S = 30.0

ELECTION, ANSWER, COORDINATOR, HEARTBEAT = "ELECTION", "ANSWER", "COORDINATOR", "HEARTBEAT"
TYPES = (ELECTION, ANSWER, COORDINATOR, HEARTBEAT)
_FIELDS = ("v", "type", "from", "boot", "seq", "ts", "term", "data")


@dataclass(frozen=True)
class Message:
    """One election message; `sender` is the wire's "from" (a Python keyword)."""

    type: str
    sender: int
    boot: int
    seq: int
    ts: float
    term: int
    data: dict[str, Any] = field(default_factory=dict)
    v: int = VERSION


def _digest(secret: bytes, signed: bytes) -> bytes:
    return hmac.new(secret, signed, hashlib.sha256).digest()


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def encode(msg: Message, secret: bytes) -> bytes:
    """Sign `msg`; MessageError("malformed") for what `decode` would refuse, so a bug shows at the sender."""
    body = {"v": msg.v, "type": msg.type, "from": msg.sender, "boot": msg.boot, "seq": msg.seq,
            "ts": msg.ts, "term": msg.term, "data": msg.data}
    _validate(body)
    try:
        raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise MessageError("malformed", f"body is not JSON: {e}") from None
    signed = MAGIC + raw
    if len(signed) + DIGEST_LEN > MAX_DATAGRAM:
        raise MessageError("malformed", f"{len(signed) + DIGEST_LEN} bytes, more than {MAX_DATAGRAM}")
    return signed + _digest(secret, signed)


def decode(data: bytes, secret: bytes) -> Message:
    """Authenticate, then parse: the HMAC comes first so forged input never reaches json.loads."""
    if len(data) < len(MAGIC) + 2 + DIGEST_LEN or len(data) > MAX_DATAGRAM:
        raise MessageError("malformed", f"{len(data)} bytes")
    if data[:len(MAGIC)] != MAGIC:
        raise MessageError("malformed", f"bad magic {bytes(data[:len(MAGIC)])!r}")
    signed, digest = data[:-DIGEST_LEN], data[-DIGEST_LEN:]
    if not hmac.compare_digest(_digest(secret, signed), digest):
        raise MessageError("bad-hmac", "HMAC does not verify")
    try:
        body = json.loads(signed[len(MAGIC):].decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MessageError("malformed", f"body is not JSON: {e}") from None
    _validate(body)
    return Message(type=body["type"], sender=body["from"], boot=body["boot"], seq=body["seq"],
                   ts=float(body["ts"]), term=body["term"], data=body["data"], v=body["v"])


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _validate(body: object) -> None:
    if not isinstance(body, dict):
        raise MessageError("malformed", "body is not an object")
    if set(body) != set(_FIELDS):
        missing, extra = set(_FIELDS) - set(body), set(body) - set(_FIELDS)
        raise MessageError("malformed", f"fields: missing {sorted(missing)}, unexpected {sorted(extra)}")
    if not _is_int(body["v"]) or body["v"] != VERSION:
        raise MessageError("malformed", f"version {body['v']!r}, expected {VERSION}")
    if body["type"] not in TYPES:
        raise MessageError("malformed", f"unknown type {body['type']!r}")
    for name in ("from", "boot", "seq", "term"):
        if not _is_int(body[name]) or body[name] < 0:
            raise MessageError("malformed", f"{name} {body[name]!r} is not a non-negative integer")
    ts = body["ts"]
    if not (_is_int(ts) or isinstance(ts, float)) or not math.isfinite(ts):
        raise MessageError("malformed", f"ts {ts!r} is not a number")
    if not isinstance(body["data"], dict):
        raise MessageError("malformed", "data is not an object")


@dataclass
class _SenderState:
    newest_ts: float
    boots: OrderedDict[int, int]          # boot -> highest seq accepted, most recent boot last


class ReplayGuard:
    """Accepts a message once, fresh, and only from a sender's newest incarnation.

    A restarted server picks a new random `boot` and restarts `seq` at 0, so sequence numbers alone
    cannot tell a restart from a replay of the previous incarnation: a message from a boot other than
    the current one is accepted only if it is newer than anything accepted from that sender.
    Memory is bounded: `max_senders` senders (least recently heard forgotten first), `max_boots` each.
    """

    def __init__(self, max_age_s: float = MAX_AGE_S, max_senders: int = 1024, max_boots: int = 4) -> None:
        self.max_age_s = max_age_s
        self.max_senders = max_senders
        self.max_boots = max_boots
        self._senders: OrderedDict[int, _SenderState] = OrderedDict()

    def check(self, msg: Message, now: float) -> str | None:
        """None and remember `msg` if it is acceptable; else "stale" or "replay" (and remember nothing)."""
        if abs(now - msg.ts) > self.max_age_s:
            return "stale"
        st = self._senders.get(msg.sender)
        if st is None:
            st = _SenderState(msg.ts, OrderedDict())
            self._senders[msg.sender] = st
            while len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
        else:
            last = st.boots.get(msg.boot)
            if last is not None and msg.seq <= last:
                return "replay"
            current_boot = next(reversed(st.boots)) if st.boots else None
            if msg.boot != current_boot and msg.ts < st.newest_ts:
                return "replay"
            self._senders.move_to_end(msg.sender)
        st.boots[msg.boot] = msg.seq
        st.boots.move_to_end(msg.boot)
        while len(st.boots) > self.max_boots:
            st.boots.popitem(last=False)
        st.newest_ts = max(st.newest_ts, msg.ts)
        return None
