"""Client of a lab controller's northbound API (HTTP over a Unix socket).

Tests and the harness talk to the controller only through this class, so that every failure comes
back as one exception type, `ControllerError`, carrying the HTTP status and the controller's own
explanation ("match.in_port: no port named eth9 on switch s1 (ports: eth1, eth2)") instead of a
bare "HTTP 400". Standard library only: the API is small and must work in any lab namespace.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
DEFAULT_PRIORITY = 32768  # OFP_DEFAULT_PRIORITY, as ovs-ofctl and the controller use
POLL_INTERVAL_S = 0.1


class ControllerError(Exception):
    """A failed API call: `status` is the HTTP status (None if the controller was unreachable)."""

    def __init__(self, status: int | None, message: str, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        code = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"{where}{code}{message}")


class ControllerUnreachable(ControllerError):
    """The API socket is missing, refused the connection, or did not answer in time."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX; long socket paths go through the directory's /proc fd link."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        path = self._socket_path
        try:
            if len(os.fsencode(path)) > UNIX_PATH_MAX:
                parent, name = os.path.split(path)
                dir_fd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY)
                try:
                    sock.connect(f"/proc/self/fd/{dir_fd}/{name}")
                finally:
                    os.close(dir_fd)
            else:
                sock.connect(path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ControllerClient:
    """Calls one controller's API; each call opens its own connection (thread-safe, restart-proof)."""

    def __init__(self, socket_path: str | Path, timeout: float = 10) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ControllerClient({self.socket_path!r})"

    # ----- transport --------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        """One API call; returns the decoded JSON, raises ControllerError on any failure.

        Public so that routes added by other controller apps can be called too.
        """
        conn = _UnixHTTPConnection(self.socket_path, self.timeout if timeout is None else timeout)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControllerUnreachable(None, f"controller API not reachable at {self.socket_path} "
                                              f"({exc.strerror or exc})", method, path) from None
        except (TimeoutError, socket.timeout):
            raise ControllerUnreachable(None, f"no answer from controller API at {self.socket_path} "
                                              f"within {conn.timeout:g} s", method, path) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ControllerUnreachable(None, f"controller API at {self.socket_path} failed: "
                                              f"{type(exc).__name__}: {exc}", method, path) from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
            if status < 400:
                raise ControllerError(status, f"response is not JSON: {raw[:200]!r}", method, path) from None
        if status >= 400:
            message = payload.get("error") if isinstance(payload, dict) else None
            raise ControllerError(status, message or raw.decode("utf-8", "replace")[:500] or "(empty)", method, path)
        return payload

    # ----- API --------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """{"ok": true, "lab": ..., "switches_connected": N, ...}"""
        return self.request("GET", "/health")

    def switches(self) -> list[dict[str, Any]]:
        """Every configured switch: [{"name", "dpid", "connected"}]."""
        return self.request("GET", "/switches")

    def ports(self, switch: str) -> list[dict[str, Any]]:
        """The switch's ports as the switch reports them now (short names like "eth1")."""
        return self.request("GET", f"/switches/{quote(switch, safe='')}/ports")

    def flows(self, switch: str) -> list[dict[str, Any]]:
        """The switch's flows (ofctl_v1_3 format plus "in_port_name"/"actions_named")."""
        return self.request("GET", f"/switches/{quote(switch, safe='')}/flows")

    def add_flow(self, switch: str, match: Mapping[str, Any] | None, actions: Iterable[Mapping[str, Any]] | None,
                 priority: int = DEFAULT_PRIORITY, cookie: int = 0, idle_timeout: int = 0,
                 hard_timeout: int = 0, table_id: int = 0) -> dict[str, Any]:
        """Install a flow; returns once the switch confirmed it (barrier). Empty actions = drop.

        Ports (match in_port, OUTPUT port) may be names ("eth1"), numbers or reserved names.
        """
        body = {"switch": switch, "match": dict(match or {}), "actions": [dict(a) for a in actions or []],
                "priority": priority, "cookie": cookie, "idle_timeout": idle_timeout,
                "hard_timeout": hard_timeout, "table_id": table_id}
        return self.request("POST", "/flows", body)

    def delete_flows(self, switch: str, match: Mapping[str, Any] | None = None, priority: int | None = None,
                     cookie: int | None = None, strict: bool = False) -> dict[str, Any]:
        """Delete matching flows; the table-miss rule survives unless strict=True with priority=0.

        With `cookie` only flows with exactly that cookie are deleted.
        """
        body: dict[str, Any] = {"switch": switch, "match": dict(match or {}), "strict": strict}
        if priority is not None:
            body["priority"] = priority
        if cookie is not None:
            body["cookie"] = cookie
        return self.request("DELETE", "/flows", body)

    def events(self, since: int = 0, timeout: float = 0) -> dict[str, Any]:
        """Events with seq >= since; waits up to `timeout` s for one. Use the returned "next" as since."""
        query = urlencode({"since": since, "timeout": timeout})
        return self.request("GET", f"/events?{query}", timeout=max(self.timeout, timeout + 10))

    # ----- virtual links (controllers/vlink_manager.py; only in labs with a grid) ---------------

    def vlinks(self) -> dict[str, Any]:
        """{"links": [summary: name, type, vlan, members, switches, programmed, ...], "grid": {...}}"""
        return self.request("GET", "/vlinks")

    def vlink(self, name: str) -> dict[str, Any]:
        """One link's details: spec, members (switch, port, up), learned MACs, rules per switch, history."""
        return self.request("GET", f"/vlinks/{quote(name, safe='')}")

    def create_vlink(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create a link from a spec as in controllers/vlink/model.py; returns its summary once programmed.

        Refusals name the field: 400 (the link is wrong in itself), 404 (it refers to something that
        does not exist), 409 (it clashes with another link).
        """
        return self.request("POST", "/vlinks", dict(spec))

    def delete_vlink(self, name: str) -> dict[str, Any]:
        """Delete a link and its rules: {"ok": true, "deleted": name}; 409 while another link copies it.

        Sends an empty JSON object as the body, which every version of the API accepts (earlier
        ones read a body on every DELETE route).
        """
        return self.request("DELETE", f"/vlinks/{quote(name, safe='')}", {})

    # ----- waiting ------------------------------------------------------------------------------

    def wait_connected(self, switches: list[str], deadline_s: float) -> None:
        """Wait up to `deadline_s` seconds until all named switches are connected (and have the
        table-miss rule); raise ControllerError naming the ones that never connected.

        Names the config does not know fail at once (404): waiting for them could never succeed.
        """
        wanted = list(dict.fromkeys(switches))
        end = time.monotonic() + deadline_s
        last_error: ControllerError | None = None
        missing = wanted
        while True:
            try:
                state = {s["name"]: s["connected"] for s in self.switches()}
                last_error = None
                unknown = [name for name in wanted if name not in state]
                if unknown:
                    raise ControllerError(404, f"switch(es) not in the controller's config: {', '.join(unknown)} "
                                               f"(configured: {', '.join(state) or 'none'})", "GET", "/switches")
                missing = [name for name in wanted if not state[name]]
                if not missing:
                    return
            except ControllerUnreachable as exc:
                last_error = exc
            if time.monotonic() >= end:
                break
            time.sleep(POLL_INTERVAL_S)
        if last_error is not None:
            raise ControllerError(None, f"switch(es) never connected: {', '.join(missing)} within {deadline_s:g} s; "
                                        f"last API error: {last_error}")
        raise ControllerError(503, f"switch(es) never connected within {deadline_s:g} s: {', '.join(missing)}")

    def wait_event(self, since: int, deadline_s: float, predicate: Callable[[dict[str, Any]], bool] | None = None,
                   **fields: Any) -> dict[str, Any]:
        """Long-poll until an event with seq >= since matches `fields` (and `predicate`); return it.

        Raises ControllerError naming what was awaited and the events that did arrive instead.
        """
        end = time.monotonic() + deadline_s
        seen: list[dict[str, Any]] = []
        cursor = since
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            batch = self.events(cursor, timeout=min(remaining, 30.0))
            for event in batch["events"]:
                if all(event.get(k) == v for k, v in fields.items()) and (predicate is None or predicate(event)):
                    return event
                seen.append(event)
            cursor = batch["next"]
        shown = "; ".join(json.dumps(e, sort_keys=True) for e in seen[-10:]) or "none"
        raise ControllerError(None, f"no event matching {fields or ''}{' + predicate' if predicate else ''} "
                                    f"within {deadline_s:g} s (events seen since {since}: {shown})")
