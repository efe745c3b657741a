"""The cluster's event bus (claim 11): ZeroMQ publish/subscribe over the management network.

Two channels, both bound by the cluster manager so elements only need its address:
  * events (EVENTS_PORT): every element PUBlishes heartbeats, link changes, "failing" and config
    changes; the manager SUBscribes to all of them;
  * triggers (TRIGGER_PORT): the manager PUBlishes orders (clone this role, reboot with the default
    config, send your config) with the element's name as the topic; each element SUBscribes to its
    own name and to "all".

Every message is one JSON frame `{"m": body, "h": hmac}` signed with the cluster's secret. The body
carries the sender, its boot id and a sequence number, so the manager can reject a forgery (bad
signature), a stranger (a sender that is not a member, or a member's name from another address) and
a replay (an old boot or sequence). `decode` names what is wrong; nothing malformed reaches the
manager's logic.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from ..signing import Rejected, canon, seal, unseal

EVENTS_PORT = 5560
TRIGGER_PORT = 5561
MAX_FRAME = 1 << 20
VERSION = 1

EVENT_TYPES = ("hello", "heartbeat", "link-down", "link-up", "failing", "config-changed", "config-snapshot",
               "clone-done", "clone-failed")
TRIGGER_TYPES = ("clone", "reload-default", "resync")


# A refused message: `reason` is one of malformed, bad-signature, unknown-type.
BusError = Rejected


@dataclass(frozen=True)
class Message:
    type: str
    sender: str
    boot: float
    seq: int
    time: float
    body: dict[str, Any]

    def to_body(self) -> dict[str, Any]:
        return {"v": VERSION, "type": self.type, "sender": self.sender, "boot": self.boot, "seq": self.seq,
                "time": self.time, "body": self.body}


_canon = canon


def encode(msg: Message, secret: bytes) -> bytes:
    return seal(msg.to_body(), secret)


def decode(frame: bytes, secret: bytes, allowed: tuple[str, ...] = EVENT_TYPES) -> Message:
    """The message in a frame, or BusError saying what is wrong with it."""
    if len(frame) > MAX_FRAME:
        raise BusError("malformed", f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    body = unseal(frame, secret, "the cluster's")
    fields = {"v": int, "type": str, "sender": str, "boot": (int, float), "seq": int, "time": (int, float),
              "body": dict}
    for name, typ in fields.items():
        if not isinstance(body.get(name), typ) or isinstance(body.get(name), bool):
            raise BusError("malformed", f"field {name!r} missing or of the wrong type")
    if not all(math.isfinite(body[k]) for k in ("boot", "time")):
        raise BusError("malformed", "boot and time must be finite numbers")
    if body["v"] != VERSION:
        raise BusError("malformed", f"version {body['v']} (this cluster speaks {VERSION})")
    if body["type"] not in allowed:
        raise BusError("unknown-type", f"type {body['type']!r} (expected one of {', '.join(allowed)})")
    return Message(body["type"], body["sender"], float(body["boot"]), body["seq"], float(body["time"]), body["body"])


class Sequencer:
    """Numbers a sender's messages: the boot id tells a restarted sender from a replay."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.boot = time.time()
        self._seq = 0

    def make(self, type: str, **body: Any) -> Message:
        self._seq += 1
        return Message(type, self.sender, self.boot, self._seq, time.time(), body)


class ReplayGuard:
    """Per-sender freshness: a message must come from the sender's newest boot with a higher
    sequence number than the last one accepted."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def check(self, msg: Message) -> str | None:
        last = self._last.get(msg.sender)
        if last is not None:
            boot, seq = last
            if msg.boot < boot:
                return f"replay: boot {msg.boot:.6f} is older than {msg.sender}'s current boot {boot:.6f}"
            if msg.boot == boot and msg.seq <= seq:
                return f"replay: sequence {msg.seq} of {msg.sender} was already seen (last {seq})"
        self._last[msg.sender] = (msg.boot, msg.seq)
        return None

    def forget(self, sender: str) -> None:
        self._last.pop(sender, None)
