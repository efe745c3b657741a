"""The command tree's parser: abbreviations, ambiguity, caret position, incomplete commands, `?`
help, Tab completion, modes and `do` - all as IOS prints them."""
from __future__ import annotations

from pathlib import Path

import pytest

from emulators.cli import Context, Mode, command
from emulators.cli.parser import parse
from emulators.cli.testing import ScriptedTerminal
from emulators.cli.tree import CommandSet, expand
from emulators.device import BaseDevice
from emulators.router import Router

pytestmark = pytest.mark.unit


def router(tmp_path: Path, **kw) -> Router:
    d = Router("r1", state_dir=tmp_path, users={"admin": "pw"}, enable_secret="en", apply=False, **kw)
    d.tick_interval = 0
    d.start()
    return d


@pytest.fixture
def term(tmp_path: Path) -> ScriptedTerminal:
    t = ScriptedTerminal(router(tmp_path), user="admin", transport="ssh", peer="172.20.0.1")
    t.read()
    t.cmd("terminal length 0")
    return t


def caret_col(out: str) -> int:
    line = next(ln for ln in out.split("\r\n") if ln.strip() == "^")
    return line.index("^")


# ---------------------------------------------------------------- abbreviations
@pytest.mark.parametrize("line", ["sh run", "show running-config", "sh runn", "SH RUN", "  sh   run  "])
def test_abbreviations_reach_the_same_command(term, line):
    out = term.output(line)
    assert out.startswith("Building configuration...") and "hostname r1" in out


def test_conf_t_int_wr_mem(term):
    assert term.cmd("conf t").endswith("r1(config)#")
    assert term.cmd("int eth1").endswith("r1(config-if)#")
    assert term.cmd("ip add 10.1.1.1 255.255.255.0").endswith("r1(config-if)#")
    assert term.cmd("int e2").endswith("r1(config-if)#"), "IOS-style type abbreviation + number"
    assert term.cmd("end").endswith("r1#")
    out = term.output("wr mem")
    assert out == "Building configuration...\r\n[OK]\r\n"
    assert "ip address 10.1.1.1 255.255.255.0" in (term.session.device.startup_config() or "")


# ---------------------------------------------------------------- errors
def test_invalid_input_caret_under_the_bad_word_counting_the_prompt(term):
    out = term.cmd("show verzion")
    lines = out.split("\r\n")
    assert lines[0] == "show verzion"
    assert lines[1] == " " * len("r1#show ") + "^"
    assert lines[2] == "% Invalid input detected at '^' marker."
    assert lines[3] == "" and lines[4] == "r1#"


def test_caret_in_config_mode_and_for_a_bad_argument(term):
    term.cmd("conf t")
    out = term.cmd("logging buffered 12")
    assert caret_col(out) == len("r1(config)#logging buffered ")
    out = term.cmd("interface eth9")
    assert caret_col(out) == len("r1(config)#interface "), "missing interface: caret under its name"
    term.cmd("interface eth1")
    out = term.cmd("ip address 10.0.0.1 255.255.255.0 junk")
    assert caret_col(out) == len("r1(config-if)#ip address 10.0.0.1 255.255.255.0 ")


def test_caret_on_the_first_word(term):
    out = term.cmd("foo")
    assert caret_col(out) == len("r1#")


def test_incomplete_command(term):
    assert term.output("show") == "% Incomplete command.\r\n\r\n"
    assert term.output("show ip") == "% Incomplete command.\r\n\r\n"
    term.cmd("conf t")
    assert term.output("hostname") == "% Incomplete command.\r\n\r\n"


def test_ambiguous_command_text(term):
    term.cmd("conf t")
    assert term.output("i") == '% Ambiguous command:  "i"\r\n'
    term.cmd("end")
    assert term.output("c") == '% Ambiguous command:  "c"\r\n'
    assert term.output("s") == '% Ambiguous command:  "s"\r\n', "show, systat: as on IOS"
    assert term.output("show i") == '% Ambiguous command:  "show i"\r\n'


