"""The EMS client (claims 14-18): picks a server at random, tries another when one does not answer,
and shows the elements and servers from the servers' memories or from the data store.

    python -m emulators.ems.client --servers 10.0.0.1,10.0.0.2 [--json] COMMAND ...
        status                      every server's own view (role, master, term, elements)
        view [--source db]          elements and servers: from memory (default) or the data store
        element NAME                one element's detail, answered by (or forwarded to) its owner
        events [--since T]          the event log from the data store
        route SRC DST               a circuit route between two edge LANs (addresses or prefixes)
        provision SRC DST | unprovision SRC DST
        load --count N --interval S [--op status]   N requests in a row, failures counted

`twin ems ...` runs this inside a client host of the lab (never in the root namespace).
Exit codes: 0 ok, 1 the request failed, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from .peer_service import PORT, PeerError, PeerUnreachable, call


class Client:
    def __init__(self, servers: list[tuple[str, int]], rng: random.Random | None = None, timeout: float = 5.0) -> None:
        if not servers:
            raise ValueError("no EMS servers given")
        self.servers = servers
        self.rng = rng or random.Random()
        self.timeout = timeout

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        """Ask a random server; on no answer, the others in random order (claims 14, 15, 17). A
        server that answers with an error is final: another would say the same."""
        order = self.servers[:]
        self.rng.shuffle(order)
        tried = []
        for host, port in order:
            try:
                rep = call(host, port, req, timeout=self.timeout)
            except PeerUnreachable as exc:
                tried.append(str(exc))
                continue
            except PeerError as exc:
                if "server not running" in str(exc):
                    tried.append(str(exc))
                    continue
                raise
            rep["answered_by"] = f"{host}:{port}"
            rep["attempts"] = len(tried) + 1
            return rep
        raise PeerUnreachable("no EMS server answered: " + "; ".join(tried))


def _servers(text: str) -> list[tuple[str, int]]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        host, _, port = item.partition(":")
        out.append((host, int(port) if port else PORT))
    return out


def view_from_db(path: Path) -> dict[str, Any]:
    """Claim 16: the view from the data store, without asking any server."""
    from .store import EmsStore

    store = EmsStore(path)
    ifs: dict[str, list[dict[str, Any]]] = {}
    for r in store.interfaces():
        ifs.setdefault(r["element"], []).append(r)
    elements = [e | {"interfaces": ifs.get(e["name"], []), "server": e.get("server_id")} for e in store.elements()]
    return {"servers": store.servers(), "elements": elements, "source": "db"}


def render_view(v: dict[str, Any]) -> list[str]:
    lines = [f"Servers ({v.get('source', 'memory')}):", "  ID  Address          Role      Master  Term  Elements"]
    for s in sorted(v["servers"], key=lambda s: s.get("id") or 0):
        els = s.get("elements")
        n = len(els) if isinstance(els, list) else els
        lines.append(f"  {s.get('id')!s:<3} {s.get('address')!s:<16} {s.get('role')!s:<9} {s.get('master')!s:<7} "
                     f"{s.get('term')!s:<5} {n}")
    lines += ["", "Elements:", "  Name     Address          Server  Reachable  Interfaces"]
    for e in v["elements"]:
        lines.append(f"  {e['name']:<8} {(e.get('address') or e.get('mgmt_ip') or '')!s:<16} {e.get('server')!s:<7} "
                     f"{e.get('reachable')!s:<10} {len(e.get('interfaces') or [])}")
    for u in v.get("unreachable", []):
        lines.append(f"  (server {u['server']} did not answer: {u['error']})")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twin ems", description="Ask the element-management servers.")
    ap.add_argument("--servers", required=True, help="comma-separated addresses (host or host:port)")
    ap.add_argument("--db", type=Path, default=None, help="the data store, for `view --source db` and events")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=5.0)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status")
    v = sub.add_parser("view")
    v.add_argument("--source", choices=("memory", "db"), default="memory")
    e = sub.add_parser("element")
    e.add_argument("name")
    ev = sub.add_parser("events")
    ev.add_argument("--since", type=float, default=0.0)
    for name in ("route", "provision", "unprovision"):
        p = sub.add_parser(name)
        p.add_argument("src")
        p.add_argument("dst")
    ld = sub.add_parser("load")
    ld.add_argument("--count", type=int, default=100)
    ld.add_argument("--interval", type=float, default=0.05)
    ld.add_argument("--op", default="status")
    args = ap.parse_args(argv)
    try:
        client = Client(_servers(args.servers), random.Random(args.seed), args.timeout)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        out = _run(client, args)
    except PeerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, default=str))
    else:
        print("\n".join(_text(args.cmd, out)))
    return 0


def _run(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    if args.cmd == "view" and args.source == "db":
        if args.db is None:
            raise PeerError("--db is needed for --source db")
        return view_from_db(args.db)
    if args.cmd == "status":
        servers = []
        for host, port in client.servers:
            try:
                servers.append(call(host, port, {"op": "status"}, timeout=args.timeout)["server"])
            except PeerError as exc:
                servers.append({"address": host, "role": "unreachable", "error": str(exc)})
        return {"servers": servers}
    if args.cmd == "load":
        ok, failed, retried, t0 = 0, 0, 0, time.monotonic()
        errors: list[str] = []
        for _ in range(args.count):
            try:
                rep = client.request({"op": args.op})
                ok += 1
                retried += rep["attempts"] > 1
                if ok == 1:     # a watcher can start its fault once the load is really flowing
                    print(json.dumps({"started": True, "answered_by": rep["answered_by"]}), flush=True)
            except PeerError as exc:
                failed += 1
                errors.append(str(exc))
            time.sleep(args.interval)
        return {"requests": args.count, "answered": ok, "failed": failed, "retried": retried,
                "seconds": round(time.monotonic() - t0, 3), "errors": errors[:5]}
    req: dict[str, Any] = {"op": args.cmd}
    if args.cmd == "element":
        req["name"] = args.name
    elif args.cmd == "events":
        req["since"] = args.since
    elif args.cmd in ("route", "provision", "unprovision"):
        req.update(src=args.src, dst=args.dst)
    return client.request(req)


def _text(cmd: str, out: dict[str, Any]) -> list[str]:
    if cmd == "view":
        return render_view(out)
    if cmd == "status":
        return [f"{s.get('id', '?')!s:<3} {s.get('address')!s:<16} {s.get('role')!s:<11} master {s.get('master')} "
                f"term {s.get('term')}" for s in out["servers"]]
    if cmd in ("route", "provision", "unprovision"):
        lines = [f"{out['src']} -> {out['dst']}: {' '.join(out['path'])} ({len(out['path']) - 1} hops, "
                 f"coordinated by server {out['coordinator']}, {out['total_ms']} ms)"]
        lines += [f"  server {s['server']}: {s['entry']} .. {s['exit']}" for s in out["segments"]]
        if "circuit" in out:
            lines.append(f"circuit {out['circuit']}: {out['state']}")
        return lines
    if cmd == "element":
        e = out["element"]
        lines = [f"{e['name']} (server {out['server']}, from {out['source']})"]
        lines += [f"  {i['name']:<8} {i['address']:<20} {'up' if i.get('up') else 'down'}" for i in e.get("interfaces", [])]
        lines += [f"  alarm sev {a['severity']} {a['mnemonic']}: {a['text']}" for a in e.get("alarms", [])]
        return lines
    if cmd == "events":
        return [f"{time.strftime('%H:%M:%S', time.localtime(ev['time']))} server {ev['server_id']} {ev['type']} "
                f"{json.dumps(ev.get('detail'))}" for ev in out["events"]]
    return [json.dumps(out, default=str)]


if __name__ == "__main__":
    sys.exit(main())
