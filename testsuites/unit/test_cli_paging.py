"""`--More--` paging and the `|` output modifiers."""
from __future__ import annotations

from pathlib import Path

import pytest

from emulators.cli import pipes
from emulators.cli.pager import ERASE_MORE, MORE
from emulators.cli.testing import ScriptedTerminal
from emulators.netlink import FakeNetlink
from emulators.router import Router

pytestmark = pytest.mark.unit


@pytest.fixture
def term(tmp_path: Path) -> ScriptedTerminal:
    d = Router("r1", state_dir=tmp_path, users={"admin": "pw"}, enable_secret="en", apply=False,
               netlink=FakeNetlink([f"eth{i}" for i in range(1, 11)]))
    d.tick_interval = 0
    d.start()
    t = ScriptedTerminal(d, user="admin", transport="ssh", height=24)
    t.read()
    return t


def running_lines(t: ScriptedTerminal) -> list[str]:
    return t.session.device.running_config().rstrip("\n").split("\n")


def test_long_output_pages_with_more(term):
    lines = running_lines(term)
    assert len(lines) > 30
    out = term.cmd("show running-config")
    body = out.split("\r\n", 1)[1]
    assert body.endswith(MORE)
    assert body.count("\r\n") == 23, "terminal length 24: 23 lines, then the More prompt"
    assert term.session.state == "more"
    out = term.feed("\r")                         # Enter: one more line
    assert out == ERASE_MORE + lines[23] + "\r\n" + MORE
    out = term.feed(" ")                          # space: a page
    assert out.startswith(ERASE_MORE) and out.count("\r\n") == min(23, len(lines) - 24)
    while term.session.state == "more":
        out = term.feed(" ")
    assert out.endswith("end\r\nr1#")


def test_q_stops_paging(term):
    term.cmd("show running-config")
    out = term.feed("q")
    assert out == ERASE_MORE + "r1#"
    assert term.session.state == "command"
    assert "Current privilege level" in term.cmd("show privilege"), "the key was eaten by the pager only"


def test_any_other_key_stops_paging_and_crlf_is_one_key(term):
    term.cmd("show running-config")
    out = term.feed("\r\n")                       # CRLF = one Enter = one line, not two
    assert out.count("\r\n") == 1 + 0 and out.endswith(MORE)
    assert term.feed("x").endswith("r1#")


def test_terminal_length_zero_disables_paging(term):
    term.cmd("terminal length 0")
    out = term.cmd("show running-config")
    assert MORE not in out and out.endswith("end\r\nr1#")


def test_terminal_length_and_width_ranges(term):
    term.cmd("terminal length 10")
    out = term.cmd("show running-config")
    assert out.split("\r\n", 1)[1].count("\r\n") == 9
    term.feed("q")
    assert "%" not in term.output("terminal width 512")
    assert "Invalid input" in term.cmd("terminal width 513")
    assert "Invalid input" in term.cmd("terminal length -1")


def test_include_exclude_begin_section_count(term):
    term.cmd("terminal length 0")
    assert term.output("show running-config | include ^interface") == \
        "".join(f"interface eth{i}\r\n" for i in range(1, 11))
    out = term.output("sh run | exclude ^ |!")
    assert " no ip address" not in out and "interface eth1" in out
    out = term.output("show running-config | begin line con")
    assert out.startswith("line con 0\r\n") and out.endswith("end\r\n")
    out = term.output("show run | section interface eth2")
    assert out == "interface eth2\r\n no ip address\r\n"
    assert term.output("show run | count interface") == "Number of lines which match regexp = 10\r\n"
    out = term.output("show run | i hostname")
    assert out == "hostname r1\r\n"


def test_pipe_errors(term):
    term.cmd("terminal length 0")
    assert term.output("show run |") == "% Incomplete command.\r\n\r\n"
    assert term.output("show run | include") == "% Incomplete command.\r\n\r\n"
    out = term.cmd("show run | grep x")
    assert "Invalid input" in out
    out = term.feed("show run | ?")
    assert "  include  Include lines that match" in out and "  section  Filter a section of output" in out
    term.feed("\x15\r")
    out = term.cmd("show run | include [unclosed")
    assert out.endswith("r1#"), "a regex Python cannot compile is matched literally"


def test_pipes_module_directly():
    lines = ["a", " a1", "b", " b1", " b2", "c"]
    assert pipes.apply(lines, "section", "b2") == ["b", " b1", " b2"]
    assert pipes.apply(lines, "begin", "^b") == ["b", " b1", " b2", "c"]
    assert pipes.apply(lines, "include", "1") == [" a1", " b1"]
    assert pipes.apply(lines, "exclude", "^ ") == ["a", "b", "c"]
