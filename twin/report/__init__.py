"""Allure report rendering (scripts/render-report.sh, `make report`).

Each module has one job, so the shell script stays a readable sequence of steps and every step is
unit-testable without Java: `results` (the folder's results, message-less
failures repaired), `environment` (versions the results were produced with), `categories`
(how failures are grouped), `executor` (who ran it), `history` (trends between runs), `embedded` (the
data a single-file report carries), `offline` (the page makes no network request), and `prepare` (the
command the script runs before `allure generate`).
"""
