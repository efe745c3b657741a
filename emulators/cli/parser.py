"""Parsing, `?` help and Tab completion over a CommandSet, with IOS's matching rules and messages.

Matching a word at one position: an exact keyword wins; then a typed argument (number, address,
interface) that accepts the word; then a keyword the word abbreviates, which must be unique
(otherwise `% Ambiguous command`); then a generic WORD/LINE argument. Every error carries the column
of the offending word, so the session can print the IOS caret under it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .tree import PIPE_NODE, CommandSet, Node
from .types import NO_MATCH

INVALID = "% Invalid input detected at '^' marker."
INCOMPLETE = "% Incomplete command."
UNRECOGNIZED = "% Unrecognized command"


def ambiguous_message(text: str) -> str:
    return f'% Ambiguous command:  "{text}"'


@dataclass
class Token:
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def tokenize(line: str) -> list[Token]:
    return [Token(m.group(), m.start()) for m in re.finditer(r"\S+", line)]


@dataclass
class Walk:
    """Where consuming a line's words through a tree ended."""

    status: str                      # "ok" | "invalid" | "ambiguous"
    node: Node
    args: dict[str, Any] = field(default_factory=dict)
    error_pos: int = 0
    error_text: str = ""             # for ambiguous: the line up to the ambiguous word
    command: Node | None = None      # the command node a pipe hangs off
    pipe: tuple[str, str] | None = None
    modifier: str | None = None
    via_do: bool = False
    consumed_rest: bool = False
    depth: int = 0                   # words consumed


@dataclass
class ParseResult:
    status: str                      # "ok" | "empty" | "invalid" | "incomplete" | "ambiguous"
    mode: str
    node: Node | None = None
    args: dict[str, Any] = field(default_factory=dict)
    error_pos: int = 0
    error_text: str = ""
    pipe: tuple[str, str] | None = None
    via_do: bool = False

    @property
    def progress(self) -> int:
        """How far the parse got (to choose between a sub-mode's and its parent's error)."""
        return {"ok": 10**9, "incomplete": 10**8, "ambiguous": 10**7}.get(self.status, self.error_pos)


def children(cs: CommandSet, node: Node, priv: int) -> list[Node]:
    """Visible next positions after `node` (a `do` node continues in the exec tree; a complete
    pipe-able command also accepts `|`)."""
    base = cs.root(node.link).children if node.link else node.children
    out = [c for c in base if c.priv <= priv]
    if node.handler is not None and node.pipe and node.handler_priv <= priv:
        out.append(PIPE_NODE)
    return out


def match_word(cands: list[Node], word: str, ctx: Any) -> tuple[str, Node | None, Any]:
    """Resolve one word among candidate nodes -> ("ok"|"ambiguous"|"invalid", node, value)."""
    low = word.lower()
    for c in cands:
        if c.keyword is not None and c.keyword.lower() == low:
            return "ok", c, None
    for c in cands:
        if c.arg is not None and not c.arg.generic:
            v = c.arg.parse(word, ctx)
            if v is not NO_MATCH:
                return "ok", c, v
    pref = [c for c in cands if c.keyword is not None and not c.hidden and c.keyword.lower().startswith(low)]
    if not pref:
        pref = [c for c in cands if c.keyword is not None and c.keyword.lower().startswith(low)]
    if len(pref) == 1:
        return "ok", pref[0], None
    if len(pref) > 1:
        return "ambiguous", None, None
    for c in cands:
        if c.arg is not None and c.arg.generic:
            v = c.arg.parse(word, ctx)
            if v is not NO_MATCH:
                return "ok", c, v
    return "invalid", None, None


def walk(cs: CommandSet, mode: str, line: str, tokens: list[Token], ctx: Any, priv: int) -> Walk:
    node = cs.root(mode)
    w = Walk("ok", node)
    for i, tok in enumerate(tokens):
        cands = children(cs, node, priv)
        status, nxt, value = match_word(cands, tok.text, ctx)
        if status == "invalid" or nxt is None:
            w.status = "ambiguous" if status == "ambiguous" else "invalid"
            w.error_pos = tok.start
            w.error_text = line[:tok.end].strip()
            return w
        if nxt is PIPE_NODE:
            w.command = node
        if node.link == "exec":
            w.via_do = True
        w.depth = i + 1
        node = w.node = nxt
        if nxt.pipe_modifier:
            w.modifier = nxt.pipe_modifier
        if nxt.arg is not None:
            if nxt.arg.rest_of_line:
                value = line[tok.start:].rstrip()
                w.consumed_rest = True
            if w.command is not None:
                w.pipe = (w.modifier or "", value)
            else:
                w.args[nxt.name] = value
            if w.consumed_rest:
                return w
    return w


