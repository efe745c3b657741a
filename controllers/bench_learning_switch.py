"""BenchLearningSwitch: a plain os-ken learning switch, the baseline of bench/flows.py.

The flow routing benchmark compares the twin's new-flow setup (every new flow is classified, given a
path and a route by the ingress INODE, in userspace) with what a reactive OpenFlow controller does
for the same new flows on the same machine. This app is os-ken's `simple_switch_13` (OpenFlow 1.3:
learn the source MAC's port on every packet-in, flood what has no known destination, install a rule
and send the packet out for what has one) with one change, chosen so that *every new flow is one
controller setup*, the way every new flow is one setup at the INODE:

* the rules are exact-match **per flow** instead of per destination MAC: eth_type IPv4, ip_proto,
  IPv4 source and destination and, for TCP and UDP, both ports (plus in_port). simple_switch_13's
  MAC rules would make only a host pair's first flow reach the controller; here each new 5-tuple is
  a packet-in, a flow table write and a packet-out;
* one setup covers both directions: at the first packet of a flow the switch gets the rule for the
  flow and the rule for its replies (reversed 5-tuple, back out of the port the packet came in on,
  which was just learned), as the INODE sets up a flow's route once for both directions. A reply
  therefore never reaches the controller (a stricter baseline than per-direction setup, which costs
  two packet-ins per flow);
* ARP is always flooded with a packet-out and never installed (it is not a flow), as is any frame
  whose destination port is not learned yet or that is not IPv4.

The table-miss rule (everything to the controller, no buffering) is installed at priority 1, above
TwinBase's priority-0 OUTPUT:NORMAL, which stays in place but never matches. Per-flow rules are
priority 10 with an idle timeout, so one burst's rules age out rather than fill the table.
Use it in a lab file: `controller: {apps: [controllers.bench_learning_switch]}` (labs/bench_learning.yaml).
"""
from __future__ import annotations

import logging
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ether_types, ethernet, ipv4, packet, tcp, udp
from os_ken.ofproto import ofproto_v1_3

from controllers.twin_base import XID_LOCK

LOG = logging.getLogger("controllers.bench_learning_switch")

TABLE_MISS_PRIORITY = 1        # above TwinBase's priority-0 NORMAL rule
FLOW_PRIORITY = 10
FLOW_IDLE_TIMEOUT_S = 30
COOKIE = 0xBE7C_0000_0000_0001


class BenchLearningSwitch(app_manager.OSKenApp):
    """Learning switch with one exact-match rule pair per new IPv4 flow (OpenFlow 1.3)."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mac_to_port: dict[int, dict[str, int]] = {}
        self.setups = 0         # flows set up (rule pairs installed)
        self.floods = 0

    @staticmethod
    def _send(dp: Any, *msgs: Any) -> None:
        # os-ken's set_xid is a plain `+= 1`; TwinBase's API threads send on the same datapath
        with XID_LOCK:
            for m in msgs:
                dp.set_xid(m)
        for m in msgs:
            dp.send_msg(m)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _on_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        self._send(dp, parser.OFPFlowMod(dp, cookie=COOKIE, table_id=0, command=ofp.OFPFC_ADD,
                                         priority=TABLE_MISS_PRIORITY, match=parser.OFPMatch(),
                                         instructions=inst))
        LOG.info("learning switch: dpid %#x: table-miss to the controller at priority %d", ev.msg.datapath_id,
                 TABLE_MISS_PRIORITY)

    def _flow_mod(self, dp: Any, match: Any, out_port: int) -> Any:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(out_port)])]
        return parser.OFPFlowMod(dp, cookie=COOKIE, table_id=0, command=ofp.OFPFC_ADD, priority=FLOW_PRIORITY,
                                 idle_timeout=FLOW_IDLE_TIMEOUT_S, match=match, instructions=inst)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _on_packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None or eth.ethertype == ether_types.ETH_TYPE_LLDP:
            return
        table = self.mac_to_port.setdefault(dp.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        msgs = []
        ip = pkt.get_protocol(ipv4.ipv4) if eth.ethertype == ether_types.ETH_TYPE_IP else None
        if ip is not None and out_port != ofp.OFPP_FLOOD:
            fwd: dict[str, Any] = {"eth_type": ether_types.ETH_TYPE_IP, "ip_proto": ip.proto}
            rev = dict(fwd)
            fwd.update(in_port=in_port, ipv4_src=ip.src, ipv4_dst=ip.dst)
            rev.update(in_port=out_port, ipv4_src=ip.dst, ipv4_dst=ip.src)
            l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
            if l4 is not None:
                kind = "tcp" if isinstance(l4, tcp.tcp) else "udp"
                fwd.update({f"{kind}_src": l4.src_port, f"{kind}_dst": l4.dst_port})
                rev.update({f"{kind}_src": l4.dst_port, f"{kind}_dst": l4.src_port})
            msgs += [self._flow_mod(dp, parser.OFPMatch(**fwd), out_port),
                     self._flow_mod(dp, parser.OFPMatch(**rev), in_port)]
            self.setups += 1
        else:
            self.floods += 1
        msgs.append(parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                                        actions=[parser.OFPActionOutput(out_port)], data=msg.data))
        self._send(dp, *msgs)
