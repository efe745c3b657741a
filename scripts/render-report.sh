#!/usr/bin/env bash
# Renders the Allure results into ONE offline HTML file (make report):
#   reports/allure-results/  ->  reports/html/index.html     (history kept in reports/history/)
# Overrides (tests use them): RESULTS, OUT (folder of index.html), HISTORY, REPORT_NAME, ALLURE, PY.
# Steps: environment/categories/executor + kept history into the results (twin.report.prepare),
# `allure generate --single-file` with analytics off, a scan that the page loads nothing remote
# (twin.report.offline), the new history saved back, then the page moved into place.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=$(realpath -m "${RESULTS:-$root/reports/allure-results}")
OUT=$(realpath -m "${OUT:-$root/reports/html}")
HISTORY=$(realpath -m "${HISTORY:-$root/reports/history}")
REPORT_NAME=${REPORT_NAME:-twin test report}
ALLURE=${ALLURE:-$root/.tools/allure/node_modules/.bin/allure}
PY=${PY:-$root/.venv/bin/python}

fail() { echo "render-report: $*" >&2; exit 1; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

[ -x "$PY" ] || fail "no Python environment at $PY: run 'bash scripts/install.sh' (or 'make install')"
[ -x "$ALLURE" ] || fail "no Allure command line at $ALLURE: run 'bash scripts/install.sh' (or 'make install')"
command -v java >/dev/null 2>&1 || fail "no java on PATH (Allure 2 needs it): run 'bash scripts/install.sh'"
[ -d "$RESULTS" ] || fail "no results folder $RESULTS: run the tests first ('make test')"

t0=$(ms)
cd "$root"
"$PY" -m twin.report.prepare --results "$RESULTS" --history "$HISTORY" --allure "$ALLURE" \
    --report-name "$REPORT_NAME" || exit $?

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twin-report.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Allure 2 embeds Google Analytics unless ALLURE_NO_ANALYTICS parses as a Java boolean true: "1" only
# stops the generator's own ping, the page keeps its gtag.js; "true" removes both.
export ALLURE_NO_ANALYTICS=true
t1=$(ms)
if ! "$ALLURE" generate --single-file --clean --name "$REPORT_NAME" -o "$tmp/single" "$RESULTS" \
        >"$tmp/allure.log" 2>&1 || [ ! -s "$tmp/single/index.html" ]; then
    cat "$tmp/allure.log" >&2
    fail "allure generate failed on $RESULTS (log above)"
fi
t2=$(ms)

# Offline: strip anything remote that slipped in, and refuse to publish a page that still has some.
"$PY" -m twin.report.offline --strip "$tmp/single/index.html" \
    || fail "the report would make network requests when opened (listed above); not published"

# History: a single-file report has no history/ folder but embeds its history files; harvest them.
# Should a later Allure stop embedding them, render a normal report just to take its history/.
if ! "$PY" -m twin.report.history harvest "$tmp/single/index.html" "$HISTORY" 2>"$tmp/harvest.log"; then
    cat "$tmp/harvest.log" >&2
    echo "render-report: no history embedded in the single file; taking it from a normal report" >&2
    "$ALLURE" generate --clean -o "$tmp/full" "$RESULTS" >>"$tmp/allure.log" 2>&1 \
        || { cat "$tmp/allure.log" >&2; fail "allure generate (for history) failed"; }
    "$PY" -m twin.report.history save-dir "$tmp/full/history" "$HISTORY" \
        || fail "Allure wrote no history; trends will not show"
fi
t3=$(ms)

# Publish: OUT holds the single file only (remove what an older, multi-file report left there).
mkdir -p "$OUT"
rm -rf "$OUT"/{index.html,data,widgets,history,export,plugin,plugins,assets,app.js,styles.css,favicon.ico}
mv "$tmp/single/index.html" "$OUT/index.html"
size=$(du -h "$OUT/index.html" | cut -f1)
echo "render-report: prepare $((t1 - t0)) ms, allure generate $((t2 - t1)) ms," \
     "offline check + history $((t3 - t2)) ms, total $(( $(ms) - t0 )) ms"
echo "render-report: report written to $OUT/index.html ($size, single file, offline)"
