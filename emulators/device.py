"""The base of every emulated device: identity, users and secrets, terminal lines, running and
startup config, sessions, the logging buffer and events. The commands every IOS-like device has
come from the `CommonCommands` mixin (common_commands.py).

A device kind subclasses `BaseDevice`, adds its modes to `modes`, declares its commands with the
`@command` decorator and contributes config sections by overriding `config_sections()`; everything a
person can configure must also be printed by `show running-config` in a form the same commands
rebuild, because startup-config is exactly that text fed back through the parser.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import secrets
from .cli.runner import apply_config
from .cli.session import CliSession
from .cli.tree import CommandSet, Mode
from .common_commands import CommonCommands, LineConfig, User
from .eventlog import DeviceLog, date_text

log = logging.getLogger(__name__)

DEFAULT_VERSION = "15.9(3)M4"
LOCAL_PORT = {"ssh": 22, "telnet": 23, "console": 0}
_SECRET_RE = re.compile(r"(\b(?:secret|password|key)\s+(?:[0-9]\s+)?)\S+", re.IGNORECASE)


class BaseDevice(CommonCommands):
    """See the module docstring. Thread-safety: `lock` guards all state; sessions take it for each
    feed, the background ticker for each tick."""

    kind: str = "base"
    modes: tuple[Mode, ...] = (
        Mode("exec", "", None, config=False),
        Mode("config", "(config)#", "exec"),
        Mode("config-line", "(config-line)#", "config"),
    )
    hardware = "TWIN"
    tick_interval = 1.0

    def __init__(self, name: str, *, state_dir: Path, users: dict[str, str], enable_secret: str,
                 version: str | None = None, initial_config: str | None = None, apply: bool = True) -> None:
        self.name = name
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.initial_users = dict(users)
        self.initial_enable_secret = enable_secret
        self.version = version or DEFAULT_VERSION
        self.initial_config = initial_config
        self.apply_enabled = apply
        self.lock = threading.RLock()
        self.log = DeviceLog(name, self.state_dir)
        self.sessions: list[CliSession] = []
        self.on_reload: Callable[[], None] | None = None
        # Set by an asyncio daemon (auto-detected in start()): background work is marshalled onto
        # the loop thread, so transports' write callbacks are only ever called from that thread.
        self.call_soon: Callable[[Callable[[], None]], Any] | None = None
        self.boot_time = time.time()
        self.pending_reload = False
        self.last_reload_reason = "power-on"
        self.config_errors: list[str] = []
        self._config_snapshots: dict[int, str] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._closed = False
        self.reset_config()

    # ------------------------------------------------------------------ command set
    @classmethod
    def command_set(cls) -> CommandSet:
        """The kind's command trees, built once per class from its `@command` methods."""
        cs = cls.__dict__.get("_command_set")
        if cs is None:
            cs = CommandSet.from_class(cls)
            cls._command_set = cs  # type: ignore[attr-defined]
        return cs

    # ------------------------------------------------------------------ config model
    def reset_config(self) -> None:
        """Factory defaults (what an empty startup-config means). Kinds extend it."""
        self.hostname = self.name
        self.enable_secret: tuple[int, str] | None = None
        self.users: dict[str, User] = {}
        self.logging_console = True
        self.logging_buffered: int | None = None
        self.domain_lookup = True
        self.lines: dict[str, LineConfig] = {
            "con": LineConfig(0, 0, login=None),
            "vty": LineConfig(0, 4, login="local"),
        }

    def config_sections(self) -> list[list[str]]:
        """Kind-specific blocks of the running-config, between the users and the lines."""
        return []

    def render_body(self) -> str:
        """The canonical config text (what startup-config holds), `!`-separated blocks, `end`."""
        major = ".".join(re.findall(r"\d+", self.version)[:2]) or self.version
        blocks: list[list[str]] = [[f"version {major}"], [f"hostname {self.hostname}"]]
        logging_block = []
        if self.logging_buffered is not None:
            logging_block.append(f"logging buffered {self.logging_buffered}")
        if not self.logging_console:
            logging_block.append("no logging console")
        blocks.append(logging_block)
        if self.enable_secret is not None:
            t, v = self.enable_secret
            blocks.append([f"enable secret {t} {v}"])
        blocks.append([] if self.domain_lookup else ["no ip domain lookup"])
        blocks.append([self.users[u].render() for u in sorted(self.users)])
        blocks += self.config_sections()
        line_block: list[str] = []
        for kind, label in (("con", "con"), ("vty", "vty")):
            lc = self.lines[kind]
            rng = f"{lc.first}" if kind == "con" else (f"{lc.first} {lc.last}" if lc.last != lc.first else f"{lc.first}")
            line_block.append(f"line {label} {rng}")
            if lc.exec_timeout != (10, 0):
                line_block.append(f" exec-timeout {lc.exec_timeout[0]} {lc.exec_timeout[1]}")
            if lc.privilege != 1:
                line_block.append(f" privilege level {lc.privilege}")
            if lc.logging_synchronous:
                line_block.append(" logging synchronous")
            if lc.login == "local":
                line_block.append(" login local")
            elif kind == "vty":
                line_block.append(" no login")
            if lc.transport_input:
                line_block.append(f" transport input {lc.transport_input}")
        blocks.append(line_block)
        out = ["!"]
        for b in blocks:
            if b:
                out += b + ["!"]
        out.append("end")
        return "\n".join(out) + "\n"

    def running_config(self) -> str:
        """`show running-config` as IOS prints it (LF line ends; sessions send CRLF)."""
        with self.lock:
            body = self.render_body()
        return f"Building configuration...\n\nCurrent configuration : {len(body)} bytes\n{body}"

    def startup_config(self) -> str | None:
        path = self.state_dir / "startup-config"
        try:
            return path.read_text()
        except FileNotFoundError:
            return None

    def config_modified(self) -> bool:
        return self.startup_config() != self.render_body()

    def save_startup(self) -> None:
        """Persist the running config atomically (temp file, fsync, rename), so a crash mid-write
        leaves the previous startup-config intact."""
        body = self.render_body()
        path = self.state_dir / "startup-config"
        tmp = path.with_name(f".startup-config.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:
            dfd = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        self.log.publish("config-saved", bytes=len(body))

    def erase_startup(self) -> None:
        (self.state_dir / "startup-config").unlink(missing_ok=True)
        self.log.publish("config-erased")

    def load_config(self, text: str, *, source: str = "startup") -> list[str]:
        """Apply config text through the command tree; bad lines are logged, not fatal."""
        errors = apply_config(self, text, source=source)
        for e in errors:
            log.warning("%s: config line rejected: %s", self.name, e)
        self.config_errors += errors
        return errors

    def _initial_text(self) -> str:
        """Factory config from the constructor (lab users, enable secret) plus the lab's initial
        config, used while no startup-config exists."""
        lines = []
        if self.initial_enable_secret:
            lines.append(f"enable secret 5 {secrets.hash_secret(self.initial_enable_secret)}")
        for user, pw in self.initial_users.items():
            lines.append(f"username {user} privilege 15 secret 5 {secrets.hash_secret(pw)}")
        return "\n".join(lines) + "\n" + (self.initial_config or "")

    def _load(self) -> None:
        self.reset_config()
        self.config_errors = []
        text = self.startup_config()
        self.load_config(text if text is not None else self._initial_text(), source="startup")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load startup-config (or the initial config), apply it, start watching the system."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and self.call_soon is None:
            self.call_soon = loop.call_soon_threadsafe
        with self.lock:
            self._load()
            self.apply_all()
            self.boot_time = time.time()
            self.syslog("%SYS-5-RESTART: System restarted --")
            self.log.publish("start", version=self.version, kind=self.kind)
        if self.tick_interval and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_loop, name=f"{self.name}-ticker", daemon=True)
            self._ticker.start()

    def restart(self) -> None:
        """What a reload does in-process: every session ends, unsaved changes are lost, the device
        comes back from startup-config."""
        with self.lock:
            for s in list(self.sessions):
                s.close()
            self._load()
            self.apply_all()
            self.boot_time = time.time()
            self.syslog("%SYS-5-RESTART: System restarted --")
            self.log.publish("start", version=self.version, kind=self.kind)

    def close(self) -> None:
        self._stop.set()
        with self.lock:
            self._closed = True
            for s in list(self.sessions):
                s.close()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=5)
        self.shutdown_backend()

    def apply_all(self) -> None:
        """Push the whole config to the system (kinds with real effects override)."""

    def shutdown_backend(self) -> None:
        """Release system resources (netlink sockets...)."""

    def tick(self) -> None:
        """Periodic work on the device's thread (kinds watch the system here)."""

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_interval):
            self.dispatch(self._safe_tick)

    def _safe_tick(self) -> None:
        if self._closed:
            return
        with self.lock:
            try:
                self.tick()
            except Exception:
                log.exception("%s: tick failed", self.name)

    def dispatch(self, fn: Callable[[], None]) -> None:
        """Run `fn` where device work belongs: on the daemon's event loop if there is one."""
        if self.call_soon is not None:
            try:
                self.call_soon(fn)
                return
            except RuntimeError:      # loop closed: the daemon is going away
                return
        fn()

    # ------------------------------------------------------------------ events and logging
    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.log.subscribers.append(callback)

    def publish(self, type: str, **fields: Any) -> dict[str, Any]:
        return self.log.publish(type, **fields)

    def syslog(self, message: str) -> None:
        """Log a message and show it on lines that display logging (console, terminal monitor)."""
        line = self.log.syslog(message)
        self.log.publish("log", message=message)
        for s in list(self.sessions):
            if s.monitor or (s.transport == "console" and self.logging_console):
                s.notify(line)

    # ------------------------------------------------------------------ sessions
    def new_session(self, **kwargs: Any) -> CliSession:
        return CliSession(self, **kwargs)

    def register_session(self, session: CliSession) -> str:
        with self.lock:
            self.sessions.append(session)
            if session.transport == "console":
                return "con 0"
            used = {s.line_name for s in self.sessions if s is not session and hasattr(s, "line_name")}
            n = 0
            while f"vty {n}" in used:
                n += 1
            return f"vty {n}"

    def unregister_session(self, session: CliSession) -> None:
        with self.lock:
            if id(session) in self._config_snapshots:
                self.config_session_ended(session)
            if session in self.sessions:
                self.sessions.remove(session)
                if session.user or session.transport != "console":
                    self.publish("logout", user=session.user, line=session.line_name, peer=session.peer)

    def _where(self, session: CliSession) -> str:
        if session.transport == "console":
            return f"by {session.user} on console" if session.user else "by console"
        line = session.line_name.replace(" ", "")
        return f"by {session.user or 'unknown'} on {line} ({session.peer or '0.0.0.0'})"

    def session_login(self, session: CliSession) -> None:
        if session.user:
            self.syslog(f"%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: {session.user}] "
                        f"[Source: {session.peer or '0.0.0.0'}] [localport: {LOCAL_PORT.get(session.transport, 0)}] "
                        f"at {date_text(time.time())}")
        self.publish("login", user=session.user, transport=session.transport, peer=session.peer,
                     line=session.line_name)

    def login_failed(self, user: str, *, transport: str = "", peer: str = "") -> None:
        self.syslog(f"%SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: {user}] [Source: {peer or '0.0.0.0'}] "
                    f"[localport: {LOCAL_PORT.get(transport, 0)}] [Reason: Login Authentication Failed] "
                    f"at {date_text(time.time())}")
        self.publish("login-failed", user=user, transport=transport, peer=peer)

    def record_command(self, session: CliSession, mode: str, line: str) -> None:
        """Every executed command is an event; config commands also go to the logging buffer.
        Secrets typed in clear are masked, as IOS's config logger does."""
        line = _SECRET_RE.sub(lambda m: m.group(1) + "*****", line)
        self.publish("command", line=line, mode=mode, user=session.user, transport=session.transport,
                     peer=session.peer)
        if self.command_set().modes[mode].config:
            self.log.syslog(f"%PARSER-5-CFGLOG_LOGGEDCMD: User:{session.user or 'console'}  logged command:{line}")

    def command_done(self, session: CliSession, mode: str, line: str, output: list[str]) -> None:
        """After a typed command ran (its output in hand, before the next prompt): a kind that
        mirrors its config elsewhere (a redundant unit's Standby) hooks in here."""

    def prompt_hostname(self) -> str:
        """The name in the prompt (a Standby unit shows `name-stby`)."""
        return self.hostname

    def config_session_started(self, session: CliSession) -> None:
        self._config_snapshots[id(session)] = self.render_body()

    def config_session_ended(self, session: CliSession) -> None:
        before = self._config_snapshots.pop(id(session), None)
        self.syslog(f"%SYS-5-CONFIG_I: Configured from console {self._where(session)}")
        if before is None or before != self.render_body():
            self.publish("config-changed", user=session.user, transport=session.transport, peer=session.peer)

    # ------------------------------------------------------------------ authentication
    def check_password(self, user: str, password: str, *, transport: str = "ssh", peer: str = "") -> bool:
        """Verify a login through the login method list (`aaa authentication login default`; the
        local user table unless a kind adds methods). A method that cannot decide (a RADIUS server
        that does not answer, a user the local table does not know) hands over to the next one, as
        IOS does. This is the one place every transport's login passes through (SSH authenticates
        before a session exists), so a failure is logged here.

        May block on the network: call it without the device lock, off the event loop."""
        verdict: bool | None = None
        method = "none"
        for method in self.login_methods():
            verdict = self.login_method_verdict(method, user, password)
            if verdict is not None:
                break
        ok = bool(verdict)
        if ok:
            self.publish("login-authenticated", user=user, method=method, transport=transport, peer=peer)
        else:
            self.login_failed(user, transport=transport, peer=peer)
        return ok

    def login_methods(self) -> list[str]:
        """The login method list, in order (a kind with a RADIUS client adds "radius")."""
        return ["local"]

    def login_needs_network(self) -> bool:
        """True when a login may wait for a server, so sessions must not check it inline."""
        return any(m != "local" for m in self.login_methods())

    def login_method_verdict(self, method: str, user: str, password: str) -> bool | None:
        """One method's answer: True accept, False reject, None undecided (try the next method)."""
        if method != "local":
            return None
        with self.lock:
            u = self.users.get(user)
        if u is None:
            return None
        return secrets.verify(password, 5 if u.kind == "secret" else 0, u.value)

    def user_privilege(self, user: str) -> int:
        u = self.users.get(user)
        return u.privilege if u else 1

    def check_enable(self, password: str) -> bool:
        if self.enable_secret is None:
            return True
        t, v = self.enable_secret
        return secrets.verify(password, t, v)

    def line_config(self, kind: str) -> LineConfig:
        return self.lines[kind]

    def interface_names(self, purpose: str) -> list[str]:
        """Interfaces the `interface` argument type accepts ("config": configurable ones, "show": all)."""
        return []

    # ------------------------------------------------------------------ reload
    def request_reload(self, session: CliSession | None) -> None:
        """Reload after the current command: sessions end, then `on_reload` (the daemon) or an
        in-process restart from startup-config."""
        self.pending_reload = True
        self.last_reload_reason = "Reload Command"

    def perform_reload(self) -> None:
        self.pending_reload = False
        for s in list(self.sessions):
            s.close()
        if self.on_reload is not None:
            self.on_reload()
        else:
            self.restart()

    # ------------------------------------------------------------------ show version helpers
    def serial_number(self) -> str:
        return "TWN" + format(zlib.crc32(self.name.encode()) & 0xFFFFFFFF, "08X")

    def image_name(self) -> str:
        """IOS image naming: 15.9(3)M4 -> twin-router-mz.159-3.M4.bin."""
        m = re.fullmatch(r"(\d+)\.(\d+)\((\w+)\)(\w*)", self.version)
        ver = f"{m[1]}{m[2]}-{m[3]}.{m[4]}".rstrip(".") if m else re.sub(r"[^\w.-]", "", self.version)
        return f"twin-{self.kind}-mz.{ver}.bin"

    def version_hardware_lines(self) -> list[str]:
        return [f"cisco {self.hardware}-{self.kind.upper()} (twin-emulator) processor (revision 1.0) "
                "with 1048576K/65536K bytes of memory.",
                f"Processor board ID {self.serial_number()}"]
