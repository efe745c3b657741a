"""VLinkManager: the virtual link manager, an os-ken app beside TwinBase.

It keeps the virtual links in the data store (SQLite) and programs them onto the grid switches as
OpenFlow rules (controllers.vlink.compiler): at start from the store (and the lab file's
declarations), on every switch (re)connect by reconciling what the switch holds, at run time through
the northbound API (`/vlinks`), on port status (resilient link cutover) and on learning (packet-ins
carrying a new source MAC on links that switch by destination).

Ryu users: this is a normal app module; list it in `controller.apps` (the lab engine adds it when a
lab has `vlinks:` or `grid:`), and it finds TwinBase with `get_twin_base()`.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls

from controllers.errors import ApiError
from controllers.twin_base import TwinBase, get_twin_base
from controllers.vlink import compiler
from controllers.vlink.check import check_link, delete_problems
from controllers.vlink.compiler import COPY_TYPES, Context, LinkRecord, Rule
from controllers.vlink.grid import Grid
from controllers.vlink.model import parse_link
from controllers.vlink.store import VLinkStore, spec_json
from controllers.vlink.vlans import VlanPool

LOG = logging.getLogger("controllers.vlink_manager")
OUR_COOKIES = ((compiler.COOKIE_BASE, compiler.COOKIE_MASK), (compiler.GRID_COOKIE, compiler.COOKIE_MASK))


class VLinkManager(app_manager.OSKenApp):
    OFP_VERSIONS = TwinBase.OFP_VERSIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        twin = get_twin_base()
        if twin is None:
            raise RuntimeError("controllers.vlink_manager needs controllers.twin_base loaded first")
        self.twin: TwinBase = twin
        cfg = dict(twin.config.raw.get("vlinks") or {})
        self.grid = Grid.from_config(cfg.get("grid") or {"switches": twin.switch_names()})
        self.nodes: set[str] | None = set(cfg["nodes"]) if "nodes" in cfg else None
        block = cfg.get("vlan_block") or (3000, 3999)
        self.pool = VlanPool((int(block[0]), int(block[1])),
                             {int(v): str(why) for v, why in (cfg.get("reserved_vlans") or {}).items()})
        db = cfg.get("db") or str(Path(twin.config.raw.get("dir", ".")) / "vlinks.db")
        self.store = VLinkStore(db)
        self.mutex = threading.RLock()
        self.links: dict[str, LinkRecord] = self.store.links()
        self.learned: dict[str, dict[str, str]] = {}
        self.active: dict[str, str] = {}
        self.installed: dict[str, dict[tuple, Rule]] = {}   # switch -> rule key -> rule, once synced
        self.cutovers: list[dict[str, Any]] = []
        self.jobs: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._declare(cfg.get("links") or [])
        twin.subscribe(self._on_twin_event)
        for method, pattern, handler in (
                ("GET", r"/vlinks", self._api_list), ("POST", r"/vlinks", self._api_create),
                ("GET", r"/vlinks/([^/]+)", self._api_show), ("DELETE", r"/vlinks/([^/]+)", self._api_delete)):
            twin.add_api_route(method, pattern, handler)
        threading.Thread(target=self._work, name="vlink-worker", daemon=True).start()
        LOG.info("virtual link manager: grid %s, %d trunk(s), VLAN block %d-%d, %d link(s) in %s",
                 ",".join(self.grid.switches), len(self.grid.trunks), *self.pool.block, len(self.links), db)

    # ----- the lab file's declarations ---------------------------------------------------------

    def _declare(self, declared: Iterable[dict[str, Any]]) -> None:
        """Create the lab file's links that the store does not hold yet (the store wins on restart)."""
        for body in declared:
            try:
                spec = parse_link(body)
            except ValueError as exc:
                LOG.error("lab link %s refused: %s", body.get("name"), exc)
                continue
            if spec.name in self.links:
                continue
            problems = check_link(spec, self.grid, self.links, self.pool, self.nodes)
            if problems:
                LOG.error("lab link %s refused: %s", spec.name, "; ".join(map(str, problems)))
                continue
            rec = LinkRecord(spec, self.store.next_id(), spec.vlan or self._allocate())
            self.store.add(rec, origin="lab")
            self.links[rec.name] = rec

    def _allocate(self) -> int:
        vlan = self.pool.allocate(r.vlan for r in self.links.values())
        if vlan is None:
            raise ApiError(409, f"vlan: the reserved block {self.pool.block[0]}-{self.pool.block[1]} is exhausted")
        return vlan

    # ----- compiling and applying --------------------------------------------------------------

    def context(self, links: dict[str, LinkRecord] | None = None) -> Context:
        return Context(self.grid, dict(self.links if links is None else links), self.learned, self.active)

    def wanted(self, ctx: Context, names: Iterable[str] | None = None) -> dict[str, dict[tuple, Rule]]:
        """Rules per switch for the given links (default: all, plus the grid's own rules)."""
        out: dict[str, dict[tuple, Rule]] = {}
        if names is None:
            for sw in self.grid.switches:
                out[sw] = {r.key: r for r in compiler.grid_rules(self.grid, sw)}
            names = list(ctx.links)
        for name in names:
            if name not in ctx.links:
                continue
            for sw, rules in compiler.compile_link(name, ctx).items():
                out.setdefault(sw, {}).update({r.key: r for r in rules})
        return out

    def _owned(self, switch: str, names: Iterable[str]) -> dict[tuple, Rule]:
        cookies = {self.links[n].cookie for n in names if n in self.links}
        return {k: r for k, r in self.installed.get(switch, {}).items() if r.cookie in cookies}

    def reprogram(self, names: Iterable[str], old_cookies: Iterable[int] = ()) -> dict[str, int]:
        """Bring the rules of these links (and of links deleted, by cookie) to what they should be."""
        names = list(dict.fromkeys(names))
        ctx = self.context()
        want = self.wanted(ctx, names)
        cookies = {ctx.links[n].cookie for n in names if n in ctx.links} | set(old_cookies)
        counts: dict[str, int] = {}
        for sw in self.grid.switches:
            if sw not in self.installed:
                continue     # not synced yet: switch_enter will program it
            have = {k: r for k, r in self.installed[sw].items() if r.cookie in cookies}
            add, delete = compiler.diff(want.get(sw, {}).values(), have.values())
            if add or delete:
                self._apply(sw, add, delete)
                counts[sw] = len(add) + len(delete)
        return counts

    def _apply(self, switch: str, add: list[Rule], delete: list[Rule]) -> None:
        self.twin.apply_batch(switch, [r.body() for r in add],
                              [{"table_id": r.table, "priority": r.priority, "match": dict(r.match)} for r in delete])
        table = self.installed.setdefault(switch, {})
        for r in delete:
            table.pop(r.key, None)
        for r in add:
            table[r.key] = r

    def sync_switch(self, switch: str) -> None:
        """Reconcile a (re)connected switch with the store: re-add every rule, delete ours it should not have."""
        with self.mutex:
            # a resilient link's choice can change here (its member ports came up with this switch);
            # the switches synced before must follow it, not keep rules for the old choice
            changed = [name for name, _old, _new in self._refresh_active()]
            want = self.wanted(self.context()).get(switch, {})
            stale = []
            try:
                keys = {self._key(switch, r) for r in want.values()}
                for base, mask in OUR_COOKIES:
                    for f in self.twin.raw_flows(switch, base, mask):
                        if (f["table_id"], f["priority"], _match_key(f["match"])) not in keys:
                            stale.append({"table_id": f["table_id"], "priority": f["priority"], "match": f["match"]})
                self.installed[switch] = {}
                self._apply(switch, list(want.values()), [])
                if stale:
                    self._delete_raw(switch, stale)
            except ApiError as exc:
                self.installed.pop(switch, None)
                LOG.error("switch %s: could not program the virtual links: %s", switch, exc.message)
                return
            finally:
                if changed:
                    self.reprogram(changed)
            LOG.info("switch %s: virtual links programmed (%d rules, %d stale removed)", switch, len(want), len(stale))
            self.twin.publish_event("vlinks_synced", switch=switch, rules=len(want), stale=len(stale))

    def _key(self, switch: str, rule: Rule) -> tuple:
        return (rule.table, rule.priority, _match_key(self.twin.build_match(switch, dict(rule.match))))

    def _delete_raw(self, switch: str, flows: list[dict[str, Any]]) -> None:
        dp = self.twin.require_datapath(switch)
        ofp, parser = dp.ofproto, dp.ofproto_parser
        msgs = [parser.OFPFlowMod(dp, 0, 0, f["table_id"], ofp.OFPFC_DELETE_STRICT, 0, 0, f["priority"],
                                  ofp.OFP_NO_BUFFER, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, f["match"], []) for f in flows]
        self.twin.send_confirmed(switch, dp, msgs, "stale virtual link rule delete")

    # ----- resilient links -----------------------------------------------------------------------

    def _port_up(self, endpoint: str) -> bool:
        att = self.grid.attachment(endpoint)
        if att is None:
            return False
        info = self.twin.cached_ports(att.switch).get(att.port)
        return info is not None and info.link_up and info.admin_up

    def _refresh_active(self) -> list[tuple[str, str | None, str]]:
        """Choose each resilient link's active member; returns the links whose choice changed."""
        changed = []
        for rec in self.links.values():
            if rec.spec.type != "resilient":
                continue
            primary = rec.spec.with_role("primary")[0].endpoint
            standby = rec.spec.with_role("standby")[0].endpoint
            cur = self.active.get(rec.name)
            if self._port_up(primary) and (rec.spec.revertive or cur in (None, primary) or not self._port_up(standby)):
                new = primary
            elif self._port_up(standby):
                new = standby
            else:
                new = cur or primary
            if new != cur:
                self.active[rec.name] = new
                changed.append((rec.name, cur, new))
        return changed

    # ----- events --------------------------------------------------------------------------------

    def _on_twin_event(self, event: dict[str, Any]) -> None:
        if event["type"] in ("switch_enter", "port_status"):
            self.jobs.put((event["type"], event))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _on_packet_in(self, ev: Any) -> None:
        msg = ev.msg
        if msg.cookie & compiler.COOKIE_MASK != compiler.COOKIE_BASE or len(msg.data) < 14:
            return
        src = ":".join(f"{b:02x}" for b in msg.data[6:12])
        if msg.data[6] & 1:
            return
        self.jobs.put(("learn", (msg.datapath.id, msg.match.get("in_port"), msg.cookie, src)))

    def _work(self) -> None:
        while True:
            kind, data = self.jobs.get()
            try:
                if kind == "switch_enter":
                    sw = data["switch"]
                    if sw in self.grid.switches:
                        self.sync_switch(sw)
                elif kind == "port_status":
                    self._port_changed(data)
                elif kind == "learn":
                    self._learn(*data)
            except ApiError as exc:
                LOG.error("virtual links: %s failed: %s", kind, exc.message)
            except Exception:
                LOG.exception("virtual links: %s failed", kind)

    def _port_changed(self, event: dict[str, Any]) -> None:
        with self.mutex:
            owner = self.grid.port_owner(event["switch"], event["port"])
            if owner is None:
                return
            if not event.get("link_up"):
                for link, table in self.learned.items():
                    gone = [m for m, ep in table.items() if ep == owner.endpoint]
                    for m in gone:
                        del table[m]
                    if gone:
                        self.reprogram([link])
            for name, old, new in self._refresh_active():
                t0 = time.time()
                counts = self.reprogram([name])
                took = (time.time() - t0) * 1000
                # the port cache is newer than this event when the switch sent several at once
                now_up = self._port_up(owner.endpoint)
                detail = f"{old} -> {new} after {event['switch']}:{event['port']} ({owner.endpoint}) went " \
                         f"{'up' if now_up else 'down'}; {sum(counts.values())} rule change(s) in {took:.1f} ms"
                LOG.warning("resilient link %s: cutover %s", name, detail)
                self.store.log(name, "cutover", detail)
                record = {"link": name, "from": old, "to": new, "time": round(t0, 6),
                          "event_time": event.get("time"), "program_ms": round(took, 2)}
                self.cutovers.append(record)
                self.twin.publish_event("vlink_cutover", **record)

    def _learn(self, dpid: int, port_no: int | None, cookie: int, mac: str) -> None:
        with self.mutex:
            rec = next((r for r in self.links.values() if r.cookie == cookie), None)
            switch = self.twin.name_of(dpid)
            if rec is None or switch is None or port_no is None:
                return
            owner = self.grid.port_owner(switch, str(self.twin.port_name(switch, port_no)))
            if owner is None:
                ext = rec.spec.external
                if ext is None or ext.port != f"{switch}:{self.twin.port_name(switch, port_no)}":
                    return
                endpoint = f"external {ext.port}"
            else:
                endpoint = owner.endpoint
            table = self.learned.setdefault(rec.name, {})
            if table.get(mac) == endpoint:
                return
            table[mac] = endpoint
            LOG.info("link %s: learned %s on %s", rec.name, mac, endpoint)
            self.reprogram([rec.name])

    # ----- API -----------------------------------------------------------------------------------

    def create(self, body: Any, origin: str = "api") -> LinkRecord:
        try:
            spec = parse_link(body)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        with self.mutex:
            problems = check_link(spec, self.grid, self.links, self.pool, self.nodes)
            if problems:
                status = max(p.status for p in problems) if all(p.status != 400 for p in problems) else 400
                raise ApiError(status, f"link {spec.name}: " + "; ".join(map(str, problems)))
            rec = LinkRecord(spec, self.store.next_id(), spec.vlan or self._allocate())
            before = dict(self.links)
            self.links[rec.name] = rec
            ctx = self.context()
            names = [rec.name, *compiler.dependents(rec.name, ctx)]
            try:
                self.reprogram(names)
            except ApiError as exc:
                self.links = before
                self._rollback(names, [rec.cookie])
                raise ApiError(exc.status, f"link {spec.name} not created (nothing left installed): {exc.message}") from None
            self.store.add(rec, origin)
        LOG.info("link %s created: %s, VLAN %d, members %s", rec.name, spec.type, rec.vlan, ", ".join(spec.endpoints()))
        self.twin.publish_event("vlink_created", link=rec.name, type=spec.type, vlan=rec.vlan)
        return rec

    def _rollback(self, names: list[str], cookies: list[int]) -> None:
        try:
            self.reprogram([n for n in names if n in self.links], old_cookies=cookies)
        except ApiError as exc:
            LOG.error("rollback incomplete: %s", exc.message)

    def delete(self, name: str) -> None:
        with self.mutex:
            problems = delete_problems(name, self.links)
            if problems:
                raise ApiError(problems[0].status, problems[0].message)
            rec = self.links.pop(name)
            deps = compiler.dependents(name, self.context({**self.links, name: rec}))
            self.learned.pop(name, None)
            self.active.pop(name, None)
            self.reprogram(deps, old_cookies=[rec.cookie])
            self.store.delete(name)
        LOG.info("link %s deleted", name)
        self.twin.publish_event("vlink_deleted", link=name)

    def summary(self, rec: LinkRecord) -> dict[str, Any]:
        span = self._span(rec)
        programmed = all(sw in self.installed for sw in span)
        out = {"name": rec.name, "type": rec.spec.type, "vlan": rec.vlan, "id": rec.id,
               "cookie": f"{rec.cookie:#x}", "members": [
                   {"endpoint": m.endpoint, "role": rec.spec.role_of(i)} for i, m in enumerate(rec.spec.members)],
               "switches": sorted(span, key=self.grid.switches.index), "programmed": programmed,
               "origin": self.store.origin(rec.name)}
        if rec.spec.type == "resilient":
            out["active"] = self.active.get(rec.name)
        return out

    def _span(self, rec: LinkRecord) -> set[str]:
        ctx = self.context()
        try:
            return set(compiler.compile_link(rec.name, ctx))
        except Exception:
            return set()

    def _api_list(self, match: Any, query: dict, body: Any) -> Any:
        with self.mutex:
            return {"links": [self.summary(r) for r in self.links.values()],
                    "grid": {"switches": self.grid.switches, "synced": sorted(self.installed),
                             "vlan_block": list(self.pool.block),
                             "trunks": [f"{t.a}:{t.a_port}-{t.b}:{t.b_port}" for t in self.grid.trunks]}}

    def _api_create(self, match: Any, query: dict, body: Any) -> Any:
        rec = self.create(body)
        with self.mutex:
            return 201, self.summary(rec)

    def _api_show(self, match: Any, query: dict, body: Any) -> Any:
        name = match.group(1)
        with self.mutex:
            rec = self.links.get(name)
            if rec is None:
                raise ApiError(404, f"no link named {name!r} (links: {', '.join(sorted(self.links)) or 'none'})")
            out = self.summary(rec)
            out["spec"] = spec_json(rec.spec)
            out["members"] = []
            for i, m in enumerate(rec.spec.members):
                att = self.grid.attachment(m.endpoint)
                out["members"].append({"endpoint": m.endpoint, "role": rec.spec.role_of(i),
                                       "switch": att.switch if att else None, "port": att.port if att else None,
                                       "up": self._port_up(m.endpoint), "promiscuous": m.promiscuous})
            out["learned"] = dict(self.learned.get(name, {}))
            rules = {}
            for sw, table in self.installed.items():
                mine = [r.body() for r in table.values() if r.cookie == rec.cookie]
                if mine:
                    rules[sw] = mine
            out["rules"] = rules
            out["history"] = self.store.history(name)
            out["cutovers"] = [c for c in self.cutovers if c["link"] == name]
            return out

    def _api_delete(self, match: Any, query: dict, body: Any) -> Any:
        self.delete(match.group(1))
        return {"ok": True, "deleted": match.group(1)}


def _match_key(match: Any) -> tuple:
    """A comparable form of an OFPMatch, whichever side built it."""
    items = []
    for name, value in match.items():
        if isinstance(value, tuple):
            value = tuple(str(v).lower() for v in value)
        else:
            value = str(value).lower()
        items.append((name, value))
    return tuple(sorted(items))
