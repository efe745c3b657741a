"""The pytest plugin's own behaviour, through pytester: labs boot and tear down (also after a
failure, a timeout or a crashed worker), evidence reaches the Allure results, workers get their own
prefixes, and the markers are registered."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.cleanup import bridges_with_prefix, named_netns

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "labs" / "mini.yaml"

RECORDS = """
import json, os, pytest
pytestmark = [pytest.mark.e2e, pytest.mark.lab({mini!r})]

def record(lab, name):
    with open(os.path.join({out!r}, name + ".json"), "w") as fh:
        json.dump({{"prefix": lab.prefix, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}}, fh)
"""


def results(alluredir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in alluredir.glob("*-result.json")]


def steps(result: dict) -> list[str]:
    out = []

    def walk(node):
        for s in node.get("steps", []):
            out.append(s["name"])
            walk(s)
    walk(result)
    return out


def assert_lab_gone(prefix: str) -> None:
    assert not bridges_with_prefix(prefix) and not named_netns(prefix), f"lab {prefix} was not torn down"


def test_failing_test_tears_down_and_still_attaches_evidence(pytester, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pytester.makepyfile(test_a=RECORDS.format(mini=str(MINI), out=str(out)) + """
def test_passes(lab, timings):
    record(lab, "pass")
    timings.record("a figure", 12.5, "ms")
    lab.faults.link_down("h1:eth1")
    lab.faults.link_up("h1:eth1")

def test_fails(lab):
    record(lab, "fail")
    assert False, "failing on purpose"
""")
    alluredir = tmp_path / "allure"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--alluredir={alluredir}")
    res.assert_outcomes(passed=1, failed=1)
    prefix = json.loads((out / "fail.json").read_text())["prefix"]
    assert json.loads((out / "pass.json").read_text())["prefix"] == prefix, "the module's tests share one lab"
    assert_lab_gone(prefix)
    by_name = {r["name"]: r for r in results(alluredir)}
    for name in ("test_passes", "test_fails"):
        attached = {a["name"] for a in by_name[name]["attachments"]}
        assert {"flow table s1 (%ss1)" % prefix, "controller log"} <= attached, attached
        assert any(a.startswith("topology of mini") for a in attached), attached
    assert by_name["test_fails"]["status"] == "failed"
    labels = {l["name"]: l["value"] for l in by_name["test_passes"]["labels"]}
    assert labels["epic"] == "twin platform" and labels["severity"] == "critical" and labels["story"] == "passes"
    assert "inject fault: link-down h1:eth1" in steps(by_name["test_passes"])
    assert "timings" in {a["name"] for a in by_name["test_passes"]["attachments"]}
    assert "event timeline" in {a["name"] for a in by_name["test_passes"]["attachments"]}


def test_timed_out_test_tears_its_lab_down(pytester, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pytester.makepyfile(test_t=RECORDS.format(mini=str(MINI), out=str(out)) + """
import time
@pytest.mark.timeout(3)
def test_hangs(lab):
    record(lab, "hang")
    while True:
        time.sleep(0.1)
""")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(failed=1)
    assert "Timeout" in res.stdout.str()
    assert_lab_gone(json.loads((out / "hang.json").read_text())["prefix"])


def test_xdist_workers_get_their_own_labs_and_a_crashed_worker_is_reported_broken(pytester, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    body = RECORDS.format(mini=str(MINI), out=str(out))
    pytester.makepyfile(test_one=body + "\ndef test_one(lab):\n    record(lab, 'one')\n",
                        test_two=body + "\ndef test_two(lab):\n    record(lab, 'two')\n",
                        test_crash="import os\n\ndef test_crash():\n    os._exit(3)\n")
    alluredir = tmp_path / "allure"
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", f"--alluredir={alluredir}")
    res.assert_outcomes(passed=2, failed=1)
    one, two = (json.loads((out / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["prefix"] != two["prefix"]
    assert_lab_gone(one["prefix"])
    assert_lab_gone(two["prefix"])
    broken = [r for r in results(alluredir) if r["status"] == "broken"]
    assert [r["name"] for r in broken] == ["test_crash"], [r["name"] for r in results(alluredir)]
    assert "worker crashed" in broken[0]["statusDetails"]["message"]


GROUPED = """
import os, pytest

@pytest.fixture(scope="module")
def shared():
    return os.environ.get("PYTEST_XDIST_WORKER", "main")

@pytest.mark.parametrize("i", range(6))
def test_uses_module_fixture(shared, i):
    with open(os.path.join({out!r}, "{name}-%d" % i), "w") as fh:
        fh.write(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_tests_sharing_a_module_resource_run_on_one_worker(pytester, tmp_path):
    """The grouping is what makes a lab boot once per module under -n: if xdist stops honouring it
    (as with pytest 9.2 and xdist 3.8, which drop the group suffix), labs boot once per worker."""
    out = tmp_path / "out"
    out.mkdir()
    pytester.makepyfile(test_a=GROUPED.format(out=str(out), name="a"),
                        test_b=GROUPED.format(out=str(out), name="b"))
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    res.assert_outcomes(passed=12)
    for name in ("a", "b"):
        workers = {(out / f"{name}-{i}").read_text() for i in range(6)}
        assert len(workers) == 1, f"module {name} was spread over workers {sorted(workers)}"


def test_markers_are_registered(pytester):
    pytester.makepyfile("""
import pytest
@pytest.mark.cluster
@pytest.mark.ems
@pytest.mark.aaa
@pytest.mark.flows
@pytest.mark.configsync
@pytest.mark.unit
@pytest.mark.slow
def test_marked():
    pass
""")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    res.assert_outcomes(passed=1)
    listed = pytester.runpytest_subprocess("--markers").stdout.str()
    for m in ("cluster", "ems", "aaa", "flows", "configsync", "e2e", "unit", "lab(path)"):
        assert f"@pytest.mark.{m}" in listed, m
