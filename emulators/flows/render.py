"""Text tables of flows, nodes, routes and topologies: the same rendering for the nodes' and the MNODE's
`show` commands and for `twin flows`, so an operator reads one format everywhere."""
from __future__ import annotations

from typing import Any


def _bytes(n: int) -> str:
    for unit in ("", "K", "M", "G"):
        if n < 1000:
            return f"{n}{unit}"
        n //= 1000
    return f"{n}T"


def flows_table(flows: list[dict[str, Any]], with_node: bool = False) -> list[str]:
    head = ("Node       " if with_node else "") + \
        "Flow ID   Type   Role       Path         Topo  Route                          Pkts fwd/rev   Bytes   State   Tuple"
    out = [head]
    for f in flows:
        route = ">".join(f.get("route") or []) or ">".join(x or "-" for x in (f.get("prev", [None])[0:1] +
                                                                          f.get("next", [None])[0:1]))
        pk = f"{f['pkts'][0]}/{f['pkts'][1]}"
        line = (f"{f.get('node', ''):<11}" if with_node else "") + \
            (f"{f['id']:<9} {f['type']:<6} {f['role']:<10} {str(f.get('path', ''))[:12]:<12} {f['topology']:<5} "
             f"{route[:30]:<30} {pk:<14} {_bytes(sum(f['bytes'])):<7} {f['state']:<7} {f['tuple']}")
        out.append(line)
    if len(out) == 1:
        out.append("(no flows)")
    return out


def node_stats(report: dict[str, Any]) -> list[str]:
    c = report.get("counters", {})
    out = [f"Node {report.get('node')} ({report.get('role')}, cluster {report.get('cluster')}), "
           f"topology {report.get('topology')}, {'ready' if report.get('ready') else 'waiting for a topology'}",
           f"  Active flows {report.get('active', 0)}, {report.get('pps', 0)} packets/s",
           f"  Received {c.get('rx_packets', 0)} packets, {c.get('rx_bytes', 0)} bytes; "
           f"sent {c.get('tx_packets', 0)} packets, {c.get('tx_bytes', 0)} bytes; "
           f"to external networks {c.get('egress_packets', 0)}",
           f"  Flows new {c.get('flows_new', 0)}, ended {c.get('flows_ended', 0)}, joined {c.get('flows_joined', 0)}",
           f"  Processing latency p50 {report.get('latency_us', {}).get('p50')} us, "
           f"p99 {report.get('latency_us', {}).get('p99')} us; flow setup p50 "
           f"{report.get('setup_us', {}).get('p50')} us, p99 {report.get('setup_us', {}).get('p99')} us"]
    moved = {k: v for k, v in c.items() if k.startswith("tx_") and k not in ("tx_packets", "tx_bytes")}
    if moved:
        out.append("  Failover: " + ", ".join(f"{k[3:]} {v}" for k, v in sorted(moved.items())))
    drops = {k[5:]: v for k, v in c.items() if k.startswith("drop_")}
    out.append("  Dropped: " + (", ".join(f"{k} {v}" for k, v in sorted(drops.items())) or "none"))
    rec = {k: v for k, v in c.items() if k.startswith("recorded_") or k in ("shadow_absorbed", "takeovers")}
    if rec:
        out.append("  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(rec.items())))
    for label, key in (("I/O errors", "io_errors"), ("Control messages refused", "control_rejects")):
        if report.get(key):
            out.append(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in sorted(report[key].items())))
    return out


def nodes_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["Node   Role   Cluster(ID)  Node ID  State  Service  Live  Backup  Heard(ms)  Topo  Active  Pkts/s  "
           "Proc p50/p99 us"]
    for r in rows:
        lat = r.get("latency_us") or {}
        out.append(f"{r['node']:<6} {r['role']:<6} {r['cluster'] + '(' + str(r['cluster_id']) + ')':<12} "
                   f"{r['node_id']:<8} {r['state']:<6} {r['service']:<8} {'yes' if r['live'] else 'no':<5} "
                   f"{r['backup'] or '-':<7} {str(r['last_heard_ms']):<10} {str(r['topology']):<5} "
                   f"{r['active']:<7} {r['pps']:<7} {lat.get('p50')}/{lat.get('p99')}")
    return out


def topology_lines(topo: dict[str, Any], selection: str = "") -> list[str]:
    out = [f"Topology {topo['id']}{' (' + topo['reason'] + ')' if topo.get('reason') else ''}"
           f"{', ' + selection + ' next-hop selection' if selection else ''}",
           "Cluster  ID  Strategy  Balance      Members (node ID, * live)       Backups"]
    for name, c in topo["clusters"].items():
        members = " ".join(f"{m['name']}({m['node_id']}){'*' if m['name'] in c['live'] else ''}" for m in c["members"])
        backups = " ".join(f"{a}>{b}" for a, b in c.get("backups", {}).items()) or "-"
        out.append(f"{name:<8} {c['cluster_id']:<3} {c['strategy']:<9} {c['balance']:<12} {members:<31} {backups}")
    return out


def routes_table(routes: list[dict[str, Any]]) -> list[str]:
    out = ["Path   Route                                Flows"]
    for r in routes:
        out.append(f"{r['path']:<6} {' > '.join(r['route']):<36} {r['flows']}")
    out.append(f"{len(routes)} flow route(s)")
    return out


def events_lines(events: list[dict[str, Any]]) -> list[str]:
    import time as _t

    out = []
    for e in events:
        stamp = _t.strftime("%H:%M:%S", _t.localtime(e["time"])) + f".{int(e['time'] * 1000) % 1000:03d}"
        out.append(f"{stamp} topology {e['topology']:<3} {e['reason']}")
    return out
