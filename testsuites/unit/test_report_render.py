"""The Allure report: offline scanner, the files written before generation, and a real render of a
tiny allure-pytest run with scripts/render-report.sh (Java and the npm Allure command line come from
scripts/install.sh; missing ones fail here with that advice, never skip)."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin.report import prepare
from twin.report.embedded import embedded_files
from twin.report.environment import parse_properties
from twin.report.offline import remote_references, strip_remote

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "render-report.sh"
ALLURE = ROOT / ".tools" / "allure" / "node_modules" / ".bin" / "allure"

# What Allure 2.46.1 writes into index.html unless ALLURE_NO_ANALYTICS=true.
GA_SNIPPET = """
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-FVWC4GKEYS"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){dataLayer.push(arguments);}
        gtag('js', new Date());
        gtag('config', 'G-FVWC4GKEYS', {'allureVersion': '2.46.1'});
    </script>
"""
LOCAL_PAGE = """<!DOCTYPE html><html><head>
<link rel="icon" href="data:image/x-icon;base64,AAABAAMAEBAAAAEAIABoBAAANgAAACAgAAAB">
<link rel="stylesheet" href="styles.css">
<script src="data:text/javascript;base64,{js}"></script>
<script src="app.js"></script>
</head><body><img src="plugin/logo.svg"><img src="./img/a.png">
<a href="https://allurereport.org/">docs (a link is only followed when clicked)</a>
<svg xmlns="http://www.w3.org/2000/svg"></svg>
<script>fetch('data/suites.json').then(r => r.json()); new XMLHttpRequest().open('GET', 'data/x.json');</script>
{extra}
</body></html>"""


def page(extra: str = "", js: str = "console.log('local')") -> str:
    import base64
    return LOCAL_PAGE.format(js=base64.b64encode(js.encode()).decode(), extra=extra)


# --- the offline scanner ---------------------------------------------------------------------------

def test_scanner_ignores_data_uris_and_relative_paths():
    assert remote_references(page()) == []


def test_scanner_finds_the_google_analytics_snippet():
    found = remote_references(page(GA_SNIPPET))
    assert any("https://www.googletagmanager.com/gtag/js?id=G-FVWC4GKEYS" in f for f in found), found
    assert any("gtag(" in f for f in found), found


@pytest.mark.parametrize("tag, url", [
    ('<script src="https://cdn.example.com/lib.js"></script>', "https://cdn.example.com/lib.js"),
    ("<script src='//cdn.example.com/p.js'></script>", "//cdn.example.com/p.js"),
    ('<link rel="stylesheet" href="http://fonts.example.com/font.css">', "http://fonts.example.com/font.css"),
    ('<link rel="preconnect" href="https://fonts.example.com">', "https://fonts.example.com"),
    ('<img src="https://tracker.example.com/pixel.gif" width=1>', "https://tracker.example.com/pixel.gif"),
    ('<img srcset="a.png 1x, https://img.example.com/b.png 2x">', "https://img.example.com/b.png"),
    ('<iframe src="https://example.com/embed"></iframe>', "https://example.com/embed"),
    ('<div style="background: url(https://example.com/bg.png)"></div>', "https://example.com/bg.png"),
    ("<script>fetch('https://api.example.com/collect', {method: 'POST'})</script>",
     "https://api.example.com/collect"),
    ('<script>var x = new XMLHttpRequest(); x.open("POST", "https://example.com/log");</script>',
     "https://example.com/log"),
    ('<style>@import "https://example.com/theme.css";</style>', "https://example.com/theme.css"),
])
def test_scanner_finds_remote_urls(tag, url):
    found = remote_references(page(tag))
    assert any(url in f for f in found), found


def test_scanner_looks_inside_inlined_data_scripts():
    found = remote_references(page(js="(async()=>{await fetch(`https://collector.example.com/e`)})()"))
    assert any("https://collector.example.com/e" in f for f in found), found
    assert remote_references(page(js="gtag('config','G-X')")) != []


def test_scanner_flags_an_analytics_script_even_if_local():
    assert remote_references(page('<script src="js/analytics.js"></script>')) != []


def test_strip_removes_the_analytics_snippet_and_keeps_the_rest():
    html, removed = strip_remote(page(GA_SNIPPET + '<img src="https://t.example.com/p.gif">'))
    assert len(removed) == 3, removed
    assert remote_references(html) == []
    assert 'src="app.js"' in html and "fetch('data/suites.json')" in html


# --- the files written into the results before generating ------------------------------------------

@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    (results / "0-result.json").write_text("{}")
    assert prepare.main(["--results", str(results), "--history", str(tmp_path / "history"),
                         "--allure", str(ALLURE)]) == 0
    return results


def test_environment_properties_has_the_versions(prepared: Path):
    env = parse_properties((prepared / "environment.properties").read_text(encoding="utf-8"))
    for key in ("Open vSwitch", "Mininet", "mnexec", "os-ken", "Python", "Kernel", "Debian", "twin",
                "twin commit"):
        assert env.get(key), f"{key} missing or empty in {env}"
    assert env["Python"] == platform.python_version()
    assert env["Kernel"] == platform.release()


def test_categories_json_is_valid_and_has_the_categories(prepared: Path):
    data = json.loads((prepared / "categories.json").read_text())
    names = [c["name"] for c in data]
    assert set(names) == {"Lab failed to boot", "Device timeout", "Assertion (test defect or regression)",
                          "Product defect", "Broken infrastructure"}
    for c in data:
        assert set(c["matchedStatuses"]) <= {"failed", "broken"}
    assert next(c for c in data if c["name"] == "Broken infrastructure")["matchedStatuses"] == ["broken"]


def test_executor_json(prepared: Path):
    data = json.loads((prepared / "executor.json").read_text())
    assert data["name"] == "twin" and data["type"] in ("local", "ci")
    assert data["buildOrder"] == 1 and data["buildName"] and data["reportName"]


def test_no_results_fails_with_a_message(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    assert prepare.main(["--results", str(tmp_path / "empty"), "--history", str(tmp_path / "h")]) == 2
    assert "no test results" in capsys.readouterr().err


# --- a real render -----------------------------------------------------------------------------------

SAMPLE_TESTS = '''
import allure


def test_boots_and_recovers():
    with allure.step("boot the lab"):
        allure.attach("h1 -> h2: 0 packets lost", name="probe summary",
                      attachment_type=allure.attachment_type.TEXT)
    with allure.step("verify recovery"):
        assert 1 + 1 == 2


def test_outage_too_long():
    with allure.step("measure the outage"):
        assert 900 < 500, "outage window 900 ms, budget 500 ms"
'''


def require_tools() -> None:
    missing = [what for what, ok in (("java", shutil.which("java")), (str(ALLURE), ALLURE.exists()))
               if not ok]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `bash scripts/install.sh` (it installs "
                    f"Java and the pinned npm allure-commandline into .tools/allure)", pytrace=False)


def render(results: Path, out: Path, history: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RESULTS=str(results), OUT=str(out), HISTORY=str(history))
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Runs a 2-test file under allure-pytest, then renders its results twice."""
    require_tools()
    work = tmp_path_factory.mktemp("render")
    (work / "test_sample.py").write_text(SAMPLE_TESTS)
    results, out, history = work / "allure-results", work / "html", work / "history"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          "--alluredir", str(results), "test_sample.py"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 1, f"expected 1 failure:\n{run.stdout}\n{run.stderr}"
    first = render(results, out, history)
    assert first.returncode == 0, f"render failed:\n{first.stdout}\n{first.stderr}"
    trend_after_first = json.loads((history / "history-trend.json").read_text())
    html_first = (out / "index.html").read_text(encoding="utf-8")
    second = render(results, out, history)
    assert second.returncode == 0, f"second render failed:\n{second.stdout}\n{second.stderr}"
    return {"out": out, "history": history, "first": first, "second": second,
            "trend_after_first": trend_after_first, "html_first": html_first}


