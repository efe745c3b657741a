"""`twin`: the command line, shaped like docker/containerlab (up, down, status, exec, graph, ...).

Exit codes: 0 ok, 1 the lab or operation failed, 2 bad input (a wrong lab file or argument).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from twin.errors import LabError, LabFileError, LabNotFound

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Digital-twin labs for high-availability network systems.")
fault_app = typer.Typer(no_args_is_help=True, help="Break things in a running lab (each fault is timestamped).")
app.add_typer(fault_app, name="fault")
cluster_app = typer.Typer(no_args_is_help=True, help="The cluster manager of a running lab: roles, pool, failovers.")
app.add_typer(cluster_app, name="cluster")
pool_app = typer.Typer(no_args_is_help=True, help="Reserve spares (claims 8, 13).")
cluster_app.add_typer(pool_app, name="pool")
vlink_app = typer.Typer(no_args_is_help=True, help="Virtual links on a running lab's connectivity grid "
                                                   "(docs/vlinks.md): list, show, create, delete.")
app.add_typer(vlink_app, name="vlink")
flows_app = typer.Typer(help="Flow routing of a running lab (INODEs, ANODEs, MNODE): flows, routes, nodes, "
                             "topology", no_args_is_help=False, invoke_without_command=True)
app.add_typer(flows_app, name="flows")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

LabOpt = typer.Option(None, "--lab", "-l", help="lab name or prefix (default: the only running lab)")


def _fail(msg: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {msg}" if err.is_terminal else f"error: {msg}")
    raise typer.Exit(code)


def _attach(ref: Optional[str]):
    from twin.running import RunningLab

    try:
        return RunningLab.attach(ref)
    except LabNotFound as exc:
        _fail(str(exc), 2)


def _load(path: Path):
    from twin.lab import load_lab

    try:
        return load_lab(path)
    except LabFileError as exc:
        for p in exc.problems:
            err.print(str(p), markup=False)
        err.print(f"{len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} in {path}; nothing started")
        raise typer.Exit(2)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="lab files to check")) -> None:
    """Check lab files; report every problem with file, line and field path."""
    from twin.lab import load_lab

    bad = 0
    for f in files:
        try:
            m = load_lab(f)
            out.print(f"{f}: ok ({len(m.spec.nodes)} nodes, {len(m.spec.links)} links)")
        except LabFileError as exc:
            bad += 1
            for p in exc.problems:
                err.print(str(p), markup=False)
    if bad:
        raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the lab file JSON Schema (for editors)."""
    from twin.lab.schema import LabSpec

    out.print_json(json.dumps(LabSpec.model_json_schema()))


@app.command()
def up(file: Path = typer.Argument(..., help="lab file (YAML)"),
       timeout: float = typer.Option(120.0, help="seconds to wait for the lab to be ready"),
       as_json: bool = typer.Option(False, "--json", help="print the lab's status as JSON")) -> None:
    """Boot a lab and leave it running (a supervisor process owns it until `twin down`)."""
    from twin.naming import allocate_prefix
    from twin.registry import lab_dir
    from twin.state import LabState, pid_alive

    model = _load(file)
    prefix = allocate_prefix(model.name)
    logf = lab_dir(prefix) / "supervisor.log"
    with open(logf, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "twin.supervisor", str(file.resolve()), "--prefix", prefix,
                                 "--timeout", str(timeout)], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    seen = 0
    status = err.status(f"booting {model.name} ({prefix})") if err.is_terminal and not as_json else None
    if status:
        status.start()
    try:
        deadline = time.monotonic() + timeout + 15
        result = None
        while time.monotonic() < deadline:
            lines = logf.read_text(errors="replace").splitlines()
            for line in lines[seen:]:
                if line.startswith("PROGRESS ") and status:
                    status.update(f"{model.name} ({prefix}): {line[9:]}")
                elif line == "READY" or line.startswith("FAILED "):
                    result = line
            seen = len(lines)
            if result or proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        if status:
            status.stop()
    if result != "READY":
        try:
            why = LabState.load(prefix).error
        except Exception:
            why = None
        if pid_alive(proc.pid):
            proc.terminate()
        tail = "\n".join(logf.read_text(errors="replace").splitlines()[-15:]) if logf.exists() else ""
        _fail(f"lab {model.name} did not come up: {why or (result or 'timed out')}\n{tail}")
    _print_status(_attach(prefix), as_json)
    if model.spec.message and not as_json:
        out.print(model.spec.message.rstrip(), markup=False)


