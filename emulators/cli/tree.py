"""Command trees: one per mode, declared once, from which parsing, `?` help, Tab completion and the
parser errors are all derived.

A device kind declares its commands with the `command` decorator on methods of its device class
(handlers are bound methods, so a subclass can override one). Syntax strings use keywords, typed
arguments `<name:type>` and optional trailing groups `[...]`:

    @command("config", "ip route <prefix:ipv4> <mask:mask> <nexthop:ipv4>",
             help={"route": "Establish static routes", "prefix": "Destination prefix"})
    def ip_route(self, ctx, prefix, mask, nexthop): ...

Types: `int:LO-HI`, `ipv4`, `mask`, `prefix`, `interface` (existing, configurable interfaces),
`interface:show` (every interface, for show commands), `word`, `line` (rest of the line).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .types import ArgType, Line, make_type

# Help for keywords that most trees share; a command's own `help=` wins.
KEYWORD_HELP: dict[str, str] = {
    "show": "Show running system information",
    "no": "Negate a command or set its defaults",
    "ip": "Global IP configuration subcommands",
    "terminal": "Set terminal line parameters",
    "configure": "Enter configuration mode",
    "copy": "Copy from one file to another",
    "write": "Write running configuration to memory, network, or terminal",
    "exit": "Exit from configure mode",
    "end": "Exit from configure mode",
    "do": "To run exec commands in config mode",
    "interface": "Select an interface to configure",
    "logging": "Modify message logging facilities",
    "line": "Configure a terminal line",
    "username": "Establish User Name Authentication",
    "hostname": "Set system's network name",
    "enable": "Turn on privileged commands",
    "disable": "Turn off privileged commands",
    "description": "Interface specific description",
    "shutdown": "Shutdown the selected interface",
}


@dataclass(eq=False)
class Node:
    """One word position of a command: a keyword or a typed argument."""

    keyword: str | None = None
    arg: ArgType | None = None
    name: str = ""                       # argument name the handler receives
    spec: str = ""                       # argument type spelling, to merge identical nodes
    help: str = ""
    children: list["Node"] = field(default_factory=list)
    handler: Callable[..., Any] | str | None = None   # str: a method name on the device
    fixed: dict[str, Any] = field(default_factory=dict)
    priv: int = 15                       # lowest privilege of any command through this node
    handler_priv: int = 15
    hidden: bool = True                  # hidden only while every command through it is hidden
    pipe: bool = False                   # output modifiers (`| include ...`) allowed here
    link: str | None = None              # continue in this mode's tree (`do` -> "exec")
    pipe_modifier: str | None = None     # set on the pipe tree's modifier keywords

    @property
    def label(self) -> str:
        return self.keyword if self.keyword is not None else (self.arg.label if self.arg else "")

    def find_child(self, keyword: str | None, name: str, spec: str) -> "Node | None":
        for c in self.children:
            if keyword is not None and c.keyword == keyword:
                return c
            if keyword is None and c.keyword is None and c.name == name and c.spec == spec:
                return c
        return None


@dataclass
class Mode:
    """A CLI mode. `prompt` is what follows the hostname (`(config-if)#`); the exec mode's prompt is
    `>` or `#` by privilege. `parent` is where `exit` goes and where unknown commands are retried
    (IOS runs a global command typed in a sub-mode and leaves the sub-mode)."""

    name: str
    prompt: str
    parent: str | None = None
    config: bool = True


@dataclass
class Spec:
    mode: str
    syntax: str
    help: dict[str, str]
    priv: int | None
    hidden: bool
    pipe: bool | None
    fixed: dict[str, Any]


def command(modes: str | Iterable[str], syntax: str, *, help: dict[str, str] | None = None,
            priv: int | None = None, hidden: bool = False, pipe: bool | None = None,
            **fixed: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a CLI command on a device method `def handler(self, ctx, **args)`.

    `fixed` keyword arguments are passed to the handler as they are (e.g. `no=True` for the `no`
    form sharing one handler). `priv` defaults to 15, except nothing: user-exec commands say
    `priv=1`. `pipe` defaults to True for exec commands starting with `show`. A handler may be a
    generator that yields `Ask`/`Confirm` dialogs (see `context.py`)."""
    mode_list = [modes] if isinstance(modes, str) else list(modes)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        specs = fn.__dict__.setdefault("__cli_specs__", [])
        for m in mode_list:
            specs.append(Spec(m, syntax, dict(help or {}), priv, hidden, pipe, dict(fixed)))
        return fn
    return deco


def _syntax_items(syntax: str) -> list[str]:
    return re.findall(r"\[|\]|<[^>]+>|[^\s\[\]]+", syntax)


