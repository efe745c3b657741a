"""The MNODE's operator API: one JSON request per line on a Unix socket in its state directory, so
`twin flows` in the root namespace reaches the MNODE in its lab namespace without a lab address.

Requests: {"op": "summary" | "nodes" | "flows" | "routes" | "service", ...}; answers {"ok": ...} or
{"error": "..."} naming what was wrong with the request.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "flows.sock"
MAX_REQUEST = 1 << 16
Handler = Callable[[dict[str, Any]], Any]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, handle: Handler) -> None:
        self.handle_request_body = handle
        super().__init__(path, _Handler)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise ValueError('expected {"op": "..."}')
            answer: dict[str, Any] = {"ok": self.server.handle_request_body(req)}
        except (ValueError, KeyError) as exc:
            answer = {"error": str(exc).strip("'\"")}
        except Exception as exc:
            log.exception("flows API request failed")
            answer = {"error": f"internal error: {type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(answer, default=str).encode() + b"\n")


class ApiServer:
    def __init__(self, state_dir: Path, handle: Handler) -> None:
        self.path = Path(state_dir) / SOCKET_NAME
        self.path.unlink(missing_ok=True)
        self._server = _Server(_short(self.path), handle)
        os.chmod(self.path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="flows-api", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def _short(path: Path) -> str:
    """sun_path holds 107 bytes; deep lab directories go through a relative path instead."""
    text = str(path)
    if len(text) < 100:
        return text
    return os.path.relpath(text)


class ApiError(RuntimeError):
    pass


def request(sock_path: Path, op: str, timeout: float = 10.0, **args: Any) -> Any:
    """One API call; ApiError says what went wrong (no MNODE running, a refused request)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    dir_fd = None
    try:
        target = str(sock_path)
        if len(target) >= 100:
            dir_fd = os.open(sock_path.parent, os.O_PATH | os.O_DIRECTORY)
            target = f"/proc/self/fd/{dir_fd}/{sock_path.name}"
        s.connect(target)
        s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ApiError(f"the MNODE's API at {sock_path} is not answering ({exc.__class__.__name__}); "
                       "is the lab running?") from None
    except OSError as exc:
        raise ApiError(f"the MNODE's API at {sock_path}: {exc}") from None
    finally:
        s.close()
        if dir_fd is not None:
            os.close(dir_fd)
    try:
        answer = json.loads(data)
    except ValueError:
        raise ApiError(f"the MNODE's API answered something that is not JSON: {data[:200]!r}") from None
    if "error" in answer:
        raise ApiError(answer["error"])
    return answer["ok"]
