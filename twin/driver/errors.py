"""What the device driver raises. Every message names the device and the transport, because a test
report with twenty routers is useless if it only says "timed out"."""
from __future__ import annotations


class DriverError(Exception):
    """Any failure to talk to a device's CLI."""


class DriverTimeout(DriverError):
    """No prompt (or echo, or login dialog) came back in time."""


class LoginError(DriverError):
    """The device refused the credentials, or the login dialog went somewhere unexpected."""


class ConnectionClosed(DriverError):
    """The client process ended: the device dropped the session or the client could not connect."""


class CommandError(DriverError):
    """The device rejected a command (`% Invalid input`, `% Incomplete command`, `% Ambiguous command`)."""

    def __init__(self, message: str, *, device: str = "", command: str = "", output: str = "") -> None:
        super().__init__(message)
        self.device = device
        self.command = command
        self.output = output
