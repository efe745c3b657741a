"""Traffic tools that run inside lab nodes' namespaces: probe streams, iperf3 and a ping mesh.

Every tool takes a ``NodeExec`` and node names, never addresses in the root namespace, so lab traffic
cannot leave the lab.
"""
from twin.traffic.flows import FlowStream, burst
from twin.traffic.iperf import IperfError, IperfResult, iperf3
from twin.traffic.pingmesh import MeshResult, PingPair, ping_mesh
from twin.traffic.probe import Outage, ProbeError, ProbeProgress, ProbeResult, ProbeStream

__all__ = [
    "FlowStream", "IperfError", "IperfResult", "MeshResult", "Outage", "PingPair", "ProbeError",
    "ProbeProgress", "ProbeResult", "ProbeStream", "burst", "iperf3", "ping_mesh",
]
