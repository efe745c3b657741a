"""Signed JSON frames, the one format every inter-device channel uses (the redundant pair's backplane
in rp/rf_channel.py, the cluster's event bus in cluster/bus.py): `{"m": body, "h": hmac}`, with an
HMAC-SHA256 over the canonical body under a shared secret. `unseal` names what is wrong with a frame
instead of letting bad input reach the channel's logic."""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


class Rejected(ValueError):
    """A frame refused; `reason` is malformed, bad-signature or what the channel adds (replay...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def canon(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def seal(body: dict[str, Any], secret: bytes) -> bytes:
    mac = hmac.new(secret, canon(body), hashlib.sha256).hexdigest()
    return json.dumps({"m": body, "h": mac}, separators=(",", ":")).encode()


def unseal(frame: bytes, secret: bytes, whose: str = "the") -> dict[str, Any]:
    """The body of an authentic frame, or Rejected. A deeply nested frame is malformed, not a crash."""
    try:
        outer = json.loads(frame)
    except (ValueError, RecursionError) as exc:      # (UnicodeDecodeError is a ValueError)
        raise Rejected("malformed", f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(outer, dict) or not isinstance(outer.get("m"), dict) or not isinstance(outer.get("h"), str):
        raise Rejected("malformed", 'expected {"m": {...}, "h": "<hmac>"}')
    body = outer["m"]
    if not hmac.compare_digest(hmac.new(secret, canon(body), hashlib.sha256).hexdigest(), outer["h"]):
        raise Rejected("bad-signature", f"HMAC does not match {whose} secret")
    return body
