"""The commands every IOS-like device has, whatever its kind: privilege (`enable`, `disable`),
session (`terminal ...`, `exit`), the common show commands, config persistence (`write`, `copy`,
`erase`, `reload`) and global config (hostname, secrets, users, logging, lines).

They live in a mixin of `BaseDevice` so the device module keeps to state and lifecycle; handlers
use the device's attributes through `self`, like every kind's own commands.
"""
from __future__ import annotations

import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import secrets
from .cli.context import Ask, Confirm, Context
from .cli.tree import command
from .eventlog import clock_text, date_text, uptime_text

NVRAM_SIZE = 262144


@dataclass
class User:
    name: str
    privilege: int = 1
    kind: str = "secret"          # "secret" (type 5 hash) | "password" (type 0 cleartext)
    value: str = ""

    def render(self) -> str:
        priv = f" privilege {self.privilege}" if self.privilege != 1 else ""
        if self.kind == "secret":
            return f"username {self.name}{priv} secret 5 {self.value}"
        return f"username {self.name}{priv} password 0 {self.value}"


@dataclass
class LineConfig:
    """`line con 0` / `line vty 0 4` settings. `login` is None (no login), "local" (username and
    password from the user table) - a bare `login` is treated as "local" too."""

    first: int = 0
    last: int = 0
    exec_timeout: tuple[int, int] = (10, 0)
    login: str | None = None
    logging_synchronous: bool = False
    privilege: int = 1
    transport_input: str | None = None


