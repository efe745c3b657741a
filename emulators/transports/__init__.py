"""Transports that put a device's CLI engine on the wire: SSH, telnet and the console socket.

The engine (`emulators.cli.session.CliSession`) takes raw bytes and owns echo, Enter handling, paging
and the login dialog, so these adapters stay thin: they move bytes, negotiate their protocol and tell
the engine the window size. `DeviceHost` owns the device and every live session, which is what a
`reload` or a SIGTERM has to close.
"""
from emulators.transports.host import DeviceHost, Link
from emulators.transports.telnet import TelnetCodec

__all__ = ["DeviceHost", "Link", "TelnetCodec"]
