"""What a command handler sees: the device, the mode it runs in, a place to print, mode changes,
and dialogs.

Handlers are plain methods `def handler(self, ctx, **args)`. One that needs an answer from the user
is a generator: `answer = yield Ask("Destination filename [startup-config]? ")` or
`ok = yield Confirm("Proceed with reload? [confirm]")`. The same handler then runs unchanged when a
stored config is loaded with nobody at the keyboard: dialogs get their defaults.

A handler that must wait for the network (a RADIUS exchange) yields `result = yield Wait(fn)`: the
session runs `fn` on a worker thread without the device lock, so the daemon keeps serving every other
session meanwhile, and resumes the handler with what `fn` returned.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tree import CommandSet


@dataclass
class Ask:
    """Ask for a line of text (`echo=False` for secrets)."""

    prompt: str
    echo: bool = True
    default: str = ""


@dataclass
class Confirm:
    """IOS `[confirm]`: Enter or `y` proceeds, any other key declines."""

    prompt: str
    default: bool = True


@dataclass
class Wait:
    """Run blocking `fn` off the device lock; the dialog resumes with its result (or `on_error`'s,
    if it raised). Keys typed meanwhile are discarded; Ctrl-C abandons the wait where the dialog is
    abortable, as IOS's `Type escape sequence to abort.`"""

    fn: Callable[[], Any]
    prompt: str = ""
    on_error: Callable[[BaseException], Any] | None = None

    def run(self) -> Any:
        try:
            return self.fn()
        except Exception as exc:
            if self.on_error is None:
                raise
            return self.on_error(exc)


class ModeStack:
    """The session's position in the mode hierarchy, with per-mode variables (the interface a
    `config-if` mode configures, the line a `config-line` mode configures)."""

    def __init__(self, cs: "CommandSet", start: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        self.cs = cs
        self.stack: list[tuple[str, dict[str, Any]]] = list(start or [("exec", {})])

    @property
    def mode(self) -> str:
        return self.stack[-1][0]

    @property
    def vars(self) -> dict[str, Any]:
        return self.stack[-1][1]

    @property
    def in_config(self) -> bool:
        return self.cs.modes[self.mode].config

    def enter(self, name: str, **vars: Any) -> None:
        """Enter a mode; a sibling sub-mode replaces the current one (IOS `interface eth2` typed in
        `config-if` for eth1 switches interfaces)."""
        parent = self.cs.modes[name].parent
        while len(self.stack) > 1 and self.mode != parent and self.mode != name:
            self.stack.pop()
        if self.mode == name and len(self.stack) > 1:
            self.stack.pop()
        self.stack.append((name, dict(vars)))

    def pop_to(self, name: str) -> None:
        while len(self.stack) > 1 and self.mode != name:
            self.stack.pop()

    def exit(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    def end(self) -> None:
        del self.stack[1:]


@dataclass
class Context:
    """Passed to every handler. `source` is "cli" for a person or client typing, "startup" while the
    startup-config (or the initial config) loads, "copy" for `copy startup-config running-config`."""

    device: Any
    modes: ModeStack
    session: Any = None
    mode: str = "exec"
    user: str = ""
    transport: str = "console"
    peer: str = ""
    source: str = "cli"
    privilege: int = 15
    output: list[str] = field(default_factory=list)

    @property
    def lenient(self) -> bool:
        return self.source != "cli"

    @property
    def interactive(self) -> bool:
        return self.session is not None and self.source == "cli"

    @property
    def vars(self) -> dict[str, Any]:
        return self.modes.vars

    def print(self, text: str = "") -> None:
        self.output.extend(text.split("\n"))

    def enter(self, mode: str, **vars: Any) -> None:
        self.modes.enter(mode, **vars)

    def exit(self) -> None:
        self.modes.exit()

    def end(self) -> None:
        self.modes.end()

    def interface_names(self, purpose: str) -> list[str]:
        return self.device.interface_names(purpose)

    def take_output(self) -> list[str]:
        out, self.output = self.output, []
        return out
