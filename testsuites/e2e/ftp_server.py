"""A small FTP server (RFC 959 subset: USER, PASS, TYPE, PWD, PASV, EPSV, PORT, EPRT, RETR, QUIT) run
inside a lab node, so a real FTP client (Python's ftplib) can make the control and data connections
the flow classifier must keep in one flow. Serves one file, `data.bin`, of --size seeded bytes."""
from __future__ import annotations

import argparse
import random
import socket
import threading


def serve_client(conn: socket.socket, ip: str, payload: bytes) -> None:
    f = conn.makefile("rwb", buffering=0)

    def say(line: str) -> None:
        f.write(line.encode() + b"\r\n")
    say("220 twin FTP ready")
    data_sock: socket.socket | None = None
    active: tuple[str, int] | None = None
    while True:
        line = f.readline()
        if not line:
            break
        cmd, _, arg = line.decode(errors="replace").strip().partition(" ")
        cmd = cmd.upper()
        if cmd == "USER":
            say("331 password please")
        elif cmd == "PASS":
            say("230 logged in")
        elif cmd in ("TYPE", "MODE", "STRU"):
            say("200 ok")
        elif cmd == "PWD":
            say('257 "/"')
        elif cmd in ("PASV", "EPSV"):
            data_sock = socket.socket()
            data_sock.bind((ip, 0))
            data_sock.listen(1)
            port = data_sock.getsockname()[1]
            if cmd == "PASV":
                say(f"227 Entering Passive Mode ({ip.replace('.', ',')},{port >> 8},{port & 255})")
            else:
                say(f"229 Entering Extended Passive Mode (|||{port}|)")
        elif cmd == "PORT":
            h = arg.split(",")
            active = (".".join(h[:4]), int(h[4]) * 256 + int(h[5]))
            say("200 PORT ok")
        elif cmd == "EPRT":
            _, _, host, port, _ = arg.split(arg[0])
            active = (host, int(port))
            say("200 EPRT ok")
        elif cmd == "RETR":
            if (data_sock is None and active is None) or arg != "data.bin":
                say("550 no such file or no PASV/PORT")
                continue
            say("150 opening data connection")
            if active is not None:            # active mode: the server connects to the client
                d = socket.create_connection(active, timeout=10)
                d.sendall(payload)
                d.close()
                active = None
                say("226 transfer complete")
                continue
            d, _ = data_sock.accept()
            d.sendall(payload)
            d.close()
            data_sock.close()
            data_sock = None
            say("226 transfer complete")
        elif cmd == "QUIT":
            say("221 bye")
            break
        else:
            say("502 not implemented")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--size", type=int, default=200_000)
    a = ap.parse_args()
    payload = random.Random(7).randbytes(a.size)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.ip, a.port))
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_client, args=(conn, a.ip, payload), daemon=True).start()


if __name__ == "__main__":
    main()
