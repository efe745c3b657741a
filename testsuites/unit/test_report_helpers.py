"""twin.report helpers without Java: .properties escaping, category exclusivity (by Allure's own
matching rule), history restore/save/harvest, executor fields, probes of missing tools."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from twin.report import categories, environment, executor, history, results
from twin.report.embedded import embedded_files

pytestmark = pytest.mark.unit


def test_properties_round_trip_with_awkward_text():
    values = {"Open vSwitch": "3.1.0", "a=b:c": " leading space", "path": r"C:\x", "uni": "Zürich ✓",
              "multi": "line1\nline2", "twin commit": "abc-dirty"}
    text = environment.format_properties(values)
    assert text.isascii()
    assert environment.parse_properties(text) == values


def test_missing_tools_give_unknown(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert environment.ovs_version() == environment.UNKNOWN
    assert environment.java_version() == environment.UNKNOWN
    assert environment.mnexec_version() == environment.UNKNOWN
    assert environment.allure_version(Path("/nonexistent/allure")) == environment.UNKNOWN
    assert environment.git_commit(Path("/nonexistent")) == environment.UNKNOWN


def test_collect_has_every_key():
    assert list(environment.collect()) == list(environment.KEYS)


@pytest.mark.parametrize("status, message, expected", [
    ("broken", "twin.errors.LabError: lab default (def01) failed to boot: ovs-vsctl: timed out",
     "Lab failed to boot"),
    ("failed", "LabError: device CLI never came up on r1 within 30 s: ...", "Lab failed to boot"),
    ("broken", "LabError: switches never connected: s1", "Lab failed to boot"),
    ("broken", "emulators.DriverTimeout: no prompt from r1 after 10 s", "Device timeout"),
    ("failed", "TimeoutError: ssh to 10.0.0.1 timed out\nAssertionError later", "Device timeout"),
    ("broken", "pexpect.exceptions.TIMEOUT: Timeout exceeded.", "Device timeout"),
    ("failed", "AssertionError: outage window 900 ms, budget 500 ms\nassert 900 < 500",
     "Assertion (test defect or regression)"),
    ("failed", "Failed: cluster elected two leaders", "Product defect"),
    ("broken", "FileNotFoundError: [Errno 2] No such file or directory: 'iperf3'", "Broken infrastructure"),
])
def test_every_failure_lands_in_exactly_one_category(status, message, expected):
    assert categories.classify(status, message) == [expected]


def test_message_less_failures_get_a_message_and_so_a_category(tmp_path: Path):
    # Allure never matches a messageRegex against a missing message: such a failure would fall
    # into Allure's own default groups, so prepare gives it a placeholder message.
    assert categories.classify("failed", None) == []
    cases = {"a": {"status": "failed"}, "b": {"status": "broken", "statusDetails": {"trace": "t"}},
             "c": {"status": "failed", "statusDetails": {"message": "AssertionError: x"}},
             "d": {"status": "passed"}}
    for name, data in cases.items():
        (tmp_path / f"{name}-result.json").write_text(json.dumps(data))
    (tmp_path / "e-result.json").write_text("{not json")
    assert results.fill_missing_messages(tmp_path) == 2
    msg = {n: json.loads((tmp_path / f"{n}-result.json").read_text()).get("statusDetails", {}).get("message")
           for n in cases}
    assert msg == {"a": results.NO_MESSAGE, "b": results.NO_MESSAGE, "c": "AssertionError: x", "d": None}
    assert categories.classify("failed", msg["a"]) == ["Product defect"]
    assert categories.classify("broken", msg["b"]) == ["Broken infrastructure"]
    assert len(results.result_files(tmp_path)) == 5


def test_passed_and_skipped_are_in_no_category():
    assert categories.classify("passed", None) == []
    assert categories.classify("skipped", "AssertionError") == []


def test_categories_listed_for_flaky_results_too():
    data = categories.categories_json()
    assert {c["name"] for c in data if c["flaky"]} == {c["name"] for c in data if not c["flaky"]}


def test_executor_type_follows_ci(monkeypatch):
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    monkeypatch.setenv("CI", "true")
    ci = executor.executor(7, "r", now=now, commit="abc")
    assert ci["type"] == "ci" and ci["buildOrder"] == 7
    assert ci["buildName"] == "twin ci #7 2025-01-02 03:04:05 UTC (abc)"
    monkeypatch.delenv("CI")
    assert executor.executor(1, "r", now=now)["type"] == "local"


def trend_file(n: int) -> bytes:
    return json.dumps([{"buildOrder": i, "data": {"total": 1}} for i in range(n, 0, -1)]).encode()


def test_history_restore_replaces_a_stale_copy(tmp_path: Path):
    kept, results = tmp_path / "kept", tmp_path / "results"
    (results / "history").mkdir(parents=True)
    (results / "history" / "stale.json").write_text("[]")
    assert history.restore(kept, results) == 0
    assert not (results / "history").exists()
    history.save({"history-trend.json": trend_file(2), "history.json": b"{}"}, kept)
    assert history.restore(kept, results) == 2
    assert sorted(p.name for p in (results / "history").iterdir()) == ["history-trend.json", "history.json"]


def test_history_save_replaces_whole_folder(tmp_path: Path):
    kept = tmp_path / "kept"
    history.save({"history-trend.json": trend_file(1), "old.json": b"{}"}, kept)
    history.save({"history-trend.json": trend_file(2)}, kept)
    assert [p.name for p in kept.iterdir()] == ["history-trend.json"]
    assert len(history.trend(kept)) == 2
    assert history.next_build_order(kept) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]  # no staging left behind


def test_history_harvested_from_a_single_file_report(tmp_path: Path):
    def d(name: str, data: bytes) -> str:
        return f"d('{name}','{base64.b64encode(data).decode()}'),"
    html = ("<script defer>Promise.allSettled([" + d("data/suites.json", b"{}")
            + d("history/history-trend.json", trend_file(3)) + d("history/history.json", b"{}") + "])")
    assert set(embedded_files(html)) == {"data/suites.json", "history/history-trend.json", "history/history.json"}
    assert set(history.harvest(html)) == {"history-trend.json", "history.json"}
    index = tmp_path / "index.html"
    index.write_text(html)
    assert history.main(["harvest", str(index), str(tmp_path / "kept")]) == 0
    assert history.main(["trend", str(tmp_path / "kept")]) == 0
    assert len(history.trend(tmp_path / "kept")) == 3
    index.write_text("<html>no embedded data</html>")
    assert history.main(["harvest", str(index), str(tmp_path / "kept2")]) == 3


def test_history_from_a_normal_report_dir(tmp_path: Path):
    rep = tmp_path / "report" / "history"
    rep.mkdir(parents=True)
    (rep / "history-trend.json").write_bytes(trend_file(1))
    assert history.main(["save-dir", str(rep), str(tmp_path / "kept")]) == 0
    assert history.next_build_order(tmp_path / "kept") == 2
    assert history.next_build_order(tmp_path / "none") == 1
