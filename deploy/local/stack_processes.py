"""The local stack's processes: its own log lines, the services it supervises (restarted with
a back-off when they die) and the stopping of what a stack left behind.

The stack's lines follow ENVOL_LOG_FORMAT as the services' do (shared/envol_shared/logging.py):
`json` one JSON object per line, `console` `[stack] …` lines, `auto` (the default) JSON unless
the stack's output is a terminal. So `python3 envol.py up > stack.log 2>&1` gives a file that
`jq` reads line by line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = "stack.json"

SERVICE_STOP_TIMEOUT_S = 30.0
# A service that dies is started again after 1 s, then 2, 4… at most 30 s; once it has run
# for a minute, its next death starts the count again at 1 s.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0


def json_lines() -> bool:
    chosen = os.environ.get("ENVOL_LOG_FORMAT", "auto")
    return chosen == "json" or (chosen == "auto" and not sys.stdout.isatty())


def say(message: str, event: str = "stack.said", level: str = "info", **fields: Any) -> None:
    """One line of the stack's own: `[stack] message` in a terminal, else a JSON object with
    the event name, the message and the fields."""
    if json_lines():
        line = {"timestamp": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "level": level, "logger": "stack", "event": event, "message": message, **fields}
        print(json.dumps(line, default=str), flush=True)
    else:
        print(f"[stack] {message}", flush=True)


def shown(path: Path) -> str:
    """A path relative to the current directory when inside it: shorter to read."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def command_line(pid: int) -> str:
    """The command line of a process, "" when unknown (Linux /proc, else ps)."""
    proc = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):
        if proc.exists():
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True,
                              text=True, timeout=5).stdout
    return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; it lingers only until its new parent (init) reaps it.
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@dataclass(frozen=True)
class ServiceSpec:
    """One Envol service as the local stack runs it."""

    name: str
    module: str

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]


# Every service of the stack, in start order.
SERVICES: list[ServiceSpec] = [
    ServiceSpec("enrolment", "envol_enrolment.entrypoints.main"),
    ServiceSpec("financing", "envol_financing.entrypoints.main"),
    ServiceSpec("export", "envol_export.entrypoints.main"),
    ServiceSpec("outcomes", "envol_outcomes.entrypoints.main"),
]


