"""Turning a parsed line into action: sub-mode fallback, error text, handler invocation, and
applying a whole config text with nobody at the keyboard (startup-config, initial config, `copy`).

Interactive sessions and the config loader share this, so a stored config goes through exactly the
commands a person would type - which is what makes `show running-config` rebuildable.
"""
from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from .context import Ask, Confirm, Context, ModeStack, Wait
from .parser import INCOMPLETE, INVALID, ParseResult, ambiguous_message, parse
from .tree import CommandSet, Node

log = logging.getLogger(__name__)


def resolve(cs: CommandSet, modes: ModeStack, line: str, ctx: Any, priv: int) -> ParseResult:
    """Parse in the current mode; if that fails in a config sub-mode, retry in its parent modes
    (IOS runs `hostname x` or `interface eth2` typed in `config-if`). The error reported is the
    one that got furthest."""
    mode = modes.mode
    best = parse(cs, mode, line, ctx, priv)
    if best.status in ("ok", "empty"):
        return best
    parent = cs.modes[mode].parent
    while parent is not None and cs.modes[parent].config:
        r = parse(cs, parent, line, ctx, priv)
        if r.status == "ok":
            return r
        if r.progress > best.progress:
            best = r
        parent = cs.modes[parent].parent
    return best


def error_lines(result: ParseResult, prompt_len: int) -> list[str]:
    """The lines IOS prints for a parse error (the caret line is aligned under the typed word,
    counting the prompt, because the typed line is already on the screen above it)."""
    if result.status == "invalid":
        return [" " * (prompt_len + result.error_pos) + "^", INVALID, ""]
    if result.status == "incomplete":
        return [INCOMPLETE, ""]
    if result.status == "ambiguous":
        return [ambiguous_message(result.error_text)]
    return []


def call_handler(device: Any, node: Node, ctx: Context, args: dict[str, Any]) -> Any:
    """Invoke a node's handler (a device method name, or a callable taking (ctx, **args))."""
    handler = node.handler
    kwargs = {**node.fixed, **args}
    if isinstance(handler, str):
        return getattr(device, handler)(ctx, **kwargs)
    assert handler is not None
    return handler(ctx, **kwargs)


def drive_headless(gen: Generator[Any, Any, Any]) -> None:
    """Run a dialog handler with every question answered by its default (a `Wait` runs inline)."""
    try:
        q = next(gen)
        while True:
            answer: Any = q.run() if isinstance(q, Wait) else q.default if isinstance(q, (Ask, Confirm)) else None
            q = gen.send(answer)
    except StopIteration:
        pass


@dataclass
class LineResult:
    """A parser return code for one config line: `ok`, or the error messages it caused."""

    lineno: int
    line: str
    ok: bool
    messages: list[str] = field(default_factory=list)


def apply_config_lines(device: Any, lines: list[str], *, source: str = "startup",
                       user: str = "") -> list[LineResult]:
    """Feed config lines into config mode as if typed (indentation ignored, `!` lines skipped,
    stopping at `end`), returning a result per command line. A bad line never stops the rest."""
    cs: CommandSet = device.command_set()
    modes = ModeStack(cs, [("exec", {}), ("config", {})])
    results: list[LineResult] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        if line == "end":
            break
        if line.startswith(("Building configuration", "Current configuration", "Using ")):
            continue
        ctx = Context(device=device, modes=modes, source=source, user=user, privilege=15)
        r = resolve(cs, modes, line, ctx, 15)
        if r.status != "ok":
            results.append(LineResult(lineno, line, False,
                                      [" ".join(x for x in error_lines(r, 0)[1:] if x) or r.status]))
            continue
        if r.via_do:
            results.append(LineResult(lineno, line, False, ["do is not applied from a stored config"]))
            continue
        modes.pop_to(r.mode)
        ctx.mode = r.mode
        assert r.node is not None
        messages: list[str] = []
        try:
            res = call_handler(device, r.node, ctx, r.args)
            if isinstance(res, Generator):
                drive_headless(res)
        except Exception as exc:  # a broken handler must not stop the device from booting
            log.exception("config line %r failed", line)
            messages.append(str(exc) or type(exc).__name__)
        messages += [o for o in ctx.output if o.startswith("%")]
        results.append(LineResult(lineno, line, not messages, messages))
        if not modes.in_config:
            break
    return results


def apply_config(device: Any, text: str, *, source: str = "startup", user: str = "") -> list[str]:
    """`apply_config_lines` over a config text; messages for the lines that failed, which the
    caller logs."""
    return [f"{r.line!r}: {m}" for r in apply_config_lines(device, text.splitlines(), source=source, user=user)
            for m in r.messages]
