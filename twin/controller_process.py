"""Start, watch and stop a lab's controller process (`python -m controllers.run`).

Each lab runs its own controller as a separate process because os-ken's native hub cannot be shut
down in-process (its threads are not daemons and cannot be killed). These helpers implement the
lab rules around that: the OpenFlow port and the API stay on 127.0.0.1 / a Unix socket, readiness
is polled with deadlines (never fixed sleeps), and only a process that is verifiably our controller
is ever signalled, by PID.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from twin.controller_client import ControllerClient, ControllerError

REPO_ROOT = Path(__file__).resolve().parent.parent
CMDLINE_MARK = "controllers.run"
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 30

# "OFPErrorMsg" but not os-ken's debug mentions of the event class "EventOFPErrorMsg".
_PROBLEM = re.compile(r"Traceback \(most recent call last\)|(?<!Event)OFPErrorMsg|\bERROR\b|\bCRITICAL\b")


class ControllerStartError(RuntimeError):
    """The controller did not come up; the message says which step and shows the log's tail."""


def config_path_for(log: Path) -> Path:
    """Where start_controller writes the config: next to the log (`ctl.log` -> `ctl.config.json`)."""
    return log.with_name(f"{log.stem}.config.json")


def start_controller(of_port: int, api_socket: Path, config: dict, log: Path, python: str = sys.executable,
                     env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start a controller; returns at once (use wait_listening before connecting switches).

    The config JSON is written next to the log so a failed run can be reproduced by hand. The
    process gets its own session (a signal to the test's process group does not hit it, and it
    does not hold the terminal), and its stdout/stderr are appended to the log, so even a crash
    before logging is set up leaves evidence there. `env` adds variables (e.g. PYTHONPATH for an
    extra app module).
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    cfg_path = config_path_for(log)
    cfg_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    child_env = dict(os.environ)
    child_env.update(env or {})
    pythonpath = [str(REPO_ROOT)] + [p for p in child_env.get("PYTHONPATH", "").split(os.pathsep) if p]
    child_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(pythonpath))
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env["OSKEN_HUB_TYPE"] = "native"
    argv = [python, "-m", CMDLINE_MARK, "--of-port", str(of_port), "--api-socket", str(api_socket),
            "--config", str(cfg_path), "--log", str(log)]
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=child_env,
                                cwd=str(REPO_ROOT), start_new_session=True, close_fds=True)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(log: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file (or a note that there is none)."""
    if log is None:
        return "(no log given)"
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log {log} unreadable: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {log} is empty)"


def wait_listening(port: int, deadline_s: float, api_socket: Path | None = None, log: Path | None = None,
                   proc: subprocess.Popen | None = None) -> None:
    """Wait up to `deadline_s` seconds until the OpenFlow port accepts connections and (if given)
    the API socket answers /health.

    Raises ControllerStartError naming what never came up, with the log's tail. If `proc` is given
    and exits meanwhile, fails at once with its exit code instead of waiting out the deadline.
    """
    end = time.monotonic() + deadline_s
    client = ControllerClient(api_socket, timeout=2) if api_socket is not None else None
    of_up = api_up = False
    api_error = "not tried"
    while True:
        if proc is not None and proc.poll() is not None:
            raise ControllerStartError(f"controller exited with code {proc.returncode} before it was ready "
                                       f"(OpenFlow port {port} {'up' if of_up else 'never came up'}); "
                                       f"log {log}:\n{log_tail(log)}")
        of_up = of_up or _port_open(port)
        if client is not None and not api_up:
            try:
                api_up = bool(client.health().get("ok"))
            except ControllerError as exc:
                api_error = str(exc)
        if of_up and (client is None or api_up):
            return
        if time.monotonic() >= end:
            break
        time.sleep(POLL_INTERVAL_S)
    missing = []
    if not of_up:
        missing.append(f"OpenFlow port 127.0.0.1:{port} never accepted a connection")
    if client is not None and not api_up:
        missing.append(f"API socket {api_socket} never answered /health ({api_error})")
    raise ControllerStartError(f"controller not ready within {deadline_s:g} s: {'; '.join(missing)}; "
                               f"log {log}:\n{log_tail(log)}")


def _is_our_controller(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return CMDLINE_MARK in cmdline.replace(b"\0", b" ").decode("utf-8", "replace")


def _reap_or_gone(pid: int) -> bool:
    """True once the process no longer runs (reaping it if it is our child)."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
        # Our child: only waitpid knows. /proc may show "Z" for the thread-group leader while the
        # other threads are still exiting, and the process is not reapable yet.
        return done == pid
    except ChildProcessError:
        pass  # not our child: look at /proc
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat_text.rsplit(")", 1)[-1].split()[0]
    return state in ("Z", "X")


def stop_controller(pid: int, grace_s: float = 3) -> bool:
    """Stop a controller: SIGTERM, then SIGKILL if it is still running after `grace_s` seconds.

    Only signals `pid` if /proc/PID/cmdline still names `controllers.run`, so a PID that was
    recycled by an unrelated process is never killed. Returns True if a controller was stopped,
    False if there was none under that PID (already gone, or not a controller).
    """
    if pid <= 1 or _reap_or_gone(pid) or not _is_our_controller(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        if _reap_or_gone(pid):
            return True
        time.sleep(POLL_INTERVAL_S)
    if _is_our_controller(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
    end = time.monotonic() + 5
    while time.monotonic() < end:
        if _reap_or_gone(pid):
            return True
        time.sleep(POLL_INTERVAL_S)
    raise RuntimeError(f"controller pid {pid} did not exit even after SIGKILL")


def controller_log_problems(log: Path) -> list[str]:
    """Problems in a controller log: ERROR/CRITICAL lines, OFPErrorMsg lines, and tracebacks.

    A traceback is returned as one entry holding the whole block (up to the exception line), so
    the failure message of a test shows what went wrong without opening the log. A missing log
    is not a problem (the controller may not have started); an unreadable one is reported.
    """
    try:
        lines = Path(log).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"cannot read controller log {log}: {exc}"]
    problems: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "Traceback (most recent call last)" in line:
            block = [line]
            i += 1
            # frames are indented; the block ends with the first unindented line (the exception)
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                block.append(lines[i])
                i += 1
            if i < len(lines):
                block.append(lines[i])
                i += 1
            problems.append("\n".join(block))
            continue
        if _PROBLEM.search(line):
            problems.append(line)
        i += 1
    return problems


def dump_flows(bridge: str) -> str:
    """`ovs-ofctl -O OpenFlow13 dump-flows BRIDGE` output (or the error), for failure evidence."""
    try:
        res = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(dump-flows {bridge} failed: {exc})"
    return res.stdout if res.returncode == 0 else f"(dump-flows {bridge} failed: {res.stderr.strip()})"

