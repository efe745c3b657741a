"""What the signed datagram protocols (AAA failover messages, EMS election messages) share."""
from __future__ import annotations


class MessageError(ValueError):
    """A message that must be dropped; `reason` is one short word for counters and logs."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