@pytest.mark.xdist_group("report_render")
def test_render_writes_one_offline_file(rendered: dict):
    out: Path = rendered["out"]
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]
    assert f"{out}/index.html" in rendered["second"].stdout
    html = (out / "index.html").read_text(encoding="utf-8")
    assert remote_references(html) == []
    assert remote_references(rendered["html_first"]) == []
    low = html.lower()
    assert "googletagmanager" not in low and "gtag(" not in low


@pytest.mark.xdist_group("report_render")
def test_render_keeps_history_so_trends_show(rendered: dict):
    assert len(rendered["trend_after_first"]) == 1
    trend = json.loads((rendered["history"] / "history-trend.json").read_text())
    assert len(trend) == 2, trend
    assert [e["data"]["total"] for e in trend] == [2, 2]
    assert [e["buildOrder"] for e in trend] == [2, 1]
    files = embedded_files((rendered["out"] / "index.html").read_text(encoding="utf-8"))
    assert len(json.loads(files["widgets/history-trend.json"])) == 2


@pytest.mark.xdist_group("report_render")
def test_render_holds_steps_attachments_and_categories(rendered: dict):
    files = embedded_files((rendered["out"] / "index.html").read_text(encoding="utf-8"))
    cases = [json.loads(v) for k, v in files.items() if k.startswith("data/test-cases/")]
    by_name = {c["name"]: c for c in cases}
    assert set(by_name) == {"test_boots_and_recovers", "test_outage_too_long"}
    passed = by_name["test_boots_and_recovers"]
    assert passed["status"] == "passed"
    steps = passed["testStage"]["steps"]
    assert [s["name"] for s in steps] == ["boot the lab", "verify recovery"]
    assert steps[0]["attachments"][0]["name"] == "probe summary"
    assert any(k.startswith("data/attachments/") for k in files)
    assert by_name["test_outage_too_long"]["status"] == "failed"
    tree = json.loads(files["data/categories.json"])
    groups = {g["name"]: g for g in tree["children"]}
    assert list(groups) == ["Assertion (test defect or regression)"], list(groups)
    env = {e["name"]: e["values"] for e in json.loads(files["widgets/environment.json"])}
    assert "Open vSwitch" in env and "os-ken" in env
    executors = json.loads(files["widgets/executors.json"])
    assert executors[0]["name"] == "twin" and executors[0]["buildOrder"] == 2