def parse(cs: CommandSet, mode: str, line: str, ctx: Any, priv: int) -> ParseResult:
    """Parse one command line in `mode` (no sub-mode fallback; the session does that)."""
    tokens = tokenize(line)
    if not tokens:
        return ParseResult("empty", mode)
    w = walk(cs, mode, line, tokens, ctx, priv)
    if w.status != "ok":
        return ParseResult(w.status, mode, error_pos=w.error_pos, error_text=w.error_text)
    target = w.command if w.command is not None else w.node
    complete = w.node.handler is not None and w.node.handler_priv <= priv
    if not complete:
        return ParseResult("incomplete", mode, error_pos=len(line))
    return ParseResult("ok", mode, node=target, args=w.args, pipe=w.pipe, via_do=w.via_do)


@dataclass
class Help:
    rows: list[tuple[str, str]] = field(default_factory=list)   # for "word ?"
    words: list[str] = field(default_factory=list)              # for "wor?"
    error: list[str] = field(default_factory=list)              # message lines instead


def help_for(cs: CommandSet, mode: str, line: str, ctx: Any, priv: int, prompt_len: int) -> Help:
    """What `?` prints for the text typed so far."""
    tokens = tokenize(line)
    partial = bool(tokens) and not line[-1:].isspace()
    done = tokens[:-1] if partial else tokens
    w = walk(cs, mode, line, done, ctx, priv)
    if w.status == "ambiguous":
        return Help(error=[ambiguous_message(w.error_text)])
    if w.status == "invalid":
        if w.depth == 0:
            return Help(error=[UNRECOGNIZED])
        return Help(error=[" " * (prompt_len + w.error_pos) + "^", INVALID])
    node = w.node
    if w.consumed_rest:
        return Help(rows=[("<cr>", "")]) if not partial else Help(words=[])
    cands = [c for c in children(cs, node, priv) if not c.hidden]
    if partial:
        pre = tokens[-1].text.lower()
        words: list[str] = []
        for c in cands:
            if c.keyword is not None:
                if c.keyword.lower().startswith(pre):
                    words.append(c.keyword)
            elif c.arg is not None and c.arg.could_start(tokens[-1].text, ctx):
                items = c.arg.help_items(c.help, ctx)
                words += [lab for lab, _ in items if lab.lower().startswith(pre) or not c.arg.completions(ctx)]
        if not words:
            return Help(error=[UNRECOGNIZED])
        return Help(words=sorted(dict.fromkeys(words), key=lambda s: (s == "|", s.lower())))
    args = [row for c in cands if c.arg is not None for row in c.arg.help_items(c.help, ctx)]
    kws = sorted(((c.keyword, c.help) for c in cands if c.keyword is not None and c is not PIPE_NODE),
                 key=lambda r: r[0].lower())
    rows = args + kws
    if any(c is PIPE_NODE for c in cands):
        rows.append(("|", PIPE_NODE.help))
    if node.handler is not None and node.handler_priv <= priv and node is not cs.root(mode):
        rows.append(("<cr>", ""))
    if not rows:
        return Help(error=[UNRECOGNIZED])
    return Help(rows=rows)


def format_rows(rows: list[tuple[str, str]]) -> list[str]:
    """IOS help layout: two spaces, the word padded to the longest word plus two, the help."""
    width = max(len(lab) for lab, _ in rows)
    return [f"  {lab:<{width}}  {txt}".rstrip() if txt else f"  {lab}" for lab, txt in rows]


def format_words(words: list[str], width: int) -> list[str]:
    """Partial-word help: the candidates on as few lines as fit, each followed by two spaces."""
    width = width or 80
    lines, cur = [], ""
    for wd in words:
        item = wd + "  "
        if cur and len(cur) + len(item) > width:
            lines.append(cur)
            cur = ""
        cur += item
    if cur:
        lines.append(cur)
    return lines


def complete(cs: CommandSet, mode: str, line: str, ctx: Any, priv: int) -> str | None:
    """The full word Tab completes the last partial word to, or None when it is not unique."""
    tokens = tokenize(line)
    if not tokens or line[-1:].isspace():
        return None
    w = walk(cs, mode, line, tokens[:-1], ctx, priv)
    if w.status != "ok" or w.consumed_rest:
        return None
    pre = tokens[-1].text.lower()
    found: list[str] = []
    for c in children(cs, w.node, priv):
        if c.keyword is not None and not c.hidden and c.keyword.lower().startswith(pre):
            if c.keyword.lower() == pre:
                return c.keyword
            found.append(c.keyword)
        elif c.arg is not None:
            found += [v for v in c.arg.completions(ctx) if v.lower().startswith(pre)]
    found = list(dict.fromkeys(found))
    return found[0] if len(found) == 1 else None
