"""Northbound JSON API of the lab controller: HTTP on a Unix socket.

A Unix socket instead of a TCP port because the root namespace must not expose lab services on
the network (LAB-NOTES safety rules), and because every network namespace of the lab can still
reach it through the shared file system. The standard library's threaded HTTP server is enough:
os-ken 4's native hub has no WSGI server, and the API's load is a test's.

Routes (all JSON):
  GET    /health                      {"ok": true, "lab": ..., "switches_connected": N}
  GET    /switches                    [{"name", "dpid", "connected"}] for every configured switch
  GET    /switches/<name>             one of those
  GET    /switches/<name>/ports       [{"port_no", "name", "ovs_name", "link_up", "admin_up", "hw_addr"}]
  GET    /switches/<name>/flows       ofctl_v1_3 flow list (+ "in_port_name", "actions_named")
  POST   /flows                       add a flow (201)
  DELETE /flows                       delete flows (200)
  GET    /events?since=N&timeout=S    long-poll {"events": [...], "next": M, "boot": ...}
Errors: {"error": "..."} with 400 (bad input), 404 (unknown switch/path), 405, 413, 503 (switch
not connected), 504 (switch did not answer), 500 (controller bug; logged with a traceback).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from controllers import flowspec
from controllers.errors import ApiError
from controllers.twin_base import TwinBase

LOG = logging.getLogger("controllers.northbound")

MAX_BODY = 1 << 20
MAX_POLL_S = 300.0
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True        # a pending long-poll must not keep the process alive
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, bind_path: str, handler: type, api: Northbound) -> None:
        self.api = api
        super().__init__(bind_path, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    server_version = "twin-controller/1"

    def address_string(self) -> str:  # AF_UNIX peers have no (host, port)
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        LOG.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        self._body_consumed = False
        try:
            status, payload = self.server.api.handle(method, self.path, self._read_body)
        except ApiError as exc:
            status, payload = exc.status, {"error": exc.message}
        except Exception as exc:  # a bug: answer, and leave a Traceback in the log for the harness
            LOG.exception("internal error serving %s %s", method, self.path)
            status, payload = 500, {"error": f"internal controller error: {type(exc).__name__}: {exc}"}
        self._drain_body()
        elapsed_ms = (time.monotonic() - started) * 1000
        level = logging.INFO if status < 400 else logging.WARNING
        if method == "GET" and status < 400:
            level = logging.DEBUG  # polling would flood the log
        LOG.log(level, "%s %s -> %d (%.0f ms)%s", method, self.path, status, elapsed_ms,
                f": {payload.get('error')}" if isinstance(payload, dict) and "error" in payload else "")
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            LOG.info("client went away before the %s %s response was sent", method, self.path)

    def _drain_body(self) -> None:
        """A request refused before its body was read (405, 404) still has the body in flight: read
        it, or closing the connection resets it and the client sees a broken pipe, not our answer."""
        if self._body_consumed:
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < length <= MAX_BODY:
            try:
                self.rfile.read(length)
            except OSError:
                pass

    def _read_body(self) -> Any:
        self._body_consumed = True
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            if self.headers.get("Transfer-Encoding"):
                raise ApiError(400, "chunked bodies are not supported; send Content-Length")
            raise ApiError(400, "missing request body (a JSON object)")
        try:
            length = int(length_text)
        except ValueError:
            raise ApiError(400, f"bad Content-Length {length_text!r}") from None
        if length > MAX_BODY:
            raise ApiError(413, f"request body too large ({length} bytes, limit {MAX_BODY})")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            raise ApiError(400, "missing request body (a JSON object)")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, f"malformed JSON body: {exc}") from None


class Northbound:
    """The API server bound to one TwinBase instance."""

    def __init__(self, twin: TwinBase, socket_path: Path) -> None:
        self.twin = twin
        self.socket_path = Path(socket_path)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._dir_fd: int | None = None

    # ----- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the socket (replacing a stale one) and serve in a daemon thread."""
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(path)
        bind_path = str(path)
        if len(os.fsencode(bind_path)) > UNIX_PATH_MAX:
            # Too long for sun_path: bind through the directory's /proc fd link instead.
            self._dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
            bind_path = f"/proc/self/fd/{self._dir_fd}/{path.name}"
        self._server = _Server(bind_path, _Handler, self)
        os.chmod(path, 0o660)
        self._thread = threading.Thread(target=self._server.serve_forever, name="northbound", daemon=True)
        self._thread.start()
        LOG.info("northbound API listening on %s", path)

    def close(self) -> None:
        """Stop accepting and remove the socket file (only if it is still ours)."""
        if self._server is not None:
            try:
                self._server.socket.close()
            except OSError:
                pass
        try:
            if self.socket_path.is_socket():
                self.socket_path.unlink()
        except OSError:
            pass
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    # ----- routing ---------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, read_body: Any) -> tuple[int, Any]:
        """Serve one request; returns (status, JSON-able payload) or raises ApiError."""
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        segs = [unquote(s) for s in path.strip("/").split("/")] if path != "/" else []
        twin = self.twin

        def only(*methods: str) -> None:
            if method not in methods:
                raise ApiError(405, f"{method} not allowed on {path} (allowed: {', '.join(methods)})")

        if segs == ["health"]:
            only("GET")
            return 200, {"ok": True, "lab": twin.config.lab, "switches_connected": twin.connected_count(),
                         "switches_configured": len(twin.config.switches), "pid": os.getpid(),
                         "boot": twin.event_log.boot}
        if segs == ["switches"]:
            only("GET")
            return 200, twin.switches_info()
        if len(segs) in (2, 3) and segs[0] == "switches":
            only("GET")
            name = twin.resolve_switch(segs[1])
            if len(segs) == 2:
                return 200, next(s for s in twin.switches_info() if s["name"] == name)
            if segs[2] == "ports":
                return 200, twin.get_ports(name)
            if segs[2] == "flows":
                return 200, twin.get_flows(name)
        if segs == ["flows"]:
            only("POST", "DELETE")
            body = read_body()
            if isinstance(body, dict):  # an unknown switch is a 404 even if the rest is bad too
                twin.resolve_switch(flowspec.parse_switch_ref(body))
            if method == "POST":
                spec = flowspec.parse_add(body)
                twin.apply_add(spec)
                return 201, {"ok": True}
            spec_d = flowspec.parse_delete(body)
            deleted = twin.apply_delete(spec_d)
            result: dict[str, Any] = {"ok": True}
            if deleted is not None:
                result["deleted"] = deleted
            return 200, result
        if segs == ["events"]:
            only("GET")
            since = _query_number(query, "since", 0, int)
            timeout = _query_number(query, "timeout", 0.0, float)
            if since < 0:
                raise ApiError(400, f"since: must be >= 0, got {since}")
            if not 0 <= timeout <= MAX_POLL_S:
                raise ApiError(400, f"timeout: must be between 0 and {MAX_POLL_S:g} seconds, got {timeout:g}")
            return 200, twin.event_log.read(since, timeout)
        for route_method, pattern, handler in twin.api_routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                body = read_body() if method in ("POST", "PUT", "PATCH") else None
                if method == "DELETE":
                    try:    # an app's DELETE /thing/<name> needs no body; one given is still read
                        body = read_body()
                    except ApiError as exc:
                        if not exc.message.startswith("missing request body"):
                            raise
                result = handler(match, query, body)
                if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
                    return result
                return 200, result
        raise ApiError(404, f"no such API path: {method} {path}")


def _query_number(query: dict[str, list[str]], name: str, default: Any, kind: type) -> Any:
    values = query.get(name)
    if not values:
        return default
    try:
        return kind(values[-1])
    except ValueError:
        raise ApiError(400, f"{name}: expected a number, got {values[-1]!r}") from None


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead controller; refuse to touch a live one or a non-socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"API socket path {path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        probe.connect(f"/proc/self/fd/{dir_fd}/{path.name}")
    except (ConnectionRefusedError, FileNotFoundError):
        LOG.info("replacing stale API socket %s", path)
        path.unlink(missing_ok=True)
        return
    except OSError as exc:
        LOG.info("replacing API socket %s (%s)", path, exc)
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
        os.close(dir_fd)
    raise RuntimeError(f"API socket {path} is in use by a running process; is another controller serving it?")
