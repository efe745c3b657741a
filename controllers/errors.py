"""The one exception type the controller's service layer raises for request problems.

Carrying the HTTP status with the message lets the same validation code serve the northbound API
(which turns it into a JSON error response) and Python callers in other os-ken apps (which get a
precise exception instead of a silently dropped OpenFlow message).
"""
from __future__ import annotations


class ApiError(Exception):
    """A request that cannot be served: `status` is the HTTP status, `message` says what and where."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message
