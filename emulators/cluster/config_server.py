"""The configuration server elements fetch their config from (claim 4): a substitute that receives
the trigger event pulls its role's initial config and the partial accumulated config over HTTP from
the cluster manager, and a rebooted element pulls the cluster's default config.

HTTP on the manager's management address (inside the lab's namespace, never the root namespace).
Requests carry the cluster's token; anything else is a 403 that names what is wrong.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Twin-Cluster-Token"


def token_for(secret: str) -> str:
    return hashlib.sha256(f"twin-cluster-config/{secret}".encode()).hexdigest()[:32]


class ConfigServer:
    """`initial(role)`, `accumulated(role)` and `default(element)` answer the three documents;
    each returns None for a name it does not know (a 404)."""

    def __init__(self, address: str, port: int, secret: str, *, initial: Callable[[str], str | None],
                 accumulated: Callable[[str], list[dict[str, Any]] | None],
                 default: Callable[[str], str | None], on_fetch: Callable[[str, str], None] | None = None) -> None:
        self.token = token_for(secret)
        docs = {"initial": initial, "accumulated": accumulated, "default": default}
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            server_version = "twin-cluster-config/1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("config server: " + format, *args)

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.headers.get(TOKEN_HEADER) != server_self.token:
                    self._send(403, b"missing or wrong cluster token\n", "text/plain")
                    return
                segs = [unquote(s) for s in self.path.strip("/").split("/")]
                if len(segs) != 3 or segs[0] not in ("roles", "elements") or \
                        segs[2] not in (("initial", "accumulated") if segs[0] == "roles" else ("default",)):
                    self._send(404, f"no such document: {self.path}\n".encode(), "text/plain")
                    return
                doc = docs[segs[2]](segs[1])
                if doc is None:
                    self._send(404, f"unknown {segs[0][:-1]} {segs[1]!r}\n".encode(), "text/plain")
                    return
                if on_fetch is not None:
                    on_fetch(segs[1], segs[2])
                if isinstance(doc, str):
                    self._send(200, doc.encode(), "text/plain; charset=utf-8")
                else:
                    self._send(200, json.dumps(doc).encode(), "application/json")

        self.httpd = ThreadingHTTPServer((address, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="cluster-config-server", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