def expand(syntax: str) -> list[list[str]]:
    """All word sequences a syntax stands for: each optional `[...]` group present or absent."""
    items = _syntax_items(syntax)

    def seq(i: int) -> tuple[list[list[str]], int]:
        out: list[list[str]] = [[]]
        while i < len(items) and items[i] != "]":
            if items[i] == "[":
                inner, i = seq(i + 1)
                if i >= len(items):
                    raise ValueError(f"unbalanced [ in {syntax!r}")
                i += 1
                out = [s + x for s in out for x in [[]] + inner]
            else:
                out = [s + [items[i]] for s in out]
                i += 1
        return out, i

    result, end = seq(0)
    if end != len(items):
        raise ValueError(f"unbalanced ] in {syntax!r}")
    return result


class CommandSet:
    """The modes of one device kind and the command tree of each."""

    def __init__(self, modes: Iterable[Mode], types: dict[str, ArgType] | None = None) -> None:
        self.modes: dict[str, Mode] = {}
        self.roots: dict[str, Node] = {}
        self.types = dict(types or {})
        for m in modes:
            self.add_mode(m)

    def add_mode(self, mode: Mode) -> None:
        self.modes[mode.name] = mode
        root = self.roots.setdefault(mode.name, Node(hidden=False))
        if mode.config and root.find_child("do", "", "") is None:
            root.children.append(Node(keyword="do", help=KEYWORD_HELP["do"], link="exec", priv=15,
                                      hidden=False))

    def root(self, mode: str) -> Node:
        return self.roots[mode]

    def add(self, mode: str, syntax: str, handler: Callable[..., Any] | str, *,
            help: dict[str, str] | None = None, priv: int | None = None, hidden: bool = False,
            pipe: bool | None = None, **fixed: Any) -> None:
        """Add one command (every expansion of its optional groups) to a mode's tree. The mode
        "*config" means every config mode (`end`, `exit`)."""
        if mode == "*config":
            for m in [m.name for m in self.modes.values() if m.config]:
                self.add(m, syntax, handler, help=help, priv=priv, hidden=hidden, pipe=pipe, **fixed)
            return
        if mode not in self.roots:
            raise KeyError(f"unknown mode {mode!r}; declare it in the device's `modes`")
        help = help or {}
        level = priv if priv is not None else 15
        for words in expand(syntax):
            if not words:
                raise ValueError(f"empty command in {syntax!r}")
            node = self.roots[mode]
            for w in words:
                m = re.fullmatch(r"<(\w+):([^>]+)>", w)
                if m:
                    name, spec = m.groups()
                    child = node.find_child(None, name, spec)
                    if child is None:
                        child = Node(arg=make_type(spec, self.types), name=name, spec=spec)
                        node.children.append(child)
                    key = name
                else:
                    if w.startswith("<"):
                        raise ValueError(f"bad argument {w!r} in {syntax!r}: use <name:type>")
                    child = node.find_child(w, "", "")
                    if child is None:
                        child = Node(keyword=w)
                        node.children.append(child)
                    key = w
                if not child.help:
                    child.help = help.get(key) or (KEYWORD_HELP.get(key, "") if m is None else "")
                elif key in help and help[key]:
                    child.help = help[key]
                child.priv = min(child.priv, level) if child.handler or child.children else level
                child.hidden = child.hidden and hidden if (child.handler or child.children) else hidden
                node = child
            node.handler = handler
            node.handler_priv = level
            node.fixed = dict(fixed)
            node.pipe = pipe if pipe is not None else (mode == "exec" and words[0] == "show")

    @classmethod
    def from_class(cls, klass: type) -> "CommandSet":
        """Collect `@command` methods over the class's MRO (subclasses override by method name)."""
        modes: list[Mode] = list(getattr(klass, "modes", ()))
        cs = cls(modes, getattr(klass, "arg_types", None))
        methods: dict[str, Callable[..., Any]] = {}
        for k in reversed(klass.__mro__):
            for attr, value in vars(k).items():
                fn = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
                if callable(fn) and "__cli_specs__" in getattr(fn, "__dict__", {}):
                    methods[attr] = fn
                elif attr in methods and not callable(fn):
                    del methods[attr]
        for attr, fn in methods.items():
            for s in fn.__cli_specs__:
                cs.add(s.mode, s.syntax, attr, help=s.help, priv=s.priv, hidden=s.hidden, pipe=s.pipe,
                       **s.fixed)
        return cs


def _pipe_tree() -> Node:
    bar = Node(keyword="|", help="Output modifiers", priv=0, hidden=False)
    for word, text in (("begin", "Begin with the line that matches"),
                       ("count", "Count number of lines which match regexp"),
                       ("exclude", "Exclude lines that match"),
                       ("include", "Include lines that match"),
                       ("section", "Filter a section of output")):
        kw = Node(keyword=word, help=text, priv=0, hidden=False, pipe_modifier=word)
        kw.children.append(Node(arg=Line(), name="regex", spec="line", help="Regular Expression",
                                priv=0, hidden=False, handler="|", handler_priv=0))
        bar.children.append(kw)
    return bar


PIPE_NODE = _pipe_tree()
