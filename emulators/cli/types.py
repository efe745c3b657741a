"""Argument types of the command tree.

Each type knows how to recognise a token, what label `?` shows for it (`<1-512>`, `A.B.C.D`, `WORD`,
`LINE`) and which values Tab can complete. Keeping this knowledge in one object per type is what lets
help, completion and the parser errors all come from the same declaration.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any


class NoMatch:
    """Sentinel: the token is not a value of this type (None can be a legitimate value)."""

    def __repr__(self) -> str:
        return "NO_MATCH"


NO_MATCH: Any = NoMatch()


class ArgType:
    """Base class. `label` is what `?` prints; `rest_of_line` types swallow the remainder of the line."""

    label = "WORD"
    rest_of_line = False
    generic = False          # word/line: lowest priority when a keyword could also match

    def parse(self, token: str, ctx: Any) -> Any:
        """Return the converted value or NO_MATCH."""
        return token

    def could_start(self, prefix: str, ctx: Any) -> bool:
        """Whether a partially typed token could still become a value (for `abc?` help)."""
        return self.parse(prefix, ctx) is not NO_MATCH

    def completions(self, ctx: Any) -> list[str]:
        """Concrete values Tab may complete to (most types have none)."""
        return []

    def help_items(self, help_text: str, ctx: Any) -> list[tuple[str, str]]:
        """Rows this argument contributes to `?` output."""
        return [(self.label, help_text)]


class Word(ArgType):
    label = "WORD"
    generic = True

    def __init__(self, label: str = "WORD", pattern: str | None = None, max_len: int = 256) -> None:
        self.label = label
        self._re = re.compile(pattern) if pattern else None
        self.max_len = max_len

    def parse(self, token: str, ctx: Any) -> Any:
        if len(token) > self.max_len or (self._re and not self._re.fullmatch(token)):
            return NO_MATCH
        return token

    def could_start(self, prefix: str, ctx: Any) -> bool:
        return True


class Line(ArgType):
    """The rest of the line, inner spacing kept (descriptions, regular expressions)."""

    label = "LINE"
    rest_of_line = True
    generic = True

    def could_start(self, prefix: str, ctx: Any) -> bool:
        return True


class Int(ArgType):
    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.label = f"<{lo}-{hi}>"

    def parse(self, token: str, ctx: Any) -> Any:
        if not token.isdigit() or len(token) > 12:
            return NO_MATCH
        value = int(token)
        return value if self.lo <= value <= self.hi else NO_MATCH

    def could_start(self, prefix: str, ctx: Any) -> bool:
        return prefix.isdigit()


class IPv4(ArgType):
    label = "A.B.C.D"

    def parse(self, token: str, ctx: Any) -> Any:
        if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", token):
            return NO_MATCH
        try:
            return ipaddress.IPv4Address(token)
        except ValueError:
            return NO_MATCH

    def could_start(self, prefix: str, ctx: Any) -> bool:
        return bool(re.fullmatch(r"\d{1,3}(\.\d{0,3}){0,3}", prefix))


class Mask(IPv4):
    """A dotted-quad mask. Contiguity is checked by the handler, as IOS does ("Bad mask")."""


class Prefix(ArgType):
    label = "A.B.C.D/nn"

    def parse(self, token: str, ctx: Any) -> Any:
        if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}/\d{1,2}", token):
            return NO_MATCH
        try:
            return ipaddress.IPv4Network(token, strict=False)
        except ValueError:
            return NO_MATCH

    def could_start(self, prefix: str, ctx: Any) -> bool:
        return bool(re.fullmatch(r"\d{1,3}(\.\d{0,3}){0,3}(/\d{0,2})?", prefix))


_SPLIT = re.compile(r"^([A-Za-z-]*)(.*)$")


class Interface(ArgType):
    """An interface of the device: exact name, or IOS-style type abbreviation plus number (`e1` ->
    `eth1`). The names come from the device at parse time (`ctx.interface_names(purpose)`), so a
    missing interface is an invalid token with the caret under it. While a stored config is being
    loaded (`ctx.lenient`), any plausible name is kept, so config for interfaces that appear later
    (links created after the emulator starts) is not lost."""

    label = "WORD"
    _PLAUSIBLE = re.compile(r"[A-Za-z][A-Za-z0-9_.:/-]{0,14}")

    def __init__(self, purpose: str = "config") -> None:
        self.purpose = purpose

    def _names(self, ctx: Any) -> list[str]:
        fn: Callable[[str], list[str]] | None = getattr(ctx, "interface_names", None)
        return list(fn(self.purpose)) if fn else []

    def parse(self, token: str, ctx: Any) -> Any:
        names = self._names(ctx)
        for n in names:
            if n.lower() == token.lower():
                return n
        ta, tr = _SPLIT.match(token).groups()  # type: ignore[union-attr]
        if ta and tr:
            hits = [n for n in names
                    if (m := _SPLIT.match(n)) and m.group(1).lower().startswith(ta.lower()) and m.group(2) == tr]
            if len(hits) == 1:
                return hits[0]
        if getattr(ctx, "lenient", False) and self._PLAUSIBLE.fullmatch(token):
            return token
        return NO_MATCH

    def could_start(self, prefix: str, ctx: Any) -> bool:
        return any(n.lower().startswith(prefix.lower()) for n in self._names(ctx))

    def completions(self, ctx: Any) -> list[str]:
        return self._names(ctx)

    def help_items(self, help_text: str, ctx: Any) -> list[tuple[str, str]]:
        return [(n, help_text) for n in self._names(ctx)]


def make_type(spec: str, custom: dict[str, ArgType] | None = None) -> ArgType:
    """Build a type from its syntax spelling: `int:0-512`, `ipv4`, `mask`, `prefix`, `interface`,
    `interface:any`, `word`, `line`, or a name registered in `custom`."""
    name, _, param = spec.partition(":")
    if custom and spec in custom:
        return custom[spec]
    if custom and name in custom and not param:
        return custom[name]
    if name == "int":
        lo, _, hi = param.partition("-")
        return Int(int(lo), int(hi))
    if name == "ipv4":
        return IPv4()
    if name == "mask":
        return Mask()
    if name == "prefix":
        return Prefix()
    if name == "interface":
        return Interface(param or "config")
    if name == "word":
        return Word()
    if name == "line":
        return Line()
    raise ValueError(f"unknown argument type {spec!r}")