def test_user_exec_cannot_see_privileged_commands(tmp_path):
    t = ScriptedTerminal(router(tmp_path))       # console: no login, user exec
    assert t.read() == "\r\nr1>"
    out = t.cmd("show running-config")
    assert caret_col(out) == len("r1>show ")
    assert "configure" not in t.feed("?")
    t.read()


# ---------------------------------------------------------------- help
def test_help_lists_next_words_with_cr_and_pipe(term):
    out = term.feed("show version ?")
    lines = out.split("\r\n")
    assert lines[0] == "show version ?"
    assert lines[1:3] == ["  |     Output modifiers", "  <cr>"]
    assert lines[3] == "" and lines[4] == "r1#show version "
    assert term.cmd("").endswith("r1#")


def test_help_on_second_level(term):
    out = term.feed("show ip ?")
    assert "  interface  IP interface status and configuration" in out
    assert "  route      IP routing table" in out
    assert out.endswith("\r\n\r\nr1#show ip ")
    term.feed("\x15")   # Ctrl-U
    term.cmd("")


def test_help_after_partial_word(term):
    out = term.feed("sh?")
    assert out == "sh?\r\nshow  \r\n\r\nr1#sh"
    term.feed("\x15\r")
    out = term.feed("co?")
    assert out.split("\r\n")[1] == "configure  copy  "
    term.feed("\x15\r")


def test_help_for_arguments_shows_types_and_ranges(term):
    out = term.feed("terminal length ?")
    assert "  <0-512>  Number of lines on screen (0 for no pausing)" in out
    term.feed("\x15\r")
    term.cmd("conf t")
    out = term.feed("ip route ?")
    assert "  A.B.C.D  Destination prefix" in out
    term.feed("\x15\r")
    out = term.feed("interface ?")
    assert "  eth1" in out and "mgmt0" not in out, "only configurable interfaces are offered"
    term.feed("\x15\r")


def test_help_root_and_unrecognized(term):
    out = term.feed("?")
    assert "  configure" in out and "  show" in out and "  enable" in out
    term.cmd("")
    out = term.feed("xyz ?")
    assert "% Unrecognized command" in out
    term.feed("\x15\r")


# ---------------------------------------------------------------- completion
def test_tab_completes_unique_words(term):
    out = term.feed("sh\t")
    assert out == "show ", "echo of 'sh' then the completion"
    out = term.feed("ru\t")
    assert out == "running-config "
    assert term.session.editor.text == "show running-config "
    term.feed("\x15\r")
    term.cmd("conf t")
    assert term.feed("int e\t") == "int e\r\nr1(config)#int e", "ambiguous (eth1..eth4): line redisplayed"
    assert term.feed("th3\t") == "th3 "
    assert term.cmd("").endswith("r1(config-if)#")


# ---------------------------------------------------------------- modes
def test_modes_and_prompts(tmp_path):
    t = ScriptedTerminal(router(tmp_path))
    t.read()
    assert t.cmd("enable").endswith("Password: ")
    assert t.cmd("en").endswith("r1#")
    assert t.cmd("configure terminal").endswith("r1(config)#")
    assert t.cmd("line console 0").endswith("r1(config-line)#")
    assert t.cmd("exit").endswith("r1(config)#")
    assert t.cmd("interface eth1").endswith("r1(config-if)#")
    assert t.cmd("exit").endswith("r1(config)#")
    assert t.cmd("exit").endswith("r1#")
    t.cmd("conf t")
    t.cmd("int eth1")
    out = t.feed("\x1a")
    assert out.startswith("^Z\r\n") and out.endswith("\r\nr1#")
    assert "%SYS-5-CONFIG_I: Configured from console by console" in out, "console logging is on by default"
    assert t.cmd("disable").endswith("r1>")
    t.cmd("logout")
    assert t.session.closed and t.closed_by_device


