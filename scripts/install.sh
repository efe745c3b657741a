#!/usr/bin/env bash
# The one set-up step (README, .ci/run, Vagrantfile all call it). Idempotent: a second run only
# checks, so it takes seconds. Must run as root on Debian 12: Mininet and Open vSwitch need it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (Mininet and Open vSwitch need it)" >&2
    exit 2
fi

# Debian packages the lab needs. Debian's mininet package provides /usr/bin/mnexec.
APT_PKGS=(openvswitch-switch mininet iproute2 iputils-ping iperf3 ethtool tcpdump graphviz procps
          python3-venv make
          openssh-client telnet freeradius-utils)
# The Allure command line (make report) needs Java and npm; taken from Debian only when missing, as a
# machine may already have them from elsewhere (Debian's npm brings nodejs 18, enough for Allure).
command -v java >/dev/null 2>&1 || APT_PKGS+=(openjdk-17-jre-headless)
command -v npm >/dev/null 2>&1 || APT_PKGS+=(npm)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install.sh: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python environment, reinstalled only when pyproject.toml changes.
PY=${TWIN_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.twin-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "install.sh: pip install -e '.[test]' into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$stamp"
fi

# --- npm: Allure 2 command line (make report), pinned, installed into the project (.tools/, git-ignored).
# Reinstalled only when missing or of another version; no network on a second run.
ALLURE_VERSION=2.46.1
allure_bin=.tools/allure/node_modules/.bin/allure
allure_pkg=.tools/allure/node_modules/allure-commandline/package.json
have_allure=$(node -p "require('./$allure_pkg').version" 2>/dev/null || true)
if [ ! -x "$allure_bin" ] || [ "$have_allure" != "$ALLURE_VERSION" ]; then
    echo "install.sh: npm install allure-commandline@$ALLURE_VERSION into .tools/allure"
    mkdir -p .tools/allure
    npm install --prefix .tools/allure --no-audit --no-fund --no-update-notifier --loglevel=error \
        "allure-commandline@$ALLURE_VERSION" 2> >(grep -v 'Unknown user config' >&2) >/dev/null
fi
# --- end npm block

# Open vSwitch is installed but not started on machines without systemd.
if ! ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
    echo "install.sh: starting Open vSwitch"
    /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
    ovs-vsctl --timeout=10 show >/dev/null
fi
echo "install.sh: ready"
