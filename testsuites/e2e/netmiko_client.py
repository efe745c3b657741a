"""Run a Netmiko script inside a lab node, as an engineer's laptop or a user on a LAN would: the
real client library over real SSH/telnet, never from the root namespace."""
from __future__ import annotations

import json
import sys
import textwrap
from typing import Any


def netmiko(lab: Any, script: str, node: str = "mgmt", timeout: float = 90) -> Any:
    """Run `script` with the test's Python in `node`; its last stdout line is JSON, returned parsed."""
    res = lab.nodes.run(node, [sys.executable, "-c", textwrap.dedent(script)], timeout=timeout)
    assert res.returncode == 0, f"netmiko script in {node} failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout.strip().splitlines()[-1])
