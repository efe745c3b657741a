"""pytest plugin for twin labs (registered through the `pytest11` entry point).

`@pytest.mark.lab("labs/default.yaml")` on a module or class and the `lab` fixture boot the lab once
for the tests that share it, and tear it down afterwards even when a test fails, times out
(pytest-timeout's signal method) or is interrupted. Every worker gets its own prefix and ports from
the machine-wide registry, so `pytest -n auto` needs nothing more.
"""
from __future__ import annotations

import atexit
import os
from pathlib import Path

import pytest

_ACTIVE: dict[str, object] = {}
# one marker per system under test; it becomes the Allure epic
SYSTEMS = {
    "cluster": "Cluster re-provisioning",
    "vlinks": "Virtual connectivity grid",
    "ems": "Element-management servers",
    "aaa": "AAA failover",
    "flows": "Multi-stage flow routing",
    "configsync": "Active/standby configuration sync",
}
PLATFORM_EPIC = "twin platform"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("twin")
    g.addoption("--lab-keep", action="store_true", default=False,
                help="leave a lab up after a failed test, and print how to reach it")
    g.addoption("--lab-timeout", type=float, default=120.0, help="seconds a lab may take to boot")


def pytest_configure(config: pytest.Config) -> None:
    for line in ("unit: fast tests of logic, no lab booted",
                 "e2e: boots a lab and checks with real traffic and real clients",
                 "slow: takes more than a few seconds even on its own",
                 "lab(path): the lab file the module's or class's `lab` fixture boots",
                 *(f"{m}: {epic} (seed system)" for m, epic in SYSTEMS.items())):
        config.addinivalue_line("markers", line)
    if not hasattr(config, "workerinput") and os.geteuid() == 0:
        _clean_dead_labs()


@pytest.hookimpl(tryfirst=True)  # before xdist turns xdist_group markers into scheduling groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that share a module's lab run on one xdist worker (with --dist loadgroup), so the lab
    boots once per module rather than once per worker."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and _uses_module_resource(item):
            item.add_marker(pytest.mark.xdist_group(name=item.nodeid.split("::")[0]))


def _uses_module_resource(item: pytest.Item) -> bool:
    """A test that uses the lab, or any module-scoped fixture (a bridge, a daemon), shares it with
    its module: spreading the module over workers would set the resource up once per worker."""
    if "lab" in getattr(item, "fixturenames", ()):
        return True
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        if any(d.scope in ("module", "package") for d in defs):
            return True
    return False


def _clean_dead_labs() -> None:
    """Labs whose owning process died (a crashed earlier run) are removed before a run starts."""
    try:
        from twin.cleanup import clean_lab
        from twin.state import LabState, all_prefixes, pid_alive

        for prefix in all_prefixes():
            try:
                st = LabState.load(prefix)
            except Exception:
                continue
            if not pid_alive(st.owner_pid):
                clean_lab(prefix, st)
    except Exception:  # never block a test run on this
        pass


def _stop_all() -> None:
    for lab in list(_ACTIVE.values()):
        try:
            lab.stop()
        except Exception:
            pass
    _ACTIVE.clear()


atexit.register(_stop_all)


