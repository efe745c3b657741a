"""The telnet server's codec: negotiation without loops, IAC stripping, NAWS, garbage-proof."""
from __future__ import annotations

import random

import pytest

from emulators.transports.telnet import (DO, DONT, ECHO, IAC, NAWS, SB, SE, SGA, TTYPE, WILL, WONT, TelnetCodec)

pytestmark = pytest.mark.unit


def test_greeting_offers_echo_and_sga_and_asks_naws() -> None:
    g = TelnetCodec().greeting()
    assert bytes([IAC, WILL, ECHO]) in g and bytes([IAC, WILL, SGA]) in g and bytes([IAC, DO, NAWS]) in g


def test_plain_data_passes_and_iac_iac_is_one_ff() -> None:
    c = TelnetCodec()
    assert c.decode(b"show version\r\x00").data == b"show version\r\x00"
    assert c.decode(bytes([0x41, IAC, IAC, 0x42])).data == b"A\xffB"
    assert TelnetCodec.encode(b"a\xffb") == b"a\xff\xffb"


def test_client_acks_get_no_answer_so_no_loop() -> None:
    c = TelnetCodec()
    c.greeting()
    d = c.decode(bytes([IAC, DO, ECHO, IAC, DO, SGA, IAC, WILL, NAWS, IAC, WILL, SGA]))
    assert d.reply == b"" and d.data == b""


def test_unknown_options_refused_once() -> None:
    c = TelnetCodec()
    c.greeting()
    d = c.decode(bytes([IAC, WILL, TTYPE, IAC, DO, 99, IAC, WILL, TTYPE, IAC, DO, 99]))
    assert d.reply == bytes([IAC, DONT, TTYPE, IAC, WONT, 99])


def test_dont_echo_is_honoured() -> None:
    c = TelnetCodec()
    c.greeting()
    assert c.decode(bytes([IAC, DONT, ECHO])).reply == bytes([IAC, WONT, ECHO])
    assert c.decode(bytes([IAC, DONT, ECHO])).reply == b""


def test_naws_gives_the_window_even_split_across_chunks() -> None:
    c = TelnetCodec()
    seq = bytes([IAC, SB, NAWS, 0, 132, 0, 50, IAC, SE]) + b"x"
    windows, data = [], b""
    for i in range(len(seq)):
        d = c.decode(seq[i:i + 1])
        windows += d.windows
        data += d.data
    assert windows == [(132, 50)] and data == b"x"


def test_naws_with_an_escaped_ff() -> None:
    d = TelnetCodec().decode(bytes([IAC, SB, NAWS, 0, IAC, IAC, 1, 0, IAC, SE]))
    assert d.windows == [(255, 256)]


def test_ip_is_ctrl_c_and_ayt_is_answered() -> None:
    d = TelnetCodec().decode(bytes([IAC, 244, IAC, 246]))
    assert d.data == b"\x03" and b"[Yes]" in d.reply


def test_garbage_never_raises_and_buffers_stay_bounded() -> None:
    rnd = random.Random(1)
    c = TelnetCodec()
    total = 0
    for _ in range(200):
        chunk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
        d = c.decode(chunk)
        total += len(d.data) + len(d.reply)
    d = c.decode(bytes([IAC, SB]) + b"A" * 100000)  # a subnegotiation that never ends
    assert len(c._sb) <= 64 and d.data == b""
    assert c.decode(bytes([IAC, SE]) + b"ok").data == b"ok"
