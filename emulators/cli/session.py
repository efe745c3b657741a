"""One CLI session on a device, independent of the transport that carries it.

The transport adapter (pty console, SSH channel, telnet connection, a test) hands over raw bytes
with `feed()` and gets everything to send through the `write` callback: echo of each typed
character, prompts, command output (CRLF line ends, no ANSI codes), paging prompts, dialogs. All
the terminal behaviour clients depend on lives here, so every transport behaves identically.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from . import pipes
from .context import Ask, Confirm, Context, ModeStack, Wait
from .pager import Pager
from .parser import UNRECOGNIZED, complete, format_rows, format_words, help_for
from .runner import call_handler, error_lines, resolve
from .terminal import Decoder, Key, LineEditor

if TYPE_CHECKING:
    from ..device import BaseDevice

log = logging.getLogger(__name__)

HISTORY_SIZE = 20


class CliSession:
    """An IOS-like terminal session. Thread-safety: every entry point takes the device lock, so
    asynchronous log messages (link watcher) and input never interleave inside one session."""

    def __init__(self, device: "BaseDevice", *, transport: str,
                 write: Callable[[bytes], None], close: Callable[[], None],
                 peer: str = "", authenticated_user: str | None = None,
                 width: int = 80, height: int = 24) -> None:
        self.device = device
        self.transport = transport
        self.peer = peer
        self.user = authenticated_user or ""
        self._write_cb = write
        self._close_cb = close
        self.width = width
        self.length = height if height else 24
        self._width_set = False
        self._length_set = False
        self.monitor = False
        self.privilege = 1
        self.cs = device.command_set()
        self.modes = ModeStack(self.cs)
        self.decoder = Decoder()
        self.editor = LineEditor()
        self.history: list[str] = []
        self._hist_pos = 0
        self.state = "new"
        self._out: list[str] = []
        self._pending_logs: list[str] = []
        self._gen: Generator[Any, Any, Any] | None = None
        self._gen_ctx: Context | None = None
        self._gen_pipe: tuple[str, str] | None = None
        self._gen_abortable = True
        self._question: Ask | Confirm | Wait | None = None
        self._pager: Pager | None = None
        self._logout = False
        self._done: tuple[str, str] | None = None     # the command whose output is pending
        self._closed = False
        self._in_feed = False
        self.created = time.time()
        self.last_input = self.created
        self.line_name = device.register_session(self)

    # ------------------------------------------------------------------ public API
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def prompt(self) -> str:
        mode = self.cs.modes[self.modes.mode]
        name = self.device.prompt_hostname()
        if mode.name == "exec":
            return name + ("#" if self.privilege > 1 else ">")
        return name + mode.prompt

    def start(self) -> None:
        """Show the login dialog if this line requires one, else the first prompt."""
        with self.device.lock:
            if self._closed or self.state != "new":
                return
            line = self.device.line_config("con" if self.transport == "console" else "vty")
            if self.user:
                self.privilege = self.device.user_privilege(self.user)
                self.device.session_login(self)
                self._emit("\r\n")
                self._show_prompt()
            elif self.transport != "ssh" and line.login:
                self._emit("\r\n\r\nUser Access Verification\r\n\r\n")
                self._gen_abortable = False
                self._run_generator(self._login_dialog(), Context(self.device, self.modes, session=self,
                                                                   transport=self.transport, peer=self.peer),
                                    None)
            else:
                self.privilege = line.privilege
                self.device.session_login(self)
                self._emit("\r\n")
                self._show_prompt()
            self._flush()

    def feed(self, data: bytes) -> None:
        """Process bytes typed by the client, in any chunking."""
        with self.device.lock:
            if self._closed:
                return
            if self.state == "new":
                self.start()
            self.last_input = time.time()
            self._in_feed = True
            try:
                for key in self.decoder.feed(bytes(data)):
                    if self._closed:
                        break
                    try:
                        self._key(key)
                    except Exception:  # the session must survive anything a client sends
                        log.exception("%s: session error on key %r", self.device.name, key)
                        self._recover()
                    if self.device.pending_reload:
                        self.device.perform_reload()
                        break
                    if self._logout:
                        self._end()
                        break
            finally:
                self._in_feed = False
                self._flush()

    def set_window(self, width: int, height: int) -> None:
        """The client's window size (SSH pty request / telnet NAWS); `terminal width/length` win."""
        with self.device.lock:
            if width and not self._width_set:
                self.width = max(0, min(512, width))
            if height and not self._length_set:
                self.length = max(0, min(512, height))

    def set_terminal(self, *, width: int | None = None, length: int | None = None) -> None:
        """`terminal width/length` from the CLI: explicit settings stick over window-size updates."""
        if width is not None:
            self.width, self._width_set = width, True
        if length is not None:
            self.length, self._length_set = length, True

    def notify(self, message: str) -> None:
        """An asynchronous log line for this session (console logging / terminal monitor). At an
        idle prompt it is printed and the prompt and typed text redrawn, as IOS does with
        `logging synchronous`; while a command runs it waits for the next prompt."""
        with self.device.lock:
            if self._closed:
                return
            if self.state == "command" and not self._in_feed and self._gen is None:
                self._emit("\r\n" + message + "\r\n" + self.prompt + self.editor.text)
                self._flush()
            else:
                self._pending_logs.append(message)

    def logout(self) -> None:
        """End the session once the current command's output is written."""
        self._logout = True

    def close(self) -> None:
        """End the session from the device side (reload, `clear line`)."""
        with self.device.lock:
            self._end()

    # ------------------------------------------------------------------ output
    def _emit(self, text: str) -> None:
        self._out.append(text)

    def _flush(self) -> None:
        if not self._out:
            return
        data = "".join(self._out).encode("ascii", "replace")
        self._out = []
        try:
            self._write_cb(data)
        except Exception:  # a transport that went away must not break the device
            log.debug("%s: write failed", self.device.name, exc_info=True)

    def _show_prompt(self) -> None:
        for msg in self._pending_logs:
            self._emit(msg + "\r\n")
        self._pending_logs = []
        self.state = "command"
        self.editor = LineEditor()
        self._emit(self.prompt)

    def _write_lines(self, lines: list[str]) -> None:
        if lines:
            self._emit("\r\n".join(lines) + "\r\n")

    def _end(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.state = "closed"
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        self._flush()
        self.device.unregister_session(self)
        try:
            self._close_cb()
        except Exception:
            log.debug("%s: close callback failed", self.device.name, exc_info=True)

    def _recover(self) -> None:
        self._gen = None
        self._pager = None
        self._emit("\r\n% Command failed\r\n")
        self._show_prompt()

    # ------------------------------------------------------------------ keys
    def _key(self, key: Key) -> None:
        if self.state == "more":
            self._more_key(key)
        elif self.state == "confirm":
            self._confirm_key(key)
        elif self.state == "ask":
            self._ask_key(key)
        elif self.state == "wait":
            if key.kind == "ctrl" and key.value in "CZ^" and self._gen_abortable:
                self._emit("\r\n")
                self._abort_generator()
        elif self.state == "command":
            self._command_key(key)

    def _edit_key(self, key: Key) -> bool:
        """Keys common to every line input; True if handled."""
        if key.kind == "char":
            self._emit(self.editor.insert(key.value))
        elif key.kind == "backspace":
            self._emit(self.editor.backspace())
        elif key.kind == "ctrl" and key.value == "U":
            self._emit(self.editor.clear())
        elif key.kind == "ctrl" and key.value == "W":
            self._emit(self.editor.erase_word())
        else:
            return False
        return True

    def _command_key(self, key: Key) -> None:
        if key.kind == "enter":
            self._emit("\r\n")
            self._execute(self.editor.take())
        elif key.kind == "char" and key.value == "?":
            self._help()
        elif key.kind == "tab":
            self._complete()
        elif key.kind == "ctrl" and key.value == "C":
            self._emit("^C\r\n")
            self._show_prompt()
        elif key.kind == "ctrl" and key.value == "Z":
            if self.modes.in_config:
                self._emit("^Z\r\n")
                self.modes.end()
                self.device.config_session_ended(self)
                self._show_prompt()
        elif key.kind in ("up", "down") or (key.kind == "ctrl" and key.value in "PN"):
            self._history_key(-1 if key.kind == "up" or key.value == "P" else 1)
        elif key.kind == "ctrl" and key.value == "R":
            self._emit("\r\n" + self.prompt + self.editor.text)
        else:
            self._edit_key(key)

    def _ask_key(self, key: Key) -> None:
        if key.kind == "enter":
            self._emit("\r\n")
            self._resume(self.editor.take())
        elif key.kind == "ctrl" and key.value in "CZ":
            if self._gen_abortable:
                self._emit("\r\n")
                self._abort_generator()
        else:
            self._edit_key(key)

    def _confirm_key(self, key: Key) -> None:
        yes = key.kind == "enter" or (key.kind == "char" and key.value in "yY")
        self._emit("\r\n")
        self._resume(yes)

    def _more_key(self, key: Key) -> None:
        assert self._pager is not None
        self._emit(self._pager.key(key.kind, key.value))
        if not self._pager.active:
            self._pager = None
            self._show_prompt()

    def _history_key(self, step: int) -> None:
        if not self.history:
            return
        self._hist_pos = max(0, min(len(self.history), self._hist_pos + step))
        text = self.history[self._hist_pos] if self._hist_pos < len(self.history) else ""
        self._emit(self.editor.replace(text))

    # ------------------------------------------------------------------ help and completion
    def _help_ctx(self) -> Context:
        return Context(self.device, self.modes, session=self, mode=self.modes.mode, user=self.user,
                       transport=self.transport, peer=self.peer, privilege=self.privilege)

    def _help(self) -> None:
        text = self.editor.text
        self._emit("?\r\n")
        ctx = self._help_ctx()
        mode: str | None = self.modes.mode
        h = None
        while mode is not None:
            h = help_for(self.cs, mode, text, ctx, self.privilege, len(self.prompt))
            if not (h.error and h.error[0] == UNRECOGNIZED):
                break
            parent = self.cs.modes[mode].parent
            mode = parent if parent and self.cs.modes[parent].config else None
        assert h is not None
        if h.error:
            lines = h.error
        elif h.rows:
            lines = format_rows(h.rows) + [""]
        else:
            lines = format_words(h.words, self.width) + [""]
        self._write_lines(lines)
        self._emit(self.prompt + text)

    def _complete(self) -> None:
        text = self.editor.text
        ctx = self._help_ctx()
        mode: str | None = self.modes.mode
        word = None
        while mode is not None and word is None:
            word = complete(self.cs, mode, text, ctx, self.privilege)
            parent = self.cs.modes[mode].parent
            mode = parent if parent and self.cs.modes[parent].config else None
        if word is None:
            self._emit("\r\n" + self.prompt + text)
            return
        partial = text.split()[-1]
        if word.startswith(partial):
            self._emit(self.editor.append(word[len(partial):] + " "))
        else:
            self._emit(self.editor.erase(len(partial)) + self.editor.append(word + " "))

    # ------------------------------------------------------------------ execution
    def _execute(self, line: str) -> None:
        if line.strip():
            self.history.append(line.strip())
            del self.history[:-HISTORY_SIZE]
        self._hist_pos = len(self.history)
        if line.lstrip().startswith("!"):        # a comment, as in pasted configs
            self._show_prompt()
            return
        ctx = self._help_ctx()
        result = resolve(self.cs, self.modes, line, ctx, self.privilege)
        if result.status == "empty":
            self._show_prompt()
            return
        if result.status != "ok":
            self._write_lines(error_lines(result, len(self.prompt)))
            self._show_prompt()
            return
        if result.via_do:
            ctx.modes = ModeStack(self.cs)
            ctx.mode = "exec"
        else:
            self.modes.pop_to(result.mode)
            ctx.mode = result.mode
        self.device.record_command(self, ctx.mode, line.strip())
        self._done = (ctx.mode, line.strip())
        assert result.node is not None
        try:
            res = call_handler(self.device, result.node, ctx, result.args)
        except Exception:
            log.exception("%s: command %r failed", self.device.name, line)
            ctx.output = ["% Command failed"]
            res = None
        if isinstance(res, Generator):
            self._gen_abortable = True
            self._run_generator(res, ctx, result.pipe)
        else:
            self._finish(ctx, result.pipe)

    def _run_generator(self, gen: Generator[Any, Any, Any], ctx: Context, pipe: tuple[str, str] | None) -> None:
        self._gen, self._gen_ctx, self._gen_pipe = gen, ctx, pipe
        self._advance(None, first=True)

    def _resume(self, answer: Any) -> None:
        self._advance(answer)

    def _advance(self, answer: Any, first: bool = False, error: BaseException | None = None) -> None:
        gen, ctx = self._gen, self._gen_ctx
        assert gen is not None and ctx is not None
        try:
            if error is not None:
                q = gen.throw(error)
            else:
                q = next(gen) if first else gen.send(answer)
        except StopIteration:
            self._gen = None
            self._finish(ctx, self._gen_pipe)
            return
        except Exception:
            log.exception("%s: dialog failed", self.device.name)
            self._gen = None
            ctx.output.append("% Command failed")
            self._finish(ctx, None)
            return
        self._write_lines(ctx.take_output())
        self._question = q
        self._emit(q.prompt)
        if isinstance(q, Wait):
            self.state = "wait"
            self._start_wait(gen, q)
        elif isinstance(q, Confirm):
            self.state = "confirm"
        else:
            self.state = "ask"
            self.editor = LineEditor(echo=q.echo)

    def _start_wait(self, gen: Generator[Any, Any, Any], q: Wait) -> None:
        """Run the blocking part on its own thread; the answer comes back through the device's
        dispatch (the daemon's event loop), like a key the user typed."""
        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = q.run()
            except Exception as exc:
                error = exc
            self.device.dispatch(lambda: self._wait_done(gen, result, error))

        threading.Thread(target=work, name=f"{self.device.name}-wait", daemon=True).start()

    def _wait_done(self, gen: Generator[Any, Any, Any], result: Any, error: BaseException | None) -> None:
        with self.device.lock:
            if self._closed or self._gen is not gen or self.state != "wait":
                return                          # aborted with Ctrl-C, or the session ended
            if self._question is not None and self._question.prompt:
                self._emit("\r\n")            # the answer starts below the waiting message
            self._advance(result, error=error)
            if self._logout:
                self._end()
            else:
                self._flush()

    def _abort_generator(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        self._show_prompt()

    def _finish(self, ctx: Context, pipe: tuple[str, str] | None) -> None:
        lines = ctx.take_output()
        if self._done is not None:
            mode, line = self._done
            self._done = None
            try:
                self.device.command_done(self, mode, line, lines)
            except Exception:
                log.exception("%s: after %r", self.device.name, line)
        if pipe:
            lines = pipes.apply(lines, *pipe)
        if self._logout or self._closed:
            self._write_lines(lines)
            return
        if self.length and len(lines) >= self.length:
            pager = Pager(lines, self.length, self.width)
            self._emit(pager.first())
            if pager.active:
                self._pager = pager
                self.state = "more"
                return
        else:
            self._write_lines(lines)
        self._show_prompt()

    # ------------------------------------------------------------------ login
    def _login_error(self, exc: BaseException) -> bool:
        log.error("%s: login authentication failed with %r", self.device.name, exc)
        return False

    def _login_dialog(self) -> Generator[Any, Any, None]:
        for _ in range(3):
            user = yield Ask("Username: ")
            while not user.strip():             # Enter alone asks again, as IOS does: not an attempt
                user = yield Ask("Username: ")
            password = yield Ask("Password: ", echo=False)
            def check(user: str = user, password: str = password) -> bool:
                return self.device.check_password(user, password, transport=self.transport, peer=self.peer)

            if self.device.login_needs_network():
                ok = yield Wait(check, on_error=self._login_error)
            else:
                ok = check()                    # the local table answers at once
            if ok:
                self.user = user
                self.privilege = self.device.user_privilege(user)
                self.device.session_login(self)
                self._emit("\r\n")
                return
            assert self._gen_ctx is not None
            self._gen_ctx.print("% Login invalid")
            self._gen_ctx.print("")
        self._logout = True
