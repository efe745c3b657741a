#!/usr/bin/env bash
# The test suite as users and CI run it: every test, in parallel workers, results for Allure kept.
# Extra arguments go to pytest (make test WORKERS=2 -> -n 2).
set -euo pipefail
cd "$(dirname "$0")/.."
results=reports/allure-results
rm -rf "$results" && mkdir -p "$results"   # once per run, never per worker
exec .venv/bin/pytest -p no:cacheprovider --alluredir "$results" "$@"