class CommonCommands:
    """Mixin: see the module docstring. Relies on BaseDevice's attributes and methods."""

    if TYPE_CHECKING:  # what the handlers use from BaseDevice
        name: str
        hostname: str
        version: str
        kind: str
        boot_time: float
        last_reload_reason: str
        enable_secret: tuple[int, str] | None
        users: dict[str, User]
        lines: dict[str, LineConfig]
        logging_console: bool
        logging_buffered: int | None
        domain_lookup: bool
        sessions: list[Any]
        log: Any

    # ================================================================== commands: exec
    @command("exec", "enable", priv=0, help={"enable": "Turn on privileged commands"})
    def cmd_enable(self, ctx: Context) -> Generator[Any, Any, None] | None:
        s = ctx.session
        if s is None or s.privilege >= 15:
            return None
        return self._enable_dialog(ctx)

    def _enable_dialog(self, ctx: Context) -> Generator[Any, Any, None]:
        s = ctx.session
        if self.enable_secret is None:
            s.privilege = 15
            return
        for _ in range(3):
            pw = yield Ask("Password: ", echo=False)
            if self.check_enable(pw):
                s.privilege = 15
                return
        ctx.print("% Bad secrets")
        ctx.print("")

    @command("exec", "disable", priv=1, help={"disable": "Turn off privileged commands"})
    def cmd_disable(self, ctx: Context) -> None:
        if ctx.session is not None:
            ctx.session.privilege = 1

    @command("exec", "exit", priv=0, help={"exit": "Exit from the EXEC"})
    @command("exec", "logout", priv=0, help={"logout": "Exit from the EXEC"})
    @command("exec", "quit", priv=0, help={"quit": "Exit from the EXEC"})
    def cmd_logout(self, ctx: Context) -> None:
        if ctx.session is not None:
            ctx.session.logout()

    @command("exec", "terminal length <lines:int:0-512>", priv=0,
             help={"length": "Set number of lines on a screen", "lines": "Number of lines on screen (0 for no pausing)"})
    def cmd_terminal_length(self, ctx: Context, lines: int) -> None:
        if ctx.session is not None:
            ctx.session.set_terminal(length=lines)

    @command("exec", "terminal no length", priv=0, help={"no": "Negate a command or set its defaults"})
    def cmd_terminal_no_length(self, ctx: Context) -> None:
        if ctx.session is not None:
            ctx.session.set_terminal(length=24)

    @command("exec", "terminal width <chars:int:0-512>", priv=0,
             help={"width": "Set width of the display terminal", "chars": "Number of characters on a screen line"})
    def cmd_terminal_width(self, ctx: Context, chars: int) -> None:
        if ctx.session is not None:
            ctx.session.set_terminal(width=chars)

    @command("exec", "terminal monitor", priv=1, help={"monitor": "Copy debug output to the current terminal line"})
    @command("exec", "terminal no monitor", priv=1, no=True)
    def cmd_terminal_monitor(self, ctx: Context, no: bool = False) -> None:
        if ctx.session is not None:
            ctx.session.monitor = not no

    @command("exec", "show privilege", priv=1, help={"privilege": "Show current privilege level"})
    def cmd_show_privilege(self, ctx: Context) -> None:
        ctx.print(f"Current privilege level is {ctx.privilege}")

    @command("exec", "show clock", priv=1, help={"clock": "Display the system clock"})
    def cmd_show_clock(self, ctx: Context) -> None:
        ctx.print(clock_text(time.time()))

    @command("exec", "show history", priv=1, help={"history": "Display the session command history"})
    def cmd_show_history(self, ctx: Context) -> None:
        if ctx.session is not None:
            for h in ctx.session.history:
                ctx.print(f"  {h}")

    @command("exec", "show users", priv=1, help={"users": "Display information about terminal lines"})
    @command("exec", "systat", priv=1, help={"systat": "Display information about terminal lines"})
    def cmd_show_users(self, ctx: Context) -> None:
        ctx.print("    Line       User       Host(s)              Idle       Location")
        now = time.time()
        for i, s in enumerate(self.sessions):
            idle = int(now - s.last_input)
            mark = "*" if s is ctx.session else " "
            num = 0 if s.line_name.startswith("con") else 2 + int(s.line_name.split()[1])
            ctx.print(f"{mark}{num:>3} {s.line_name:<9} {s.user or '':<10} {'idle':<20} "
                      f"{idle // 3600:02}:{idle // 60 % 60:02}:{idle % 60:02} {s.peer}".rstrip())
        ctx.print("")
        ctx.print("  Interface    User               Mode         Idle     Peer Address")
        ctx.print("")

    @command("exec", "show version", priv=1, help={"version": "System hardware and software status"})
    def cmd_show_version(self, ctx: Context) -> None:
        up = time.time() - self.boot_time
        bt = time.gmtime(self.boot_time)
        compiled = time.strftime("%a %d-%b-%y %H:%M", bt)
        n_intf = len(self.interface_names("config"))
        lines = [
            f"twin IOS Software, TWIN Software (TWIN-{self.kind.upper()}-M), Version {self.version}, "
            "RELEASE SOFTWARE (fc1)",
            "Technical Support: see the twin project documentation (emulated device, not Cisco software)",
            "Copyright (c) 2026 by the twin project",
            f"Compiled {compiled} by twin",
            "",
            "ROM: System Bootstrap, Version 15.0(1r)M16, RELEASE SOFTWARE (fc1)",
            "",
            f"{self.hostname} uptime is {uptime_text(up)}",
            f"System returned to ROM by {self.last_reload_reason.lower()} at {date_text(self.boot_time)}",
            f"System restarted at {date_text(self.boot_time)}",
            f'System image file is "flash0:{self.image_name()}"',
            "Last reload type: Normal Reload",
            f"Last reload reason: {self.last_reload_reason}",
            "",
            *self.version_hardware_lines(),
            f"{n_intf} Ethernet interfaces",
            "256K bytes of non-volatile configuration memory.",
            "",
            "Configuration register is 0x2102",
        ]
        for ln in lines:
            ctx.print(ln)

    @command("exec", "show logging", priv=15, help={"logging": "Show the contents of logging buffers"})
    def cmd_show_logging(self, ctx: Context) -> None:
        n = self.log.logged
        console = (f"level debugging, {n} messages logged, xml disabled,\n                     filtering disabled"
                   if self.logging_console else "disabled")
        ctx.print("Syslog logging: enabled (0 messages dropped, 0 messages rate-limited, 0 flushes, "
                  "0 overruns, xml disabled, filtering disabled)")
        ctx.print("")
        ctx.print("No Active Message Discriminator.")
        ctx.print("")
        ctx.print("")
        ctx.print("No Inactive Message Discriminator.")
        ctx.print("")
        ctx.print("")
        ctx.print(f"    Console logging: {console}")
        ctx.print("    Monitor logging: level debugging, 0 messages logged, xml disabled,\n"
                  "                     filtering disabled")
        ctx.print(f"    Buffer logging:  level debugging, {n} messages logged, xml disabled,\n"
                  "                    filtering disabled")
        ctx.print("    Exception Logging: size (4096 bytes)")
        ctx.print("    Count and timestamp logging messages: disabled")
        ctx.print("    Persistent logging: disabled")
        ctx.print("")
        ctx.print("No active filter modules.")
        ctx.print("")
        ctx.print("    Trap logging: level informational, 0 message lines logged")
        ctx.print("        Logging Source-Interface:       VRF Name:")
        ctx.print("")
        ctx.print(f"Log Buffer ({self.logging_buffered or 4096} bytes):")
        ctx.print("")
        for line in self.log.buffer:
            ctx.print(line)

    @command("exec", "clear logging", priv=15, help={"clear": "Reset functions", "logging": "Clear logging buffer"})
    def cmd_clear_logging(self, ctx: Context) -> Generator[Any, Any, None]:
        ok = yield Confirm("Clear logging buffer [confirm]")
        if ok:
            self.log.clear()

    @command("exec", "show running-config", priv=15,
             help={"running-config": "Current operating configuration"})
    @command("exec", "write terminal", priv=15, help={"terminal": "Write to terminal"})
    def cmd_show_running(self, ctx: Context) -> None:
        ctx.print(self.running_config().rstrip("\n"))

    @command("exec", "show startup-config", priv=15, help={"startup-config": "Contents of startup configuration"})
    def cmd_show_startup(self, ctx: Context) -> None:
        text = self.startup_config()
        if text is None:
            ctx.print("startup-config is not present")
            return
        ctx.print(f"Using {len(text)} out of {NVRAM_SIZE} bytes")
        ctx.print(text.rstrip("\n"))

    @command("exec", "configure terminal", priv=15,
             help={"configure": "Enter configuration mode", "terminal": "Configure from the terminal"})
    def cmd_configure_terminal(self, ctx: Context) -> None:
        ctx.print("Enter configuration commands, one per line.  End with CNTL/Z.")
        ctx.enter("config")
        if ctx.session is not None:
            self.config_session_started(ctx.session)

    @command("exec", "configure", priv=15)
    def cmd_configure(self, ctx: Context) -> Generator[Any, Any, None]:
        ans = yield Ask("Configuring from terminal, memory, or network [terminal]? ")
        if ans.strip() and not "terminal".startswith(ans.strip().lower()):
            ctx.print("?Must be \"terminal\", \"memory\" or \"network\"")
            return
        self.cmd_configure_terminal(ctx)

    def _save(self, ctx: Context) -> None:
        ctx.print("Building configuration...")
        try:
            self.save_startup()
            ctx.print("[OK]")
        except OSError as exc:
            ctx.print(f"%Error writing nvram:startup-config ({exc.strerror})")

    @command("exec", "write", priv=15)
    @command("exec", "write memory", priv=15, help={"memory": "Write to NV memory"})
    def cmd_write_memory(self, ctx: Context) -> None:
        self._save(ctx)

    @command("exec", "copy running-config startup-config", priv=15,
             help={"running-config": "Copy from current system configuration",
                   "startup-config": "Copy to startup configuration"})
    def cmd_copy_run_start(self, ctx: Context) -> Generator[Any, Any, None]:
        dest = (yield Ask("Destination filename [startup-config]? ")).strip()
        if dest and dest not in ("startup-config", "nvram:startup-config"):
            ctx.print(f"%Error opening nvram:{dest} (Permission denied)")
            return
        self._save(ctx)

    @command("exec", "copy startup-config running-config", priv=15,
             help={"startup-config": "Copy from startup configuration",
                   "running-config": "Update (merge with) current system configuration"})
    def cmd_copy_start_run(self, ctx: Context) -> Generator[Any, Any, None]:
        dest = (yield Ask("Destination filename [running-config]? ")).strip()
        if dest and dest != "running-config":
            ctx.print(f"%Error opening {dest} (Permission denied)")
            return
        text = self.startup_config()
        if text is None:
            ctx.print("%Error opening nvram:startup-config (No such file or directory)")
            return
        t0 = time.time()
        self.load_config(text, source="copy")
        self.apply_all()
        dt = max(time.time() - t0, 0.001)
        ctx.print(f"{len(text)} bytes copied in {dt:.3f} secs ({int(len(text) / dt)} bytes/sec)")
        if ctx.session is not None:
            self.syslog(f"%SYS-5-CONFIG_I: Configured from memory {self._where(ctx.session)}")
        self.publish("config-changed", user=ctx.user, transport=ctx.transport, peer=ctx.peer)

    @command("exec", "write erase", priv=15, help={"erase": "Erase NV memory"})
    @command("exec", "erase startup-config", priv=15,
             help={"erase": "Erase a filesystem", "startup-config": "Erase contents of configuration memory"})
    def cmd_erase(self, ctx: Context) -> Generator[Any, Any, None]:
        ok = yield Confirm("Erasing the nvram filesystem will remove all configuration files! Continue? [confirm]")
        if not ok:
            return
        self.erase_startup()
        ctx.print("[OK]")
        ctx.print("Erase of nvram: complete")
        self.syslog("%SYS-7-NV_BLOCK_INIT: Initialized the geometry of nvram")

    @command("exec", "reload", priv=15, help={"reload": "Halt and perform a cold restart"})
    def cmd_reload(self, ctx: Context) -> Generator[Any, Any, None]:
        if self.config_modified():
            while True:
                ans = (yield Ask("System configuration has been modified. Save? [yes/no]: ")).strip().lower()
                if ans in ("y", "yes"):
                    self._save(ctx)
                    break
                if ans in ("n", "no"):
                    break
                ctx.print("% Please answer 'yes' or 'no'.")
        ok = yield Confirm("Proceed with reload? [confirm]")
        if not ok:
            return
        who = self._where(ctx.session) if ctx.session is not None else "by unknown"
        self.syslog(f"%SYS-5-RELOAD: Reload requested {who}. Reload Reason: Reload Command.")
        self.publish("reload", user=ctx.user, transport=ctx.transport, peer=ctx.peer)
        self.request_reload(ctx.session)

    # ================================================================== commands: config
    @command("*config", "end", help={"end": "Exit from configure mode"})
    def cmd_end(self, ctx: Context) -> None:
        ctx.end()
        if ctx.session is not None and ctx.modes is ctx.session.modes:
            self.config_session_ended(ctx.session)

    @command("*config", "exit", help={"exit": "Exit from configure mode"})
    def cmd_exit(self, ctx: Context) -> None:
        ctx.exit()
        if ctx.session is not None and ctx.modes is ctx.session.modes and not ctx.modes.in_config:
            self.config_session_ended(ctx.session)

    @command("config", "version <ver:word>", hidden=True)
    def cmd_version(self, ctx: Context, ver: str) -> None:
        """Accepted so a printed config feeds back; the software version is the emulator's."""

    @command("config", "hostname <name:word>", help={"name": "This system's network name"})
    @command("config", "no hostname", no=True)
    def cmd_hostname(self, ctx: Context, name: str = "", no: bool = False) -> None:
        if no:
            self.hostname = "Router"
        elif not re.fullmatch(r"[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", name):
            ctx.print("% Hostname contains one or more illegal characters.")
            return
        else:
            self.hostname = name
        self.hostname_changed()

    def hostname_changed(self) -> None:
        """Kinds with real effects apply the hostname to the system."""

    @command("config", "enable secret [0] <secret:word>",
             help={"secret": "Assign the privileged level secret", "0": "Specifies an UNENCRYPTED password will follow"})
    @command("config", "enable secret 5 <hashed:word>", help={"5": "Specifies a MD5 HASHED secret will follow"})
    @command("config", "no enable secret", no=True)
    def cmd_enable_secret(self, ctx: Context, secret: str = "", hashed: str = "", no: bool = False) -> None:
        if no:
            self.enable_secret = None
        elif hashed:
            if not secrets.is_type5(hashed):
                ctx.print("ERROR: The secret you entered is not a valid encrypted secret.")
                return
            self.enable_secret = (5, hashed)
        else:
            self.enable_secret = (5, secrets.hash_secret(secret))

    @command("config", "username <name:word> [privilege <level:int:0-15>] secret [0] <secret:word>",
             help={"name": "User name", "privilege": "Set user privilege level", "level": "User privilege level",
                   "secret": "Specify the secret for the user", "0": "Specifies an UNENCRYPTED secret will follow"})
    @command("config", "username <name:word> [privilege <level:int:0-15>] secret 5 <hashed:word>",
             help={"5": "Specifies a MD5 HASHED secret will follow"})
    @command("config", "username <name:word> [privilege <level:int:0-15>] password [0] <password:word>",
             help={"password": "Specify the password for the user",
                   "0": "Specifies an UNENCRYPTED password will follow"})
    def cmd_username(self, ctx: Context, name: str, level: int | None = None, secret: str | None = None,
                     hashed: str | None = None, password: str | None = None) -> None:
        if hashed is not None and not secrets.is_type5(hashed):
            ctx.print("ERROR: The secret you entered is not a valid encrypted secret.")
            return
        priv = level if level is not None else 1
        if hashed is not None:
            self.users[name] = User(name, priv, "secret", hashed)
        elif secret is not None:
            self.users[name] = User(name, priv, "secret", secrets.hash_secret(secret))
        else:
            self.users[name] = User(name, priv, "password", password or "")

    @command("config", "no username <name:word>")
    def cmd_no_username(self, ctx: Context, name: str) -> None:
        self.users.pop(name, None)

    @command("config", "logging console", help={"console": "Set console logging parameters"})
    @command("config", "no logging console", no=True)
    def cmd_logging_console(self, ctx: Context, no: bool = False) -> None:
        self.logging_console = not no

    @command("config", "logging buffered <size:int:4096-2147483647>",
             help={"buffered": "Set buffered logging parameters", "size": "Logging buffer size"})
    @command("config", "no logging buffered", no=True)
    def cmd_logging_buffered(self, ctx: Context, size: int | None = None, no: bool = False) -> None:
        self.logging_buffered = None if no else size

    @command("config", "ip domain-lookup", help={"domain-lookup": "Enable IP Domain Name System hostname translation"})
    @command("config", "ip domain lookup", help={"domain": "IP DNS Resolver", "lookup": "Enable IP Domain Name System hostname translation"})
    @command("config", "no ip domain-lookup", no=True)
    @command("config", "no ip domain lookup", no=True)
    def cmd_domain_lookup(self, ctx: Context, no: bool = False) -> None:
        self.domain_lookup = not no

    @command("config", "line console <first:int:0-0>", kind="con",
             help={"console": "Primary terminal line", "first": "First Line number"})
    @command("config", "line vty <first:int:0-15> [<last:int:0-15>]", kind="vty",
             help={"vty": "Virtual terminal", "first": "First Line number", "last": "Last Line number"})
    def cmd_line(self, ctx: Context, kind: str, first: int, last: int | None = None) -> None:
        if kind == "vty":
            lc = self.lines["vty"]
            lc.first, lc.last = first, last if last is not None else first
        ctx.enter("config-line", line=kind)

    # config-line
    @command("config-line", "exec-timeout <minutes:int:0-35791> [<seconds:int:0-2147483>]",
             help={"exec-timeout": "Set the EXEC timeout", "minutes": "Timeout in minutes",
                   "seconds": "Timeout in seconds"})
    @command("config-line", "no exec-timeout", no=True)
    def cmd_exec_timeout(self, ctx: Context, minutes: int = 10, seconds: int | None = None, no: bool = False) -> None:
        """Stored and shown; sessions are not timed out (automation sets 0 0 anyway)."""
        lc = self.lines[ctx.vars["line"]]
        lc.exec_timeout = (10, 0) if no else (minutes, seconds or 0)

    @command("config-line", "login [local]", help={"login": "Enable password checking",
                                                    "local": "Local password checking"})
    @command("config-line", "no login", no=True)
    def cmd_login(self, ctx: Context, no: bool = False) -> None:
        self.lines[ctx.vars["line"]].login = None if no else "local"

    @command("config-line", "logging synchronous",
             help={"logging": "Modify message logging facilities", "synchronous": "Synchronized message output"})
    @command("config-line", "no logging synchronous", no=True)
    def cmd_logging_sync(self, ctx: Context, no: bool = False) -> None:
        self.lines[ctx.vars["line"]].logging_synchronous = not no

    @command("config-line", "privilege level <level:int:0-15>",
             help={"privilege": "Change privilege level for line", "level": "Assign default privilege level for line"})
    @command("config-line", "no privilege level", no=True)
    def cmd_line_privilege(self, ctx: Context, level: int = 1, no: bool = False) -> None:
        self.lines[ctx.vars["line"]].privilege = 1 if no else level

    @command("config-line", "transport input <protocols:line>",
             help={"transport": "Define transport protocols for line", "input": "Define which protocols to use when connecting to the terminal server",
                   "protocols": "all, none, ssh, telnet"})
    @command("config-line", "no transport input", no=True)
    def cmd_transport_input(self, ctx: Context, protocols: str = "", no: bool = False) -> None:
        words = protocols.lower().split()
        if no:
            self.lines[ctx.vars["line"]].transport_input = None
            return
        if not words or any(w not in ("all", "none", "ssh", "telnet") for w in words):
            ctx.print("% Invalid transport protocol: use all, none, ssh or telnet")
            return
        self.lines[ctx.vars["line"]].transport_input = " ".join(dict.fromkeys(words))

