#!/usr/bin/env python3
"""Envol on a laptop, with nothing but Python 3.11+.

    python3 envol.py up [--demo] [--nats-url URL] [--nats-port PORT] [--data-dir DIR]
                                   set up (first run) and start the local stack: nats-server (on
                                   port 14222 or any free one; --nats-url: use that server, 2.10+,
                                   instead) and the services, each with its health port; a service
                                   that dies is restarted. Ctrl-C, SIGTERM or `down` stops it all.
                                   --demo: also publish the demo scenario. --data-dir: where its
                                   databases, JetStream store and stack.json live (default .envol)
    python3 envol.py down [--data-dir DIR]
                                   stop the running local stack (from another shell)
    python3 envol.py status [--data-dir DIR] [--json]
                                   is it running: its pid, NATS, each service's pid, health port,
                                   readiness and restarts
    python3 envol.py restart SERVICE [--data-dir DIR]
                                   stop one service (enrolment, financing, export, outcomes); the
                                   stack starts it again
    python3 envol.py demo [--nats-url URL [--credentials FILE]] [--data-dir DIR] [--timeout S]
                                   publish the demo scenario into the running stack (checks first
                                   that NATS is 2.10+ and that the services answer)
    python3 envol.py history       publish three years of generated cohorts into the running stack
                                   (a fresh one: see the README's "A history data set")
    python3 envol.py report --cluster C --from DAY [--to DAY] [--lang fr|en] [--out DIR]
                                   write a cluster's effectiveness report (HTML, CSV) from the
                                   outcomes service of the running stack
    python3 envol.py ops ...       operations tools (python -m envol_shared.operations --help)
    python3 envol.py test          run the test suite (pytest arguments may follow)
    python3 envol.py lint          ruff on the whole repository
    python3 envol.py mutants       break each reliability promise on purpose (a curated list of
                                   mutations of shared/envol_shared), run the tests that must then
                                   fail, print which were killed and the score (--list, --check,
                                   NAME...: see tests/mutations/mutants.py)
    python3 envol.py bench         run the benchmark (bench/run)
    python3 envol.py docs [--check]  write the partners' event catalogue into docs/catalogue/
                                   (AsyncAPI, JSON Schemas, an offline HTML page); --check only
                                   says what differs from what the code generates, and fails
    python3 envol.py help          this text

The first run creates .venv/ and installs the pinned requirements and the Envol packages
into it; later runs reuse it and reinstall only when a requirements or pyproject file changed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("ENVOL_VENV", ROOT / ".venv"))
PACKAGES = ["shared", "services/enrolment", "services/financing", "services/export", "services/outcomes"]
INPUTS = ["requirements.txt", "requirements-dev.txt", *(f"{p}/pyproject.toml" for p in PACKAGES)]


def python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script itself may run on an older Python
        sys.exit(f"Envol needs Python 3.11 or newer, not {sys.version.split()[0]}")
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in INPUTS)).hexdigest()
    stamp = VENV / ".envol-installed"
    if stamp.exists() and stamp.read_text() == digest and python().exists():
        return
    if not python().exists():
        print(f"envol: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("envol: installing requirements (first run, or they changed)", flush=True)
    pip = [str(python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(ROOT / "requirements-dev.txt")], check=True)
    # --no-deps: the packages' dependencies are exactly the pinned ones installed above.
    editable = [arg for p in PACKAGES for arg in ("-e", str(ROOT / p))]
    subprocess.run([*pip, "--no-deps", *editable], check=True)
    stamp.write_text(digest)


def run(args: list[str], *, forward_sigint: bool = False) -> int:
    """The command in the venv's Python; SIGTERM (and SIGINT with `forward_sigint`) sent to
    this wrapper is passed on to it, and the wrapper waits for it to stop in its own time."""
    process = subprocess.Popen([str(python()), *args], cwd=ROOT)

    def forward(signum: int, _frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signum)

    # A Ctrl-C in the terminal reaches the child itself (same process group); a `kill -INT`
    # aimed at this wrapper only reaches it through `forward`. The local stack takes the first
    # of either and ignores repeats, so it may get both; other commands get the terminal's only.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward if forward_sigint else signal.SIG_IGN)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # (not raised while SIGINT is handled above; kept for safety)
            continue


def main() -> int:
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("help", [])
    if command in {"help", "-h", "--help"}:
        print(__doc__)
        return 0
    ensure_environment()
    if command == "up":
        return run(["-m", "deploy.local.stack", *rest], forward_sigint=True)
    if command in {"down", "status", "restart"}:
        return run(["-m", "deploy.local.stack_control", command, *rest])
    if command == "ops":
        return run(["-m", "envol_shared.operations", *rest])
    if command == "demo":
        return run(["-m", "deploy.local.demo", *rest])
    if command == "test":
        return run(["-m", "pytest", *rest])
    if command == "mutants":
        return run([str(ROOT / "tests" / "mutations" / "mutants.py"), *rest])
    if command == "bench":
        return run([str(ROOT / "bench" / "run"), *rest])
    if command == "docs":
        return run(["-m", "docs.generate", *rest])
    if command == "history":
        return run(["-m", "deploy.local.history", *rest])
    if command == "report":
        return run(["-m", "envol_outcomes.report", *rest])
    if command == "lint":
        return run(["-m", "ruff", "check", ".", *rest])
    print(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
