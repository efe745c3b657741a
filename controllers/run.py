"""Run a lab's controller: os-ken in-process plus the northbound API.

    python -m controllers.run --of-port PORT --api-socket PATH --config CONFIG.json --log LOGFILE

os-ken 4 ships no `osken-manager`, so the apps are loaded here the way LAB-NOTES describes.
Design points, each because of how the harness uses the process:
* OpenFlow listens on 127.0.0.1 only and the API is a Unix socket (root-namespace safety rule).
* Everything is logged to LOGFILE with millisecond timestamps; uncaught exceptions anywhere end up
  there as `Traceback` lines, which the harness treats as a test failure.
* os-ken's native hub threads are not daemons and cannot be killed, so SIGTERM/SIGINT flush the
  log, remove the API socket and leave with os._exit(0): a controller always stops promptly.
* Exit codes: 0 stopped by signal, 1 OpenFlow listener died, 2 bad config/arguments,
  3 OpenFlow port in use, 4 API socket could not be bound.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG = logging.getLogger("controllers.run")
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s [%(threadName)s]: %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"
BASE_APP = "controllers.twin_base"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m controllers.run", description=__doc__.splitlines()[0])
    parser.add_argument("--of-port", type=int, required=True, help="OpenFlow TCP port on 127.0.0.1")
    parser.add_argument("--api-socket", type=Path, required=True, help="Unix socket path of the JSON API")
    parser.add_argument("--config", type=Path, help="lab config JSON (lab, prefix, switches, apps)")
    parser.add_argument("--log", type=Path, help="log file (default: stderr)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    args = parser.parse_args(argv)
    if not 0 < args.of_port < 65536:
        parser.error(f"--of-port {args.of_port} out of range 1..65535")
    return args


def setup_logging(log: Path | None, level: str) -> None:
    """Root logging to the log file; exceptions escaping any thread are logged with tracebacks."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        logging.getLogger("controllers.run").critical("uncaught exception", exc_info=(exc_type, exc, tb))

    def thread_excepthook(hook_args: threading.ExceptHookArgs) -> None:
        if hook_args.exc_type is SystemExit:
            return
        name = hook_args.thread.name if hook_args.thread else "?"
        logging.getLogger("controllers.run").error(
            "uncaught exception in thread %s", name,
            exc_info=(hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback))

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def app_load_order(apps: list[str], declares_twin_context: Callable[[str], bool] | None = None) -> list[str]:
    """Apps in the order app_manager must load them, the base app always included.

    app_manager instantiates apps in load order, and a module that an app declares in _CONTEXTS
    must not also be loaded as an app (it would be created twice and fail). So: if some app uses
    `_CONTEXTS = {...: TwinBase}`, the base app goes last (app_manager then skips it as an app and
    creates it once, as a context, before any app); otherwise it goes first, so that apps can call
    `lookup_service_brick("TwinBase")` even in their __init__.
    """
    check = declares_twin_context or _declares_twin_context
    others = [app for app in dict.fromkeys(apps) if app != BASE_APP]
    if any(check(app) for app in others):
        return [*others, BASE_APP]
    return [BASE_APP, *others]


def _declares_twin_context(module_name: str) -> bool:
    from os_ken.base import app_manager
    from controllers.twin_base import TwinBase

    module = importlib.import_module(module_name)
    for obj in vars(module).values():
        if (isinstance(obj, type) and issubclass(obj, app_manager.OSKenApp) and obj.__module__ == module.__name__
                and TwinBase in getattr(obj, "_CONTEXTS", {}).values()):
            return True
    return False


def check_port_free(port: int) -> None:
    """Fail early with a clear message instead of a traceback from os-ken's listener thread."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    finally:
        probe.close()


def _exit(code: int, northbound: Any = None) -> None:
    if northbound is not None:
        northbound.close()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log, args.log_level)
    # Installed first, so a stop request during start-up still ends in a clean exit below.
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    LOG.info("controller starting: pid %d, OpenFlow 127.0.0.1:%d, API %s, config %s", os.getpid(),
             args.of_port, args.api_socket, args.config)

    # The hub type is read when os_ken.lib.hub is imported: only the native hub works on 3.11.
    os.environ["OSKEN_HUB_TYPE"] = "native"
    from os_ken.base import app_manager  # must come before os_ken.controller (circular import)
    from os_ken.controller import controller  # noqa: F401 - registers the --ofp-* options
    from os_ken import cfg

    from controllers import twin_base
    from controllers.northbound import Northbound

    try:
        raw = load_config(args.config)
        config = twin_base.TwinConfig.from_dict(raw)
    except (OSError, ValueError) as exc:
        LOG.error("bad controller config: %s", exc)
        _exit(2)
        return 2

    try:
        check_port_free(args.of_port)
    except OSError as exc:
        reason = "already in use" if exc.errno == errno.EADDRINUSE else str(exc)
        LOG.error("OpenFlow port 127.0.0.1:%d cannot be used: %s", args.of_port, reason)
        _exit(3)
        return 3

    cfg.CONF(args=["--ofp-tcp-listen-port", str(args.of_port), "--ofp-listen-host", "127.0.0.1"],
             project="os_ken", default_config_files=[])
    twin_base.set_config(config)

    try:
        apps = app_load_order(config.apps)
    except ImportError as exc:
        LOG.error("cannot import a controller app from config.apps %s: %s", config.apps, exc)
        _exit(2)
        return 2
    LOG.info("loading apps: %s", ", ".join(apps))
    manager = app_manager.AppManager.get_instance()
    manager.load_apps(apps)
    contexts = manager.create_contexts()
    threads = manager.instantiate_apps(**contexts)
    twin = twin_base.get_twin_base()
    if twin is None:
        LOG.error("TwinBase did not start (apps: %s)", apps)
        _exit(2)
        return 2

    northbound = Northbound(twin, args.api_socket)
    try:
        northbound.start()
    except (OSError, RuntimeError) as exc:
        LOG.error("cannot serve the API on %s: %s", args.api_socket, exc)
        _exit(4)
        return 4

    LOG.info("controller ready: lab %s", config.lab)
    while not stop.wait(0.5):
        dead = [t for t in threads if not t.is_alive()]
        if dead:
            LOG.error("OpenFlow listener thread stopped (%s); exiting", ", ".join(t.name for t in dead))
            _exit(1, northbound)
    LOG.info("stopping on signal %s", signal.Signals(received[0]).name if received else "?")
    _exit(0, northbound)
    return 0


if __name__ == "__main__":
    sys.exit(main())