def test_submode_falls_back_to_global_commands(term):
    term.cmd("conf t")
    term.cmd("interface eth1")
    assert term.cmd("hostname core1").endswith("core1(config)#"), "a global command leaves the sub-mode"
    term.cmd("interface eth1")
    assert term.cmd("interface eth2").endswith("core1(config-if)#")
    assert term.cmd("line vty 0 4").endswith("core1(config-line)#")
    term.cmd("end")


def test_do_runs_exec_commands_from_config_modes(term):
    term.cmd("conf t")
    term.cmd("int eth1")
    out = term.output("do show privilege")
    assert out == "Current privilege level is 15\r\n"
    assert term.session.prompt == "r1(config-if)#"
    out = term.feed("do sh ?")
    assert "  version" in out
    term.feed("\x15\r")
    out = term.cmd("do foo")
    assert caret_col(out) == len("r1(config-if)#do ")


def test_automation_login_commands_are_accepted_silently(term):
    for line in ("terminal width 511", "terminal length 0", "terminal no monitor", "show privilege"):
        out = term.output(line)
        assert "%" not in out, line
    term.cmd("conf t")
    for line in ("no logging console", "logging console", "line console 0", "exec-timeout 0 0",
                 "line vty 0 4", "exec-timeout 0 0"):
        out = term.output(line)
        assert out == "", (line, out)
    term.cmd("end")


# ---------------------------------------------------------------- the declaration API
class Widget(BaseDevice):
    """A made-up kind, declared the way later issues declare theirs."""

    kind = "widget"
    modes = BaseDevice.modes + (Mode("config-fan", "(config-fan)#", "config"),)

    def reset_config(self) -> None:
        super().reset_config()
        self.fans: dict[int, int] = {}

    def config_sections(self) -> list[list[str]]:
        return [[f"fan {n}", f" speed {s}"] for n, s in sorted(self.fans.items())]

    @command("config", "fan <n:int:1-4>", help={"fan": "Configure a fan", "n": "Fan number"})
    def cmd_fan(self, ctx: Context, n: int) -> None:
        self.fans.setdefault(n, 0)
        ctx.enter("config-fan", fan=n)

    @command("config-fan", "speed <rpm:int:0-9000> [max]", help={"speed": "Fan speed"})
    def cmd_speed(self, ctx: Context, rpm: int) -> None:
        self.fans[ctx.vars["fan"]] = rpm

    @command("exec", "show fans", priv=1, help={"fans": "Fan status"})
    def cmd_show_fans(self, ctx: Context) -> None:
        for n, s in sorted(self.fans.items()):
            ctx.print(f"fan {n}: {s} rpm")


def test_a_new_kind_declares_commands_with_decorators(tmp_path):
    d = Widget("w1", state_dir=tmp_path, users={}, enable_secret="", apply=False)
    d.tick_interval = 0
    d.start()
    t = ScriptedTerminal(d)
    t.read()
    t.cmd("en")
    t.cmd("conf t")
    assert t.cmd("fan 2").endswith("w1(config-fan)#")
    t.cmd("speed 1200")
    out = t.cmd("speed 99999")
    assert caret_col(out) == len("w1(config-fan)#speed ")
    t.cmd("end")
    assert t.output("sh fans") == "fan 2: 1200 rpm\r\n"
    assert "fan 2\n speed 1200\n" in d.running_config()
    assert "  fans" in t.feed("show ?")


def test_syntax_expansion_and_merge():
    assert expand("a [b <x:int:1-2>] c") == [["a", "c"], ["a", "b", "<x:int:1-2>", "c"]]
    cs = CommandSet([Mode("exec", "", None, config=False)])
    cs.add("exec", "show thing [detail]", lambda ctx, **kw: None, priv=1)
    r = parse(cs, "exec", "sh thing det", None, 1)
    assert r.status == "ok"
    assert parse(cs, "exec", "sh thing det x", None, 1).error_pos == len("sh thing det ")
