"""Telnet on the management address: option negotiation as an IOS vty does it, then raw bytes.

The server offers WILL ECHO and WILL SUPPRESS-GO-AHEAD (so clients go to character-at-a-time mode
and let the device echo) and asks DO NAWS (the window size drives paging and line width). Every IAC
sequence is stripped from the data before the engine sees it; CR NUL / CR LF are left to the engine,
which treats every Enter variant alike. The codec is pure so garbage and split sequences can be
unit-tested without a socket, and it bounds every buffer so binary junk cannot grow memory.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from emulators.transports.host import DeviceHost

log = logging.getLogger("emulators.transports.telnet")

IAC, DONT, DO, WONT, WILL, SB, GA, EL, EC, AYT, AO, IP, BRK, DM, NOP, SE = (
    255, 254, 253, 252, 251, 250, 249, 248, 247, 246, 245, 244, 243, 242, 241, 240)
ECHO, SGA, TTYPE, NAWS, LINEMODE = 1, 3, 24, 31, 34
OURS = (ECHO, SGA)   # options the server performs
THEIRS = (NAWS, SGA)  # options the server accepts from the client
MAX_SB = 64


@dataclass
class Decoded:
    data: bytes = b""                                      # payload for the engine
    reply: bytes = b""                                     # negotiation answers for the client
    windows: list[tuple[int, int]] = field(default_factory=list)  # NAWS reports (width, height)


class TelnetCodec:
    """Incremental telnet decoder with a minimal, loop-free option negotiation (answer only on change)."""

    def __init__(self) -> None:
        self._state = "data"
        self._cmd = 0
        self._sb = bytearray()
        self._ours_on: set[int] = set()     # options we perform (we said WILL and were not refused)
        self._theirs_on: set[int] = set()   # options the client performs
        self._asked: set[int] = set()       # options we asked the client for with DO
        self._refused: set[int] = set()     # options the client asked us for that we won't do
        self._declined: set[int] = set()    # options the client offered that we don't want

    def greeting(self) -> bytes:
        """What the server sends first: WILL ECHO, WILL SGA, DO SGA, DO NAWS."""
        self._ours_on.update(OURS)
        self._asked.update((SGA, NAWS))
        return bytes([IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, SGA, IAC, DO, NAWS])

    @staticmethod
    def encode(data: bytes) -> bytes:
        """Engine output onto the wire: a 0xFF data byte must be doubled."""
        return data.replace(b"\xff", b"\xff\xff")

    def decode(self, chunk: bytes) -> Decoded:
        out = Decoded()
        data = bytearray()
        reply = bytearray()
        for b in chunk:
            st = self._state
            if st == "data":
                if b == IAC:
                    self._state = "iac"
                else:
                    data.append(b)
            elif st == "iac":
                self._state = "data"
                if b == IAC:
                    data.append(IAC)
                elif b in (WILL, WONT, DO, DONT):
                    self._cmd, self._state = b, "opt"
                elif b == SB:
                    self._sb.clear()
                    self._state = "sb"
                elif b == AYT:
                    reply += b"\r\n[Yes]\r\n"
                elif b == IP:
                    data.append(0x03)   # interrupt process: Ctrl-C to the engine
                # NOP, GA, DM, BRK, AO, EC, EL, SE outside SB and unknown commands: ignored
            elif st == "opt":
                self._state = "data"
                reply += self._negotiate(self._cmd, b)
            elif st == "sb":
                if b == IAC:
                    self._state = "sb-iac"
                elif len(self._sb) < MAX_SB:
                    self._sb.append(b)
            elif st == "sb-iac":
                if b == SE:
                    self._state = "data"
                    self._subnegotiation(bytes(self._sb), out)
                    self._sb.clear()
                elif b == IAC:
                    self._state = "sb"
                    if len(self._sb) < MAX_SB:
                        self._sb.append(IAC)
                else:  # a broken subnegotiation: drop it and read on as data
                    self._state = "data"
                    self._sb.clear()
        out.data = bytes(data)
        out.reply = bytes(reply)
        return out

    def _negotiate(self, cmd: int, opt: int) -> bytes:
        """Answer a WILL/WONT/DO/DONT only when it changes an option's state (RFC 854's loop rule)."""
        if cmd == DO:
            if opt in OURS:
                if opt in self._ours_on:
                    return b""
                self._ours_on.add(opt)
                return bytes([IAC, WILL, opt])
            if opt in self._refused:
                return b""
            self._refused.add(opt)
            return bytes([IAC, WONT, opt])
        if cmd == DONT:
            if opt in self._ours_on:
                self._ours_on.discard(opt)
                return bytes([IAC, WONT, opt])
            return b""
        if cmd == WILL:
            if opt in THEIRS:
                if opt in self._theirs_on:
                    return b""
                self._theirs_on.add(opt)
                return b"" if opt in self._asked else bytes([IAC, DO, opt])
            if opt in self._declined:
                return b""
            self._declined.add(opt)
            return bytes([IAC, DONT, opt])
        # WONT: an acknowledgement or a refusal; answer only if it turns an option off
        self._asked.discard(opt)
        if opt in self._theirs_on:
            self._theirs_on.discard(opt)
            return bytes([IAC, DONT, opt])
        return b""

    @staticmethod
    def _subnegotiation(sb: bytes, out: Decoded) -> None:
        if len(sb) == 5 and sb[0] == NAWS:
            width, height = (sb[1] << 8) | sb[2], (sb[3] << 8) | sb[4]
            out.windows.append((width, height))


async def serve_telnet(host: DeviceHost, address: str, port: int) -> asyncio.AbstractServer:
    """Listen on (address, port); one CLI session per connection, dialog starting at `Username:`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        codec = TelnetCodec()
        link = None
        try:
            if not host.allows("telnet"):
                log.info("telnet %s: refused by the vty lines' transport input", peer)
                return
            writer.write(codec.greeting())
            link = host.attach("telnet", peer, lambda data: writer.write(codec.encode(data)), writer.close)
            link.start()
            while link.alive:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                dec = codec.decode(chunk)
                if dec.reply:
                    writer.write(dec.reply)
                for width, height in dec.windows:
                    link.set_window(width, height)
                link.feed(dec.data)
        except asyncio.CancelledError:
            pass  # daemon shutdown: end quietly (cancellation of a stream handler is logged otherwise)
        except (ConnectionError, OSError) as exc:
            log.debug("telnet %s: %s", peer, exc)
        except Exception:
            log.exception("telnet %s: session failed", peer)
        finally:
            if link is not None:
                link.detach()
            writer.close()

    return await asyncio.start_server(handle, address, port, reuse_address=True)
