"""The terminal behaviour of a session: echo, Enter variants in any chunking, line editing, login
and enable dialogs, secrets never echoed, garbage never fatal."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from emulators.cli.terminal import Decoder
from emulators.cli.testing import ScriptedTerminal
from emulators.router import Router

pytestmark = pytest.mark.unit


def router(tmp_path: Path) -> Router:
    d = Router("r1", state_dir=tmp_path, users={"admin": "s3cret"}, enable_secret="en4ble", apply=False)
    d.tick_interval = 0
    d.start()
    return d


@pytest.fixture
def dev(tmp_path: Path) -> Router:
    return router(tmp_path)


def test_each_character_is_echoed_as_it_arrives(dev):
    t = ScriptedTerminal(dev)
    t.read()
    assert [t.feed(c) for c in "show"] == ["s", "h", "o", "w"]
    out = t.feed("\r")
    assert out.startswith("\r\n%") and out.endswith("r1>")


@pytest.mark.parametrize("enter", [b"\r", b"\n", b"\r\n", b"\r\x00"])
def test_enter_variants_count_once(dev, enter):
    t = ScriptedTerminal(dev)
    t.read()
    out = t.feed(b"show privilege" + enter + b"show privilege" + enter)
    assert out.count("Current privilege level is 1") == 2
    assert out.count("r1>") == 2, "no extra empty command from the second byte of CRLF / CR NUL"


@pytest.mark.parametrize("enter", [b"\r\n", b"\r\x00"])
def test_two_byte_enter_split_across_feeds(dev, enter):
    t = ScriptedTerminal(dev)
    t.read()
    out = t.feed(b"show privilege" + enter[:1])
    assert out.endswith("r1>")
    assert t.feed(enter[1:]) == "", "the LF/NUL completing CR is swallowed, even in the next feed"
    assert t.feed(b"\r\n") == "\r\nr1>", "a real empty line still gives a new prompt"


def test_byte_at_a_time_and_ten_kilobytes_at_once(dev):
    t = ScriptedTerminal(dev)
    t.read()
    t.cmd("terminal length 0")
    out = "".join(t.feed(bytes([b])) for b in b"show clock\r\n")
    assert out.startswith("show clock\r\n*") and "UTC" in out and out.endswith("r1>")
    big = b"show privilege\r\n" * 700          # ~11 KB
    out = t.feed(big)
    assert out.count("Current privilege level is 1") == 700


def test_backspace_del_ctrl_u_ctrl_w_ctrl_c(dev):
    t = ScriptedTerminal(dev)
    t.read()
    assert t.feed("shox\x7f") == "shox\b \b"
    assert t.feed("w priv\x08") == "w priv\b \b"
    assert "Current privilege level" in t.feed("\r")
    assert t.feed("garbage words\x15").endswith("\b" * 13 + " " * 13 + "\b" * 13)
    assert t.session.editor.text == ""
    t.feed("show junk\x17")
    assert t.session.editor.text == "show "
    assert t.feed("\x03") == "^C\r\nr1>"
    assert t.session.editor.text == ""


def test_history_recall_with_arrows(dev):
    t = ScriptedTerminal(dev)
    t.read()
    t.cmd("show privilege")
    t.cmd("show clock")
    t.feed("\x1b[A")
    assert t.session.editor.text == "show clock"
    t.feed("\x1b[A")
    assert t.session.editor.text == "show privilege"
    t.feed("\x1b[B")
    assert t.session.editor.text == "show clock"
    assert "  show privilege\r\n  show clock\r\n" in t.cmd("\x15show history")


def test_telnet_login_dialog_and_password_not_echoed(dev):
    t = ScriptedTerminal(dev, transport="telnet", peer="172.20.0.9")
    assert t.read() == "\r\n\r\nUser Access Verification\r\n\r\nUsername: "
    assert t.feed("admin\r") == "admin\r\nPassword: "
    out = t.feed("s3cret\r")
    assert "s3cret" not in out
    assert out == "\r\n\r\nr1#", "lab users have privilege 15"
    assert any("LOGIN_SUCCESS" in ln and "[user: admin]" in ln for ln in dev.log.buffer)


def test_three_failed_logins_close_the_session(dev):
    t = ScriptedTerminal(dev, transport="telnet")
    t.read()
    for i in range(3):
        t.feed("admin\r")
        out = t.feed("wrong\r")
        assert "% Login invalid" in out and "wrong" not in out
        assert t.session.closed == (i == 2)
    assert t.closed_by_device
    assert sum("LOGIN_FAILED" in ln for ln in dev.log.buffer) == 3
    t.feed("show version\r")          # input after close is ignored, never an error


def test_ssh_session_is_already_authenticated(dev):
    t = ScriptedTerminal(dev, transport="ssh", user="admin", peer="172.20.0.1")
    assert t.read() == "\r\nr1#"


def test_console_login_is_configurable(dev):
    t = ScriptedTerminal(dev, user=None)
    t.read()
    t.cmd("en")
    t.cmd("en4ble")
    t.cmd("conf t")
    t.cmd("line con 0")
    t.cmd("login local")
    t.cmd("end")
    t2 = ScriptedTerminal(dev)
    assert t2.read().endswith("Username: ")


def test_enable_secret_dialog_and_bad_secrets(dev):
    t = ScriptedTerminal(dev)
    t.read()
    assert t.feed("enable\r") == "enable\r\nPassword: "
    assert t.feed("nope\r") == "\r\nPassword: ", "not echoed"
    assert t.feed("nope\r") == "\r\nPassword: "
    assert t.feed("nope\r") == "\r\n% Bad secrets\r\n\r\nr1>"
    t.cmd("enable")
    assert t.feed("en4ble\r") == "\r\nr1#"
    assert t.output("show privilege") == "Current privilege level is 15\r\n"


def test_dialogs_can_be_cancelled(dev):
    t = ScriptedTerminal(dev, user="admin", transport="ssh")
    t.read()
    assert t.cmd("copy running-config startup-config").endswith("Destination filename [startup-config]? ")
    assert t.feed("\x03").endswith("r1#")
    assert dev.startup_config() is None


@pytest.mark.parametrize("seed", [1234, 7, 99])
def test_garbage_bytes_fuzz_never_kills_the_session(dev, seed, caplog):
    rnd = random.Random(seed)
    t = ScriptedTerminal(dev, user="admin", transport="ssh")
    t.read()
    t.cmd("terminal length 0")
    for _ in range(300):
        chunk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
        t.feed(chunk)
        if t.session.closed:
            break
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], "no handler crashed"
    # Whatever state the garbage left (a dialog, a half line, config mode), a client recovers as
    # it would on a real line: Ctrl-C, Ctrl-U, Ctrl-Z, Enter.
    if not t.session.closed:
        t.feed(b"\x03\x15\x1a\r")
        t.read()
        out = t.cmd("\x15show version")
        assert "Version 15.9(3)M4" in out
    # And the device keeps serving new sessions either way.
    t2 = ScriptedTerminal(dev, user="admin", transport="ssh")
    t2.read()
    t2.cmd("terminal length 0")
    assert "Version 15.9(3)M4" in t2.cmd("show version")


def test_binary_garbage_is_an_error_not_a_crash(dev):
    t = ScriptedTerminal(dev, user="admin", transport="ssh")
    t.read()
    out = t.feed(b"\x80\xff\xfe\x01\x02sh\x00\x1bxow \xc3\xa9ver\r")
    assert out.endswith("r1#")
    assert "Traceback" not in out


def test_output_uses_crlf_and_no_ansi(dev):
    t = ScriptedTerminal(dev, user="admin", transport="ssh")
    t.read()
    t.cmd("terminal length 0")
    out = t.cmd("show running-config")
    assert "\x1b" not in out
    assert "\n" not in out.replace("\r\n", "")


def test_decoder_escape_sequences_split_across_feeds():
    d = Decoder()
    assert d.feed(b"\x1b") == []
    assert d.feed(b"[") == []
    assert [k.kind for k in d.feed(b"Aa")] == ["up", "char"]
    assert [k.kind for k in d.feed(b"\x1b[1;5Cb")] == ["char"]


def test_async_log_message_redraws_prompt_and_typed_text(dev):
    t = ScriptedTerminal(dev)           # console: logging console is on
    t.read()
    t.feed("show ver")
    dev.syslog("%LINK-3-UPDOWN: Interface eth1, changed state to down")
    out = t.read()
    assert out.startswith("\r\n*") and out.endswith("%LINK-3-UPDOWN: Interface eth1, changed state to down\r\nr1>show ver")
    vty = ScriptedTerminal(dev, transport="ssh", user="admin")
    vty.read()
    dev.syslog("%SYS-5-TEST: nothing")
    assert vty.read() == "", "vty lines see logs only with terminal monitor"
    vty.cmd("terminal monitor")
    dev.syslog("%SYS-5-TEST: now")
    assert "%SYS-5-TEST: now" in vty.read()


def test_window_size_sets_paging_until_terminal_length(dev):
    t = ScriptedTerminal(dev, user="admin", transport="ssh", height=10)
    t.read()
    assert t.session.length == 10
    t.session.set_window(100, 40)
    assert (t.session.width, t.session.length) == (100, 40)
    t.cmd("terminal length 0")
    t.session.set_window(100, 50)
    assert t.session.length == 0


def test_many_sessions_get_distinct_vty_lines(dev):
    ts = [ScriptedTerminal(dev, transport="ssh", user="admin", peer=f"10.0.0.{i}") for i in range(5)]
    assert [t.session.line_name for t in ts] == [f"vty {i}" for i in range(5)]
    ts[0].cmd("terminal length 0")
    out = ts[0].cmd("show users")
    assert out.count("vty") == 5
    ts[1].cmd("exit")
    assert len(dev.sessions) == 4
    t = ScriptedTerminal(dev, transport="ssh", user="admin")
    assert t.session.line_name == "vty 1"


def test_events_are_published(dev):
    events: list[dict] = []
    dev.subscribe(events.append)
    t = ScriptedTerminal(dev, transport="telnet", peer="172.20.0.1")
    t.feed("admin\rs3cret\r")
    t.cmd("conf t")
    t.cmd("hostname r2")
    t.cmd("end")
    types = [e["type"] for e in events]
    assert "login" in types and "command" in types and "config-changed" in types
    assert all({"time", "device", "type"} <= set(e) for e in events)
    assert any(e["type"] == "command" and e["line"] == "hostname r2" for e in events)
    assert (dev.state_dir / "events.jsonl").read_text().count("\n") >= len(events)
    log = "\n".join(dev.log.buffer)
    assert "%SYS-5-CONFIG_I: Configured from console by admin on vty0 (172.20.0.1)" in log
    assert "%PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:hostname r2" in log


def test_secrets_are_masked_in_events_and_logs(dev):
    events: list[dict] = []
    dev.subscribe(events.append)
    t = ScriptedTerminal(dev, transport="ssh", user="admin")
    t.cmd("conf t")
    t.cmd("username bob secret TopSecret1")
    t.cmd("enable secret Other2")
    t.cmd("end")
    assert "TopSecret1" not in str(events) and "Other2" not in str(events)
    assert "TopSecret1" not in "\n".join(dev.log.buffer)
    assert "TopSecret1" not in (dev.state_dir / "events.jsonl").read_text()
    assert "logged command:username bob secret *****" in "\n".join(dev.log.buffer)


def test_background_work_runs_on_the_daemons_event_loop(tmp_path):
    """A device started inside an asyncio loop marshals its ticker onto that loop, so transports'
    write callbacks are only ever called from the loop thread."""
    import asyncio
    import threading

    from emulators.router import Router

    seen: list[tuple[str, int]] = []

    async def main() -> None:
        d = Router("r1", state_dir=tmp_path, users={}, enable_secret="", apply=False)
        d.tick_interval = 0.05
        d.subscribe(lambda e: seen.append((e["type"], threading.get_ident())))
        d.start()
        assert d.call_soon is not None
        d.net.set_carrier("eth2", False)
        for _ in range(40):
            await asyncio.sleep(0.05)
            if any(t == "link-down" for t, _ in seen):
                break
        d.close()

    loop_thread: list[int] = []

    async def runner() -> None:
        loop_thread.append(threading.get_ident())
        await main()

    asyncio.run(runner())
    downs = [tid for t, tid in seen if t == "link-down"]
    assert downs and set(downs) == {loop_thread[0]}
