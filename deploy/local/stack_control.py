"""The running local stack, from another shell: its status, stopping it, restarting a service.

    python -m deploy.local.stack_control status [--data-dir DIR] [--json]
    python -m deploy.local.stack_control down [--data-dir DIR]
    python -m deploy.local.stack_control restart SERVICE [--data-dir DIR]

All read <data dir>/stack.json, which the stack keeps up to date (its pid, NATS, each service's
pid, health port and restarts). `down` sends SIGTERM to the stack, which stops its services and
nats-server, waits for it, then stops anything it left (a stack.json of a stack that is gone is
cleaned the same way). `restart` sends SIGTERM to the service: it stops cleanly and the stack,
which restarts any service that exits, starts it again after the first back-off step (1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from deploy.local.stack_processes import (
    ROOT,
    SERVICES,
    STATE_FILE,
    pid_alive,
    read_state,
    shown,
    stack_pid,
    stop_leftovers,
    terminate,
)
from envol_shared.topology import NatsServerTooOld, require_server_version

DOWN_TIMEOUT_S = 45.0  # the stack gives its services 30 s to stop


class StartupError(Exception):
    """The stack cannot start (or the demo cannot run); the message says why and what to do."""


async def connect(url: str, inbox_prefix: str = "_INBOX", **login: Any) -> Client:
    """A short-lived connection: fail in seconds, with the caller's message only."""

    async def quiet(_exc: Exception) -> None:
        pass  # nats-py prints a traceback per attempt by default; the caller reports the failure

    return await nats.connect(url, connect_timeout=3, max_reconnect_attempts=2, reconnect_time_wait=0.5,
                              error_cb=quiet, inbox_prefix=inbox_prefix, **login)


def check_version(version: Any, url: str) -> None:
    """Envol needs consumers with several filter subjects: the services' own rule."""
    try:
        require_server_version(version, url)
    except NatsServerTooOld as exc:
        raise StartupError(str(exc)) from None


def readiness(port: int | None, timeout_s: float = 2.0) -> str:
    """"ready", "not ready (…)" or "no answer" from a service's /health/ready."""
    if not port:
        return "unknown"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=timeout_s) as answer:
            return str(json.load(answer).get("status", "ready"))
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            return f"not ready (HTTP {exc.code})"
        failed = [name for name, ok in (body.get("checks") or {}).items() if not ok]
        return f"not ready ({', '.join(failed) or exc.code})"
    except (OSError, ValueError):
        return "no answer"


def status(data_dir: Path) -> dict[str, Any]:
    """What runs: {"running": False, …} when no stack does."""
    state_file = data_dir / STATE_FILE
    state = read_state(state_file)
    pid = stack_pid(state)
    if not pid or not pid_alive(pid):
        return {"running": False, "stale": bool(state), "state_file": str(state_file)}
    ports = state.get("health_ports") or {}
    restarts = state.get("restarts") or {}
    services = {}
    for name, service_pid in (state.get("services") or {}).items():
        up = bool(service_pid) and pid_alive(int(service_pid))
        services[name] = {"pid": service_pid if up else None, "health_port": ports.get(name),
                          "ready": readiness(ports.get(name)) if up else "restarting",
                          "restarts": restarts.get(name, 0)}
    return {"running": True, "stack_pid": pid, "nats_url": state.get("nats_url"),
            "nats_pid": state.get("nats_pid"), "nats_monitor_url": state.get("nats_monitor_url"),
            "started_at": state.get("started_at"), "services": services, "state_file": str(state_file)}


def print_status(found: dict[str, Any], data_dir: Path) -> None:
    if not found["running"]:
        print(f"no local stack is running with data dir {shown(data_dir)}"
              + (" (its stack.json is stale: `python3 envol.py down` cleans it)" if found["stale"] else ""))
        return
    print(f"local stack running: pid {found['stack_pid']}, since {found['started_at']}")
    print(f"  NATS         {found['nats_url']}" + (f"   pid {found['nats_pid']}" if found["nats_pid"] else
                                                   " (external)"))
    for name, service in found["services"].items():
        print(f"  {name:<12} pid {service['pid'] or '-':<8} health port {service['health_port'] or '-':<6} "
              f"{service['ready']:<24} restarts {service['restarts']}")


def down(data_dir: Path) -> int:
    state_file = data_dir / STATE_FILE
    state = read_state(state_file)
    pid = stack_pid(state)
    if not state:
        print(f"no local stack is running with data dir {shown(data_dir)} (no {shown(state_file)})")
        return 0
    if pid and pid_alive(pid):
        print(f"stopping the local stack (pid {pid})", flush=True)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
            state = read_state(state_file) or state  # the latest pids, until the stack removes it
        if pid_alive(pid):
            print(f"the stack (pid {pid}) did not stop within {DOWN_TIMEOUT_S:.0f}s: killing it")
            terminate(pid, 0.0)
        left = stop_leftovers(state, data_dir, why="the stack")
    else:
        left = stop_leftovers(state, data_dir, why=f"a stack that is gone (pid {pid})")
        print(f"no local stack was running (stale {shown(state_file)}"
              + (f"; stopped {', '.join(left)})" if left else ")"))
    if stack_pid(read_state(state_file)) == pid:
        state_file.unlink(missing_ok=True)
    print("stopped")
    return 0


def restart(data_dir: Path, service: str) -> int:
    found = status(data_dir)
    if not found["running"]:
        print_status(found, data_dir)
        return 1
    if service not in found["services"]:
        print(f"no service {service}; the stack runs {', '.join(found['services'])}", file=sys.stderr)
        return 2
    pid = found["services"][service]["pid"]
    if not pid:
        print(f"{service} is already restarting")
        return 0
    os.kill(int(pid), signal.SIGTERM)
    print(f"{service} (pid {pid}) stopping; the stack starts it again (python3 envol.py status)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.stack_control",
                                     description="The running local stack: status, down, restart.")
    parser.add_argument("command", choices=["status", "down", "restart"])
    parser.add_argument("service", nargs="?", choices=[s.name for s in SERVICES],
                        help="restart: the service to restart")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".envol",
                        help="data dir of the local stack (default: .envol)")
    parser.add_argument("--json", action="store_true", help="status: as one JSON object")
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    if args.command == "down":
        return down(data_dir)
    if args.command == "restart":
        if not args.service:
            parser.error("restart needs a SERVICE")
        return restart(data_dir, args.service)
    found = status(data_dir)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print_status(found, data_dir)
    return 0 if found["running"] else 3


if __name__ == "__main__":
    sys.exit(main())