def read_state(state_file: Path) -> dict[str, Any]:
    """stack.json, {} when absent or unreadable."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def stack_pid(state: dict[str, Any]) -> int:
    try:
        return int(state["stack_pid"])
    except (KeyError, TypeError, ValueError):
        return 0


def stop_leftovers(state: dict[str, Any], data_dir: Path, *, why: str) -> list[str]:
    """Stop what a stack that is gone left running (its nats-server would hold the JetStream
    store); the names of what was stopped."""
    leftovers: list[tuple[str, int, str]] = []  # (name, pid, text its command line must contain)
    services = state.get("services")
    if isinstance(services, dict):
        modules = {spec.name: spec.module for spec in SERVICES}
        leftovers += [(name, int(pid), modules.get(name, name)) for name, pid in services.items() if pid]
    if state.get("nats_pid"):
        leftovers.append(("nats-server", int(str(state["nats_pid"])), str(data_dir / "nats")))
    stopped = []
    for name, pid, marker in leftovers:  # services first, as in a normal stop
        # The command line must match: the pid may have been reused by another program.
        if not pid_alive(pid) or marker not in command_line(pid):
            continue
        say(f"{why} left {name} (pid {pid}) running: stopping it", "stack.leftover_stopped",
            level="warning", process=name, pid=pid)
        terminate(pid)
        stopped.append(name)
    return stopped


def terminate(pid: int, timeout_s: float = SERVICE_STOP_TIMEOUT_S) -> None:
    """SIGTERM, and SIGKILL when still there after `timeout_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Supervised:
    """A service the stack keeps running: started again, after a back-off, whenever it dies."""

    spec: ServiceSpec
    env: dict[str, str]
    health_port: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failures: int = 0  # deaths in a row, each within STABLE_AFTER_S of its start
    started_at: float = 0.0
    restart_at: float | None = None
    stopping: bool = field(default=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(self) -> None:
        # Own session: a Ctrl-C in the terminal reaches the stack only, which then stops the
        # services once each, in order (a second signal would interrupt their stop).
        self.process = subprocess.Popen(self.spec.command(), cwd=ROOT, env=self.env, start_new_session=True)
        self.started_at = time.monotonic()
        self.restart_at = None

    def supervise(self, now: float) -> bool:
        """Notice a death, restart when its back-off is over; True when the pid changed."""
        if self.stopping or self.process is None:
            return False
        if self.restart_at is not None:
            if now < self.restart_at:
                return False
            self.start()
            self.restarts += 1
            say(f"{self.name} restarted (pid {self.process.pid}, restart {self.restarts})",
                "service.restarted", service=self.name, pid=self.process.pid, restarts=self.restarts)
            return True
        code = self.process.poll()
        if code is None:
            return False
        if now - self.started_at >= STABLE_AFTER_S:
            self.failures = 0
        delay = min(BACKOFF_FIRST_S * 2 ** self.failures, BACKOFF_MAX_S)
        self.failures += 1
        self.restart_at = now + delay
        say(f"{self.name} (pid {self.process.pid}) exited with code {code}: restarting it in {delay:g}s",
            "service.exited", level="warning", service=self.name, pid=self.process.pid, exit_code=code,
            restart_in_s=delay)
        return True

    def signal_stop(self) -> bool:
        """SIGTERM (each finishes the batch in hand and flushes its outbox); False when not running."""
        self.stopping = True
        if self.process is None or self.process.poll() is not None:
            return False
        say(f"stopping {self.name} (pid {self.process.pid})", "service.stopping", service=self.name,
            pid=self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        return True

    def wait_stopped(self, deadline: float) -> bool:
        """True when it stopped cleanly before `deadline`; killed otherwise."""
        assert self.process is not None
        try:
            code = self.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {SERVICE_STOP_TIMEOUT_S:.0f}s: killed", "service.killed",
                level="error", service=self.name)
            self.process.kill()
            self.process.wait()
            return False
        if code != 0:
            say(f"{self.name} exited with code {code} while stopping", "service.stop_failed",
                level="error", service=self.name, exit_code=code)
            return False
        return True


def print_banner(*, nats_url: str, nats_pid: int | None, monitor_url: str | None, data_dir: Path,
                 services: dict[str, Supervised], external: bool) -> None:
    """What runs where, once the services consume: a table in a terminal, else one JSON line."""
    state_file = data_dir / STATE_FILE
    if json_lines():
        say("Envol local stack is up", "stack.up", nats_url=nats_url, nats_pid=nats_pid,
            nats_monitor_url=monitor_url, state_file=str(state_file),
            services={name: {"pid": s.pid, "health_url": f"http://127.0.0.1:{s.health_port}/health/ready"}
                      for name, s in services.items()})
        return
    width = max(len("nats-server"), *(len(s.name) for s in SERVICES)) + 2
    lines = ["", "Envol local stack is up", ""]
    if not external:
        lines.append(f"  {'nats-server':<{width}}{nats_url}   pid {nats_pid}   "
                     f"JetStream store {shown(data_dir / 'nats')}   "
                     f"log {shown(data_dir / 'nats.log')}   monitoring {monitor_url}")
        lines.append(f"  {'NATS users':<{width}}deploy/nats/auth.conf, passwords in "
                     f"{shown(data_dir / 'nats-credentials.json')} (user <cluster>-<partner>, "
                     "reply prefix _INBOX_<user>)")
    else:
        lines.append(f"  {'NATS':<{width}}{nats_url} (external, not managed by the stack)")
    for spec in SERVICES:
        service = services[spec.name]
        lines.append(f"  {spec.name:<{width}}pid {service.pid}   "
                     f"health http://127.0.0.1:{service.health_port}/health/ready   "
                     f"database {shown(data_dir / (spec.name + '.sqlite'))}")
    lines += [
        f"  {'state':<{width}}{shown(state_file)}",
        "",
        "  demo:  python3 envol.py demo    status:  python3 envol.py status    "
        "stop:  Ctrl-C or python3 envol.py down",
        "",
    ]
    print("\n".join(lines), flush=True)
