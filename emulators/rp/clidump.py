"""The CLI dump: every configuration command an image's parser accepts, as templates.

Both units walk every statically defined parse node of their command trees, all modes but exec
collapsed into one global config mode (a configuration command is unique across the whole CLI), and
write the result one template per line, sorted and deduplicated (the specification's binary tree).
The Standby compares the Active's dump with its own to find the diff lists, and builds a matcher
from the Active's dump, so it can tell which template any config line is an instance of without
having the Active's parser.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from emulators.cli.parser import children, match_word, tokenize
from emulators.cli.tree import CommandSet, Mode, Node

from .images import arg_spec, normalize

# Navigation, not configuration: never in a dump, never synced.
NAVIGATION = frozenset({"cmd_end", "cmd_exit"})


def _label(node: Node) -> str:
    return node.keyword if node.keyword is not None else f"<{node.spec}>"


def cli_dump(cs: CommandSet) -> list[str]:
    """The sorted, deduplicated templates of every config mode of `cs`."""
    out: set[str] = set()

    def visit(node: Node, words: list[str], depth: int) -> None:
        for c in node.children:
            if c.link is not None or c.pipe_modifier is not None or c.keyword == "|":
                continue
            w = words + [_label(c)]
            if c.handler is not None and c.handler not in NAVIGATION:
                out.add(normalize(" ".join(w)))
            if depth < 32:
                visit(c, w, depth + 1)

    for name, mode in cs.modes.items():
        if mode.config:
            visit(cs.root(name), [], 0)
    return sorted(out)


@dataclass
class _MatchCtx:
    """What argument types need while matching lines that were already accepted once: any
    plausible interface name is taken (`lenient`)."""

    names: Callable[[str], list[str]] | None = None
    lenient: bool = True

    def interface_names(self, purpose: str) -> list[str]:
        return list(self.names(purpose)) if self.names else []


@dataclass
class Match:
    template: str        # normalized
    canonical: str       # the line with every keyword spelled out
    handler: Any = None  # what the command runs (a device method name, or a matcher's template)


def walk_line(cs: CommandSet, mode: str, line: str, ctx: Any | None = None) -> Match | None:
    """Follow `line` through `mode`'s tree; the template and canonical text of the command it
    names, or None if it is not a complete command there."""
    ctx = ctx or _MatchCtx()
    node = cs.root(mode)
    words: list[str] = []
    canon: list[str] = []
    for tok in tokenize(line):
        cands = [c for c in children(cs, node, 15) if c.link is None and c.keyword != "|"]
        status, nxt, value = match_word(cands, tok.text, ctx)
        if status != "ok" or nxt is None:
            return None
        node = nxt
        words.append(_label(nxt))
        if nxt.arg is not None and nxt.arg.rest_of_line:
            canon.append(line[tok.start:].rstrip())
            break
        canon.append(nxt.keyword if nxt.keyword is not None else
                     (value if isinstance(value, str) else tok.text))
    if node.handler is None or not words:
        return None
    return Match(normalize(" ".join(words)), " ".join(canon), node.handler)


class TemplateMatcher:
    """A parser built from a dump: which template of that dump (if any) a config line is."""

    def __init__(self, templates: Iterable[str]) -> None:
        self.templates = sorted(set(templates))
        self._cs = CommandSet([Mode("config", "(config)#", None)])
        for t in self.templates:
            syntax, n = [], 0
            for w in t.split():
                if w.startswith("<"):
                    syntax.append(f"<a{n}:{arg_spec(w)}>")
                    n += 1
                else:
                    syntax.append(w)
            try:
                self._cs.add("config", " ".join(syntax), t)
            except (ValueError, KeyError):
                continue        # a type this image does not know: no line can match it here

    def match(self, line: str) -> Match | None:
        return walk_line(self._cs, "config", line.strip())

    def __contains__(self, line: str) -> bool:
        return self.match(line) is not None
