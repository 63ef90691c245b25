"""A throwaway PostgreSQL server for the tests, when ENVOL_TEST_DATABASE_URL is not set.

The PostgreSQL-only tests (several instances on one database, real outages through a proxy,
instances racing for timers and outbox rows) then run wherever the test command runs, with
nothing to install by hand. The server's binaries come from, in this order:

- the `pgserver` package (pinned in requirements-dev.txt where it has wheels: PostgreSQL
  built into the wheel; only its binaries are used);
- Debian's (or Ubuntu's) server package, `/usr/lib/postgresql/<version>/bin`, where present.

It gets a new data folder, listens on 127.0.0.1 on a free port (TCP only, trust auth, no
durability: it is thrown away), runs as `nobody` when the tests run as root (PostgreSQL
refuses root), and is stopped and deleted at the end of the session.
ENVOL_TEST_THROWAWAY_POSTGRES=0 turns it off (the PostgreSQL tests are then skipped, and the
end of the run says how many).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_WITHIN_S = 60


def find_binaries() -> tuple[Path, str] | None:
    """(folder holding initdb and postgres, where it comes from), or None."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (folder / "postgres").exists():
            return folder, "the pgserver package"
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                    key=lambda path: _version(path.parent.parent.name), reverse=True)
    if debian:
        return debian[0].parent, f"Debian's PostgreSQL {debian[0].parent.parent.name}"
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self, binaries: Path, origin: str) -> None:
        self.binaries = binaries
        self.origin = origin
        self.folder = Path(tempfile.mkdtemp(prefix="envol-postgres-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # PostgreSQL will not run as root: as root, run it as nobody.
        self._as: dict[str, int] = {}
        if os.name == "posix" and os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data, log = self.folder / "data", self.folder / "postgres.log"
        if self._as:
            os.chown(self.folder, self._as["user"], self._as["group"])
            os.chmod(self.folder, 0o700)
        self._run([str(self.binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--no-locale", "--no-sync"])
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                [str(self.binaries / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **self._as)
        deadline = time.monotonic() + START_WITHIN_S
        while not self._accepting():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the throwaway PostgreSQL did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, cwd=self.folder, **self._as)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def _accepting(self) -> bool:
        ready = subprocess.run([str(self.binaries / "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port), "-U", "postgres"], capture_output=True)
        return ready.returncode == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class Provider:
    """Starts the server the first time it is asked for, once; says why when it cannot."""

    def __init__(self) -> None:
        self.server: ThrowawayPostgres | None = None
        self.unavailable: str | None = None
        self.origin: str | None = None  # where the binaries of the server started came from

    def url(self) -> str | None:
        if self.server is not None:
            return self.server.url
        if self.unavailable is not None:
            return None
        if os.environ.get("ENVOL_TEST_THROWAWAY_POSTGRES", "1") == "0":
            self.unavailable = "ENVOL_TEST_THROWAWAY_POSTGRES=0"
            return None
        found = find_binaries()
        if found is None:
            self.unavailable = ("there are no PostgreSQL server binaries to start a throwaway one "
                                "(the pgserver package has no wheel here, and /usr/lib/postgresql/*/bin "
                                "is absent)")
            return None
        server = ThrowawayPostgres(*found)
        try:
            server.start()
        except (OSError, RuntimeError, KeyError) as exc:
            self.unavailable = f"the throwaway PostgreSQL ({found[1]}) did not start: {exc}"
            return None
        self.server, self.origin = server, found[1]
        atexit.register(self.stop)  # should the session end without pytest_sessionfinish
        return server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


throwaway = Provider()
