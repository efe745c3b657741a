"""The driver's channel and session against a scripted device: a tiny python process on a pexpect pty
that imitates an IOS CLI (`emulators.transports.fake`), so prompt finding, paging, timeouts and the
transcript are pinned down without a lab or the real engine."""
from __future__ import annotations

import sys

import pytest

from twin.driver import Channel, CommandError, DeviceSession, DriverTimeout, LoginError, Target
from twin.driver.channel import clean_output
from twin.driver.transport import Transport

pytestmark = pytest.mark.unit


class ScriptedTransport(Transport):
    """Spawns the fake device on stdin/stdout; `dialog` "telnet" makes it ask Username/Password."""

    name = "scripted"

    def __init__(self, target: Target, dialog: str = "console") -> None:
        super().__init__(target)
        self.dialog = dialog

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "emulators.transports.fake", self.target.device, self.dialog]

    def login(self, channel: Channel, timeout: float) -> None:
        i = channel.expect([channel.prompt_re(), r"(?i)username: *\Z"], timeout, "login")
        self._device_login(channel, timeout, i)


def open_fake(dialog: str = "console", password: str = "admin", timeout: float = 5.0,
              disable_paging: bool = True) -> DeviceSession:
    target = Target(device="fk1", username="admin", password=password, enable_secret="secret")
    return DeviceSession.open(Channel(ScriptedTransport(target, dialog), timeout=timeout),
                              enable_secret="secret", timeout=timeout, disable_paging=disable_paging)


@pytest.fixture
def fake() -> DeviceSession:
    s = open_fake()
    yield s
    s.close()


def test_first_prompt_gives_hostname_prompt_and_mode(fake: DeviceSession) -> None:
    assert fake.hostname == "fk1" and fake.prompt == "fk1>" and fake.mode == "user"


def test_run_returns_output_without_echo_or_prompt(fake: DeviceSession) -> None:
    out = fake.run("show version")
    assert out.splitlines()[0] == "Twin Fake IOS Software, Version 0.0(fake)"
    assert "show version" not in out and "fk1>" not in out and "\r" not in out
    assert fake.run("") == ""


def test_modes_follow_the_prompt_through_enable_and_configure(fake: DeviceSession) -> None:
    fake.enable()
    assert fake.mode == "privileged" and fake.prompt == "fk1#"
    fake.run("configure terminal")
    assert fake.mode == "config"
    fake.run("interface eth1")
    assert fake.mode == "config-if" and fake.prompt == "fk1(config-if)#"
    fake.run("end")
    fake.disable()
    assert fake.mode == "user"


def test_hostname_change_is_learned(fake: DeviceSession) -> None:
    fake.configure(["hostname edge-1.lab"])
    assert fake.hostname == "edge-1.lab" and fake.prompt == "edge-1.lab#"
    assert "Version" in fake.run("show version")


def test_configure_raises_naming_device_and_line(fake: DeviceSession) -> None:
    with pytest.raises(CommandError) as err:
        fake.configure(["interface eth1", "bogus words here", "description never-sent"])
    e = err.value
    assert e.device == "fk1" and e.command == "bogus words here" and "% Invalid input" in e.output
    assert "fk1" in str(e) and "bogus words here" in str(e)
    assert fake.mode == "privileged"  # left config mode
    assert "description never-sent" not in fake.transcript


def test_enable_with_a_wrong_secret_is_refused(fake: DeviceSession) -> None:
    with pytest.raises(CommandError, match="enable refused"):
        fake.enable("wrong")
    assert fake.mode == "user"
    fake.enable()
    assert fake.mode == "privileged"


def test_paging_is_answered_and_leaves_no_debris() -> None:
    with open_fake(disable_paging=False) as s:
        out = s.run("show long")
    lines = out.splitlines()
    assert lines == [f"line {i:03d}" for i in range(1, 61)]
    assert "--More--" in s.transcript  # it really paged


def test_timeout_names_device_transport_command_and_last_output(fake: DeviceSession) -> None:
    fake.run("show version")
    with pytest.raises(DriverTimeout) as err:
        fake.run("hang", timeout=0.5)
    msg = str(err.value)
    assert "fk1" in msg and "scripted" in msg and "'hang'" in msg and "0.5 s" in msg
    assert "Processor board ID FAKE0001" in msg  # the last output seen
    last = msg.split("last output: ", 1)[1]
    assert len(eval(last)) <= 300


def test_transcript_is_timestamped_masks_secrets_and_saves(fake: DeviceSession, tmp_path) -> None:
    fake.enable()
    fake.run("show version")
    text = fake.transcript
    assert text.startswith("# transcript: fk1 over scripted")
    assert "> show version" in text and "< Twin Fake IOS Software" in text
    assert "> ********" in text and "secret" not in text.replace("# transcript", "")
    stamp = text.splitlines()[2].split(" ")[0]
    assert len(stamp) == 12 and stamp[2] == ":" and stamp[8] == "."
    path = fake.save_transcript(tmp_path / "r" / "fk1.txt")
    assert path.read_text() == fake.transcript or path.read_text() in fake.transcript


def test_send_raw_then_the_next_command_resyncs(fake: DeviceSession) -> None:
    fake.send_raw(bytes(range(1, 32)) + b"\x7f\xfe garbage \x1b[A\x00\r\n" + b"partial")
    assert "Version" in fake.run("show version")
    assert fake.mode == "user"


def test_login_dialog_and_wrong_password() -> None:
    with open_fake(dialog="telnet") as s:
        assert s.prompt == "fk1>"
        assert "Version" in s.run("show version")
    with pytest.raises(LoginError, match="fk1"):
        open_fake(dialog="telnet", password="nope")


def test_context_manager_closes_the_client() -> None:
    with open_fake() as s:
        pass
    assert not s.channel.alive


@pytest.mark.parametrize("raw, want", [
    ("\r\nline1\r\nline2\r\n", "line1\nline2"),
    ("\r\na\r\n \b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\bb\r\n", "a\nb"),
    ("\r\na\r\n\r          \rb  x\r\n", "a\nb  x"),
    ("\r\n   ^\r\n% Invalid input detected at '^' marker.\r\n\r\n", "   ^\n% Invalid input detected at '^' marker."),
])
def test_clean_output(raw: str, want: str) -> None:
    assert clean_output(raw) == want
