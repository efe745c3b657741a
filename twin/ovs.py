"""Open vSwitch must be running before a lab can have switches. Debian's package does not start it
here (no systemd), and after a reboot a plain `pytest` would otherwise fail on every lab with a
database-connection error, so the lab engine starts it itself, once, under the registry lock."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from twin.errors import LabError
from twin.registry import locked

OVS_CTL = Path("/usr/share/openvswitch/scripts/ovs-ctl")


def ovs_running() -> bool:
    if shutil.which("ovs-vsctl") is None:
        return False
    probe = subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True, timeout=15)
    return probe.returncode == 0


def ensure_ovs() -> None:
    """Start ovsdb-server and ovs-vswitchd if they are not running; say how to fix it if that fails."""
    if ovs_running():
        return
    if shutil.which("ovs-vsctl") is None or not OVS_CTL.exists():
        raise LabError("Open vSwitch is not installed: run `bash scripts/install.sh` (as root)")
    if os.geteuid() != 0:
        raise LabError("Open vSwitch is not running and only root can start it: run as root")
    with locked():
        if ovs_running():  # another worker started it while we waited for the lock
            return
        start = subprocess.run([str(OVS_CTL), "start", "--system-id=random"], capture_output=True,
                               text=True, timeout=120)
    if not ovs_running():
        raise LabError(f"Open vSwitch did not start ({OVS_CTL} start exited {start.returncode}): "
                       f"{(start.stdout + start.stderr).strip()[-400:]}")