def _lab_file(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("lab")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{request.node.nodeid}: the 'lab' fixture needs @pytest.mark.lab('labs/FILE.yaml')")
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(request.config.rootpath) / path
    return path


def boot_lab(path: Path, timeout: float):
    """Boot a lab for a test; used by the `lab` fixture and by tests that need a second lab."""
    from twin.boot import Lab
    from twin.evidence import attach_text, step

    lab = Lab.from_file(path)
    with step(f"boot lab {lab.model.name} ({path.name})"):
        try:
            lab.start(timeout=timeout)
        finally:
            if lab.state.controller_log:
                attach_text("controller log (boot)", _read(lab.state.controller_log)[-20000:])
    _ACTIVE[lab.prefix] = lab
    return lab


def _read(path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def release_lab(lab, keep: bool = False) -> None:
    _ACTIVE.pop(lab.prefix, None)
    if keep:
        print(f"\n--lab-keep: lab {lab.name} ({lab.prefix}) left running; "
              f"reach it with 'twin exec --lab {lab.prefix} NODE -- CMD', remove it with 'twin clean --lab {lab.prefix} --force'")
        return
    lab.stop()


class Timings:
    """Measured figures (outage windows, recovery times) a test reports; the demo summarises them
    and the report shows them. Worker-safe: one file per xdist worker."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.path = Path(request.config.rootpath) / "reports" / "timings" / f"{worker}.jsonl"

    def record(self, name: str, value: float, unit: str = "ms", **extra) -> None:
        import json
        import time

        self.path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"test": self._request.node.nodeid, "name": name, "value": round(float(value), 3), "unit": unit,
               "time": time.time(), **extra}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


@pytest.fixture
def timings(request: pytest.FixtureRequest) -> Timings:
    return Timings(request)


@pytest.fixture
def faults(lab):
    """The lab's fault injector (each fault timestamped, and a step in the report)."""
    return lab.faults


@pytest.fixture
def device(lab):
    """`device("r1").ssh()`: sessions on the lab's devices, closed after the test."""
    opened = []

    def open_device(node: str):
        handle = lab.device(node)
        inner = handle.on_open

        def remember(session):
            opened.append(session)
            if inner is not None:
                inner(session)
        handle.on_open = remember
        return handle

    yield open_device
    for session in opened:
        try:
            session.close()
        except Exception:
            pass


@pytest.fixture
def probe(lab):
    """`probe("h1", "h2")`: a started probe stream (stopped after the test); `.stop()` gives outages."""
    from twin.traffic.probe import ProbeStream

    streams = []

    def start(src: str, dst: str, interval_ms: float = 5, port: int = 7777):
        ps = ProbeStream(lab.nodes, src, dst, lab.address(dst), port=port, interval_ms=interval_ms).start()
        streams.append(ps)
        return ps

    yield start
    for ps in streams:
        try:
            if ps.result is None:
                ps.stop()
        except Exception:
            pass


@pytest.fixture
def quiet_datapath(timings: Timings):
    """For the whole test, no lab on this machine boots or is torn down (twin.datapath.quiet): a
    test that claims traffic lost nothing must not count a stall another xdist worker's lab caused."""
    from twin.datapath import quiet

    with quiet() as waited:
        if waited >= 0.1:
            timings.record("waited for the switch datapath to be quiet", waited * 1000, "ms")
        yield


# ---- report labels and evidence ------------------------------------------------------------------
def _labels(item: pytest.Item) -> None:
    from twin.evidence import allure

    if allure is None:
        return
    epic = next((SYSTEMS[m] for m in SYSTEMS if item.get_closest_marker(m)), PLATFORM_EPIC)
    allure.dynamic.epic(epic)
    allure.dynamic.feature(item.module.__name__.split(".")[-1].removeprefix("test_").replace("_", " "))
    allure.dynamic.story(item.name.removeprefix("test_").split("[")[0].replace("_", " "))
    sev = item.get_closest_marker("severity")
    level = sev.args[0] if sev and sev.args else ("critical" if item.get_closest_marker("e2e") else "normal")
    allure.dynamic.severity(getattr(allure.severity_level, str(level).upper(), allure.severity_level.NORMAL))
    allure.dynamic.tag("e2e" if item.get_closest_marker("e2e") else "unit")


def _lab_of(item: pytest.Item):
    funcargs = getattr(item, "funcargs", {}) or {}
    lab = funcargs.get("lab")
    return lab if lab is not None and hasattr(lab, "state") else None


def attach_lab_evidence(lab, since: float, timings_path: Path | None, nodeid: str) -> None:
    """Topology picture, flow tables, controller log, event timeline, device transcripts, pcaps and
    the figures the test measured: attached on success and on failure alike."""
    import json
    import time

    from twin.evidence import attach_file, attach_text

    try:
        from twin.graph import render, running_dot

        png = lab.dir / "evidence" / f"topology-{time.time():.3f}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        render(running_dot(lab), png)
        attach_file(f"topology of {lab.name} (coloured by node state)", png)
    except Exception as exc:  # evidence must never hide the test's own result
        attach_text("topology (not drawn)", str(exc))
    for sw in lab.switch_names():
        attach_text(f"flow table {sw} ({lab.bridge(sw)})", lab.dump_flows(sw))
    attach_text("controller log", lab.controller_log()[-30000:])
    events = [e for e in lab.events() if e.get("time", 0) >= since - 0.001]
    if events:
        lines = [f"{time.strftime('%H:%M:%S', time.localtime(e['time']))}.{int(e['time'] * 1000) % 1000:03d}  "
                 f"{e.get('fault') or e.get('kind')}  {e.get('target', '')}" for e in events]
        attach_text("event timeline", "\n".join(lines))
    sessions, captures = lab.produced.take()
    for s in sessions:
        try:
            attach_text(f"transcript {s.device} over {s.transport}", s.transcript)
        except Exception:
            pass
    for cap in captures:
        attach_file(f"capture {cap.name}", cap)
    if timings_path is not None and timings_path.exists():
        rows = [json.loads(l) for l in timings_path.read_text().splitlines() if l.strip()]
        rows = [r for r in rows if r.get("test") == nodeid]
        if rows:
            table = "measure,value,unit\n" + "\n".join(f"\"{r['name']}\",{r['value']},{r['unit']}" for r in rows)
            attach_text("timings", table, "csv")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    import time

    _labels(item)
    started = time.time()
    outcome = yield
    del outcome
    lab = _lab_of(item)
    if lab is not None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        attach_lab_evidence(lab, started, Path(item.config.rootpath) / "reports" / "timings" / f"{worker}.jsonl",
                            item.nodeid)


def pytest_handlecrashitem(crashitem: str, report, sched) -> None:  # pytest-xdist hook
    """A test whose worker died still appears in the report, as broken."""
    _write_broken_result(sched.config, crashitem, str(report.longrepr))


def _write_broken_result(config: pytest.Config, nodeid: str, message: str) -> None:
    import json
    import time
    import uuid

    alluredir = config.getoption("allure_report_dir", None)
    if not alluredir:
        return
    now = int(time.time() * 1000)
    result = {"uuid": str(uuid.uuid4()), "historyId": uuid.uuid5(uuid.NAMESPACE_URL, nodeid).hex,
              "name": nodeid.split("::")[-1], "fullName": nodeid, "status": "broken",
              "statusDetails": {"message": f"the test's worker crashed: {message[:2000]}"},
              "start": now, "stop": now,
              "labels": [{"name": "epic", "value": PLATFORM_EPIC}, {"name": "suite", "value": nodeid.split("::")[0]}]}
    Path(alluredir).mkdir(parents=True, exist_ok=True)
    (Path(alluredir) / f"{result['uuid']}-result.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest):
    """The running lab named by the module's `lab` marker, shared by the module's tests."""
    lab = boot_lab(_lab_file(request), request.config.getoption("--lab-timeout"))
    failed_before = request.session.testsfailed
    yield lab
    keep = request.config.getoption("--lab-keep") and request.session.testsfailed > failed_before
    release_lab(lab, keep)