@app.command()
def down(lab: Optional[str] = LabOpt, all_labs: bool = typer.Option(False, "--all", help="stop every lab")) -> None:
    """Stop a lab and remove everything it created."""
    from twin.cleanup import clean_lab
    from twin.running import RunningLab
    from twin.state import LabState, all_states, pid_alive

    targets = [RunningLab(s) for s in all_states()] if all_labs else [_attach(lab)]
    for rl in targets:
        st = rl.state
        if st.owner_pid and pid_alive(st.owner_pid) and st.owner_pid != os.getpid():
            os.kill(st.owner_pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while pid_alive(st.owner_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        # the owner cleans up as it exits; clean again only what is still recorded for this very lab
        try:
            again = LabState.load(st.prefix)
        except (OSError, ValueError, TypeError):
            again = None
        if again is not None and again.created == st.created:
            clean_lab(st.prefix, again)
        out.print(f"lab {st.name} ({st.prefix}) is down")


@app.command()
def clean(lab: Optional[str] = LabOpt,
          force: bool = typer.Option(False, "--force", help="also clean labs whose owner is still running")) -> None:
    """Remove the leftovers of labs whose owning process died (found by their recorded prefix)."""
    from twin.cleanup import clean_lab
    from twin.state import LabState, all_prefixes, pid_alive

    cleaned = 0
    for prefix in all_prefixes():
        try:
            st = LabState.load(prefix)
        except Exception:
            st = None
        if lab and (st is None or lab not in (st.name, st.prefix)) and lab != prefix:
            continue
        if st is not None and pid_alive(st.owner_pid) and not force:
            if lab:
                out.print(f"lab {st.name} ({prefix}) is running (owner pid {st.owner_pid}); use 'twin down' or --force")
            continue
        rep = clean_lab(prefix, st)
        out.print(rep.summary())
        cleaned += 1
    if not cleaned:
        out.print("nothing to clean")


def _print_status(rl, as_json: bool) -> None:
    rows = rl.status()
    if as_json:
        out.print_json(json.dumps({"lab": rl.name, "prefix": rl.prefix, "phase": rl.state.phase,
                                   "controller": {"of_port": rl.state.of_port, "api_socket": rl.state.api_socket},
                                   "nodes": rows}))
        return
    t = Table(title=f"lab {rl.name} ({rl.prefix}) {rl.state.phase}", title_justify="left")
    for col in ("node", "kind", "mgmt", "state", "addresses"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["node"], r["kind"], (r["mgmt"] or "").split("/")[0], r["state"],
                  " ".join(f"{i}={a}" for i, a in r["addresses"].items()) or r.get("bridge", ""))
    out.print(t)


@app.command()
def status(lab: Optional[str] = LabOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show each node's kind, management address and state."""
    from twin.state import all_states, pid_alive

    states = all_states()
    if lab is None and len(states) != 1:
        if as_json:
            out.print_json(json.dumps([{"lab": s.name, "prefix": s.prefix, "phase": s.phase,
                                        "owner_alive": pid_alive(s.owner_pid)} for s in states]))
            return
        if not states:
            out.print("no labs running")
            return
        t = Table(title="labs")
        for col in ("lab", "prefix", "phase", "owner"):
            t.add_column(col)
        for s in states:
            t.add_row(s.name, s.prefix, s.phase, f"{s.owner_pid}{'' if pid_alive(s.owner_pid) else ' (dead: twin clean)'}")
        out.print(t)
        return
    _print_status(_attach(lab), as_json)


@app.command(name="exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(node: str = typer.Argument(..., help="node to run the command in"),
          cmd: list[str] = typer.Argument(None, help="command (after --)"),
          lab: Optional[str] = LabOpt) -> None:
    """Run a command inside a node's network namespace: twin exec h1 -- ping -c1 10.10.1.11"""
    rl = _attach(lab)
    try:
        argv = rl.nodes.wrap(node, cmd or ["bash"])
    except KeyError as exc:
        _fail(str(exc), 2)
    os.execv(argv[0], argv)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ems(args: list[str] = typer.Argument(None, help="client command: status, view [--source db], element NAME, "
                                                  "events, route SRC DST, provision SRC DST, unprovision SRC DST"),
        node: Optional[str] = typer.Option(None, "--from", help="client host to ask from (default: the first host "
                                                                "on the servers' LAN)"),
        lab: Optional[str] = LabOpt) -> None:
    """Ask the element-management servers of a running lab, from a client host inside it."""
    import ipaddress

    rl = _attach(lab)
    servers = rl.node_names("ems")
    if not servers:
        _fail(f"lab {rl.name} has no ems servers", 2)
    addrs = [rl.address(n) for n in servers]
    if node is None:
        first = next(a for a in rl.state.nodes[servers[0]].interfaces.values() if a)
        lan = ipaddress.IPv4Interface(first).network
        hosts = [h for h in rl.node_names("host")
                 if any(a and ipaddress.IPv4Interface(a).ip in lan for a in rl.state.nodes[h].interfaces.values())]
        if not hosts:
            _fail(f"no host on the servers' LAN {lan}; name one with --from", 2)
        node = hosts[0]
    argv = [sys.executable, "-m", "emulators.ems.client", "--servers", ",".join(addrs), "--db", str(rl.dir / "ems.db"),
            *(args or ["status"])]
    try:
        argv = rl.nodes.wrap(node, argv)
    except KeyError as exc:
        _fail(str(exc), 2)
    os.execv(argv[0], argv)


ManagerOpt = typer.Option(None, "--manager", "-m", help="cluster-manager node (default: the lab's first)")


def _cluster(lab: Optional[str], manager: Optional[str], command: str) -> None:
    from twin import clusterctl

    rl = _attach(lab)
    try:
        print(clusterctl.run(rl, command, manager).rstrip("\n"))
    except LabError as exc:
        _fail(str(exc), 2)


@cluster_app.command("status")
def cluster_status(lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt,
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Roles and their holders, the pool, alarms."""
    if not as_json:
        _cluster(lab, manager, "show cluster")
        return
    from twin import clusterctl

    try:
        print(json.dumps(clusterctl.status(_attach(lab), manager), indent=1, default=str))
    except LabError as exc:
        _fail(str(exc), 2)


@cluster_app.command("elements")
def cluster_elements(lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt) -> None:
    """Every element: state, role, when it was last heard from."""
    _cluster(lab, manager, "show cluster elements")


@cluster_app.command("failovers")
def cluster_failovers(lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt) -> None:
    """Failovers with their substitute, state and duration."""
    _cluster(lab, manager, "show cluster failovers")


@cluster_app.command("timeline")
def cluster_timeline(lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt) -> None:
    """Every decision of the manager, timestamped (also in its SQLite archive)."""
    _cluster(lab, manager, "show cluster timeline")


@cluster_app.command("failover")
def cluster_failover(element: str, reason: str = typer.Option("operator request", "--reason"),
                     lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt) -> None:
    """Replace an active element now (maintenance)."""
    _cluster(lab, manager, f"cluster failover {element} {reason}")


@pool_app.command("add")
def cluster_pool_add(element: str, lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt) -> None:
    """Reserve an element (wired to both cluster switches) as a spare."""
    _cluster(lab, manager, f"cluster pool add {element}")


@pool_app.command("remove")
def cluster_pool_remove(element: str, lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt) -> None:
    """Take a spare out of the pool."""
    _cluster(lab, manager, f"cluster pool remove {element}")


@pool_app.command("list")
def cluster_pool_list(lab: Optional[str] = LabOpt, manager: Optional[str] = ManagerOpt) -> None:
    """The spares in selection order."""
    _cluster(lab, manager, "show cluster pool")


def _vlink(lab: Optional[str], fn, *args):
    """Run a vlinkctl call against the lab's controller; refusals exit 2, an unreachable controller 1."""
    from twin import vlinkctl

    rl = _attach(lab)
    try:
        return fn(rl.controller, *args)
    except vlinkctl.VLinkError as exc:
        _fail(str(exc), 2 if exc.status is not None and 400 <= exc.status < 500 else 1)


@vlink_app.command("list")
def vlink_list(lab: Optional[str] = LabOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every virtual link: type, VLAN, members and their roles, the switches it spans, programmed?"""
    from twin import vlinkctl

    data = _vlink(lab, vlinkctl.list_links)
    if as_json:
        out.print_json(json.dumps(data))
    elif not data["links"]:
        out.print(f"no virtual links (grid: {', '.join(data['grid']['switches']) or 'no switches'})")
    else:
        out.print(vlinkctl.list_table(data))


@vlink_app.command("show")
def vlink_show(name: str = typer.Argument(..., help="link name"), lab: Optional[str] = LabOpt,
               as_json: bool = typer.Option(False, "--json", help="everything, the installed rules included")) -> None:
    """One link: members (switch:port, up/down, role, the active one), learned MACs, rules per switch, history."""
    from twin import vlinkctl

    d = _vlink(lab, vlinkctl.show, name)
    if as_json:
        out.print_json(json.dumps(d))
        return
    lines = vlinkctl.show_lines(d)
    for line in lines[:2]:
        out.print(line, markup=False)
    out.print(vlinkctl.member_table(d))
    for line in lines[2:]:
        out.print(line, markup=False)


@vlink_app.command("create")
def vlink_create(
        name: Optional[str] = typer.Argument(None, help="link name (with --file: the one link to take from it)"),
        link_type: Optional[str] = typer.Option(None, "--type", help="cable, switch, hub, p2mp, resilient, clustered, "
                                                                       "replicated, probe or external"),
        member: list[str] = typer.Option([], "--member", help="node:interface[=role], repeated; roles: cable a|b, "
                                                              "p2mp root|leaf, resilient root|primary|standby, "
                                                              "clustered root|member"),
        vlan: Optional[int] = typer.Option(None, "--vlan", help="VLAN ID (default: the next free one of the block)"),
        promiscuous: list[str] = typer.Option([], "--promiscuous", help="hub: this member also receives unicast "
                                                                        "for the others"),
        hub_mode: bool = typer.Option(False, "--hub-mode", help="p2mp: every frame from the root reaches every leaf"),
        non_revertive: bool = typer.Option(False, "--non-revertive", help="resilient: stay on the standby once "
                                                                          "the primary is back"),
        tap: Optional[str] = typer.Option(None, "--tap", help="replicated: the link to tap"),
        source: Optional[str] = typer.Option(None, "--source", help="replicated: the tapped member whose frames "
                                                                    "are copied"),
        probe_link: list[str] = typer.Option([], "--probe-link", help="probe: copy every frame of this link"),
        probe_interface: list[str] = typer.Option([], "--probe-interface", help="probe: copy what this member "
                                                                                "interface sends and receives"),
        external: Optional[str] = typer.Option(None, "--external", help="external: the grid port (switch:port) "
                                                                        "facing the external network"),
        tagged: bool = typer.Option(False, "--tagged", help="external: the port carries the link's VLAN tag"),
        description: Optional[str] = typer.Option(None, "--description"),
        file: Optional[Path] = typer.Option(None, "--file", "-f", help="YAML or JSON: one link spec, or a mapping "
                                                                       "of link name to spec"),
        lab: Optional[str] = LabOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Create a link from options (twin vlink create c9 --type cable --member h1:eth1 --member h2:eth1) or a file."""
    from twin import vlinkctl

    try:
        if file is not None:
            given = [opt for opt, v in (("--type", link_type), ("--member", member), ("--vlan", vlan),
                                        ("--promiscuous", promiscuous), ("--hub-mode", hub_mode),
                                        ("--non-revertive", non_revertive), ("--tap", tap), ("--source", source),
                                        ("--probe-link", probe_link), ("--probe-interface", probe_interface),
                                        ("--external", external), ("--tagged", tagged),
                                        ("--description", description)) if v not in (None, False, [])]
            if given:
                _fail(f"--file holds the whole link; drop {', '.join(given)}", 2)
            specs = vlinkctl.specs_from_file(file, name)
        else:
            if name is None or link_type is None:
                _fail("give NAME and --type (and --member ...), or --file", 2)
            specs = [vlinkctl.spec_from_options(
                name, link_type, member, vlan=vlan, promiscuous=promiscuous, hub_mode=hub_mode,
                revertive=False if non_revertive else None, tap=tap, source=source, probe_links=probe_link,
                probe_interfaces=probe_interface, external=external, tagged=tagged, description=description)]
    except vlinkctl.VLinkInputError as exc:
        _fail(str(exc), 2)
    done = _vlink(lab, vlinkctl.create, specs)
    if as_json:
        out.print_json(json.dumps(done if len(done) > 1 else done[0]))
        return
    for d in done:
        out.print(f"link {d['name']} created: {d['type']}, VLAN {d['vlan']}, {vlinkctl.members_text(d)}; "
                  f"switches {' '.join(d['switches']) or '-'}", markup=False)


@vlink_app.command("delete")
def vlink_delete(name: str = typer.Argument(..., help="link name"), lab: Optional[str] = LabOpt) -> None:
    """Delete a link and its rules (refused while a replicated link or probe copies it)."""
    from twin import vlinkctl

    _vlink(lab, vlinkctl.delete, name)
    out.print(f"link {name} deleted", markup=False)


def _interactive(node: str, transport: str, lab: Optional[str], user: Optional[str]) -> None:
    from twin.driver.interactive import interactive

    rl = _attach(lab)
    try:
        rl.device(node)
    except LabError as exc:
        _fail(str(exc), 2)
    raise typer.Exit(interactive(rl, node, transport, username=user))


@app.command()
def console(node: str, lab: Optional[str] = LabOpt) -> None:
    """Attach to a device's console (its serial line); Ctrl-] leaves."""
    _interactive(node, "console", lab, None)


@app.command()
def ssh(node: str, user: Optional[str] = typer.Option(None, "--user", "-u"), lab: Optional[str] = LabOpt) -> None:
    """SSH to a device from the lab's management station."""
    _interactive(node, "ssh", lab, user)


@app.command()
def telnet(node: str, user: Optional[str] = typer.Option(None, "--user", "-u"), lab: Optional[str] = LabOpt) -> None:
    """Telnet to a device from the lab's management station."""
    _interactive(node, "telnet", lab, user)


@app.command()
def graph(file: Optional[Path] = typer.Argument(None, help="lab file (default: the running lab)"),
          output: Path = typer.Option(Path("lab.svg"), "-o", "--output", help=".svg, .png or .dot"),
          lab: Optional[str] = LabOpt) -> None:
    """Draw the topology with graphviz (a running lab is coloured by node state)."""
    from twin.graph import dot_source, render, running_dot

    dot = dot_source(_load(file)) if file else running_dot(_attach(lab))
    render(dot, output)
    out.print(f"wrote {output}")


def _fault(fn, *args) -> None:
    try:
        f = fn(*args)
    except LabError as exc:
        _fail(str(exc), 2)
    except subprocess.CalledProcessError as exc:
        _fail(f"{' '.join(map(str, exc.cmd))}: {exc.stderr or exc}")
    ts = time.strftime("%H:%M:%S", time.localtime(f.time)) + f".{int(f.time * 1000) % 1000:03d}"
    out.print(f"{ts} {f.kind} {f.target}")


@fault_app.command("link-down")
def f_link_down(endpoint: str = typer.Argument(..., help="one end of the link, e.g. r1:eth1"), lab: Optional[str] = LabOpt) -> None:
    """Take a link down at both ends."""
    _fault(_attach(lab).faults.link_down, endpoint)


@fault_app.command("link-up")
def f_link_up(endpoint: str = typer.Argument(..., help="one end of the link, e.g. r1:eth1"), lab: Optional[str] = LabOpt) -> None:
    """Bring a link back up."""
    _fault(_attach(lab).faults.link_up, endpoint)


@fault_app.command("power-off")
def f_power_off(node: str, lab: Optional[str] = LabOpt) -> None:
    """Power a node off: every link of it down, management included."""
    _fault(_attach(lab).faults.power_off, node)


@fault_app.command("power-on")
def f_power_on(node: str, lab: Optional[str] = LabOpt) -> None:
    """Power a node back on."""
    _fault(_attach(lab).faults.power_on, node)


@fault_app.command("kill")
def f_kill(node: str, signal_name: str = typer.Option("KILL", "--signal", "-s"),
           match: Optional[str] = typer.Option(None, help="only processes whose command line contains this"),
           lab: Optional[str] = LabOpt) -> None:
    """Signal the processes running in a node (KILL by default; STOP freezes them)."""
    _fault(_attach(lab).faults.kill, node, signal_name, match)


@fault_app.command("cpu-load")
def f_cpu_load(node: str, workers: int = typer.Option(1, help="busy loops to run"),
               seconds: float = typer.Option(30.0, help="how long they burn (bounded)"),
               lab: Optional[str] = LabOpt) -> None:
    """Burn CPU inside a node for a bounded time."""
    rl = _attach(lab)
    load = rl.faults.cpu_load(node, workers=workers, seconds=seconds)
    out.print(f"{len(load.pids)} busy loops in {node} for {seconds:g} s (pids {' '.join(map(str, load.pids))})")


@fault_app.command("controller-restart")
def f_ctl_restart(lab: Optional[str] = LabOpt) -> None:
    """Restart the OpenFlow controller and wait for every switch to reconnect."""
    _fault(_attach(lab).faults.restart_controller)


MnodeOpt = typer.Option(None, "--manager", "-m", help="MNODE (default: the lab's first)")


def _flows(lab: Optional[str], fn, *args, **kwargs):
    from twin import flowsctl

    rl = _attach(lab)
    try:
        return fn(rl, *args, **kwargs)
    except flowsctl.FlowsError as exc:
        _fail(str(exc), 2)


def _flows_view(ctx: typer.Context, what: str, lab: Optional[str], manager: Optional[str], as_json: bool) -> None:
    from twin import flowsctl

    if as_json:
        op = {"topology": "summary", "events": "summary"}.get(what, what)
        print(json.dumps(_flows(lab, flowsctl.call, op, manager), indent=1, default=str))
    else:
        print(_flows(lab, flowsctl.show, what, manager))


@flows_app.callback()
def flows_main(ctx: typer.Context, lab: Optional[str] = LabOpt, manager: Optional[str] = MnodeOpt,
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Every flow on every node: type, role, path, topology, route, packets and bytes each way."""
    if ctx.invoked_subcommand is None:
        _flows_view(ctx, "flows", lab, manager, as_json)


def _flows_view_command(view: str, doc: str):
    def command(ctx: typer.Context, lab: Optional[str] = LabOpt, manager: Optional[str] = MnodeOpt,
                as_json: bool = typer.Option(False, "--json")) -> None:
        _flows_view(ctx, view, lab, manager, as_json)
    command.__doc__, command.__name__ = doc, f"flows_{view}"
    return command


for _view, _doc in (("routes", "Every flow route of every flow path, and how many flows each carries."),
                    ("nodes", "Flow nodes: cluster and node IDs, up/down, in service, backup, load, processing "
                              "latency."),
                    ("topology", "The current topology: its ID, each cluster's live members, strategies and "
                                 "backups.")):
    flows_app.command(_view)(_flows_view_command(_view, _doc))


@flows_app.command("events")
def flows_events(ctx: typer.Context, lab: Optional[str] = LabOpt, manager: Optional[str] = MnodeOpt) -> None:
    """Every topology change, timestamped: failures, recoveries, restarts, operator changes."""
    _flows_view(ctx, "events", lab, manager, False)


@flows_app.command("drain")
def flows_drain(node: str, lab: Optional[str] = LabOpt, manager: Optional[str] = MnodeOpt) -> None:
    """Take a flow node out of service: a new topology without it (its flows get their cluster's strategy)."""
    from twin import flowsctl

    t = _flows(lab, flowsctl.call, "service", manager, node=node, in_service=False)
    print(f"topology {t['id']}: {t['reason'] or 'unchanged'}")


@flows_app.command("restore")
def flows_restore(node: str, lab: Optional[str] = LabOpt, manager: Optional[str] = MnodeOpt) -> None:
    """Put a flow node back in service (a new topology with it)."""
    from twin import flowsctl

    t = _flows(lab, flowsctl.call, "service", manager, node=node, in_service=True)
    print(f"topology {t['id']}: {t['reason'] or 'unchanged'}")


@flows_app.command("selection")
def flows_selection(mode: str = typer.Argument(..., help="centralized or distributed"),
                    lab: Optional[str] = LabOpt, manager: Optional[str] = MnodeOpt) -> None:
    """Next-hop selection for new flows: centralized (the INODE picks) or distributed (hop by hop)."""
    from twin import flowsctl

    print(f"next-hop selection for new flows: {_flows(lab, flowsctl.call, 'selection', manager, mode=mode)}")


@flows_app.command("decode")
def flows_decode(pcap: Path = typer.Argument(..., help="a capture from inside the grid")) -> None:
    """Print a capture's frames with their flow descriptors decoded (Table 2)."""
    from emulators.flows.scapy_layer import describe_pcap

    if not pcap.exists():
        _fail(f"{pcap}: no such file", 2)
    for line in describe_pcap(str(pcap)):
        print(line)


def main() -> None:
    try:
        app()
    except LabError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
