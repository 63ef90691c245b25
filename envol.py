#!/usr/bin/env python3
"""Envol on a laptop, with nothing but Python 3.11+.

    python3 envol.py up [--demo]   set up (first run) and start the local stack; Ctrl-C stops it
    python3 envol.py demo          publish the demo scenario into the running stack
    python3 envol.py test          run the test suite (pytest arguments may follow)
    python3 envol.py mutants       break each reliability promise on purpose (a curated list of
                                   mutations of shared/envol_shared), run the tests that must then
                                   fail, print which were killed and the score (--list, --check,
                                   NAME...: see tests/mutations/mutants.py)
    python3 envol.py history       publish three years of generated cohorts into the running stack
                                   (a fresh one: see the README's "A history data set")
    python3 envol.py report --cluster C --from DAY [--to DAY] [--lang fr|en] [--out DIR]
                                   write a cluster's effectiveness report (HTML, CSV) from the
                                   outcomes service of the running stack
    python3 envol.py bench         run the benchmark (bench/run)
    python3 envol.py docs [--check]  write the partners' event catalogue into docs/catalogue/
                                   (AsyncAPI, JSON Schemas, an offline HTML page); --check only
                                   says what differs from what the code generates, and fails

The first run creates .venv/ and installs the pinned requirements and the Envol packages
into it; later runs reuse it and reinstall only when a requirements or pyproject file changed.
"""

from __future__ import annotations

import hashlib
import os
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


def run(args: list[str]) -> int:
    # The child gets the terminal's Ctrl-C itself and stops in its own time (the local stack
    # needs a second or two); subprocess.call would SIGKILL it 0.25 s after a KeyboardInterrupt.
    process = subprocess.Popen([str(python()), *args], cwd=ROOT)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue


def main() -> int:
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("help", [])
    if command in {"help", "-h", "--help"}:
        print(__doc__)
        return 0
    ensure_environment()
    if command == "up":
        return run(["-m", "deploy.local.stack", *rest])
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
        return run(["-m", "ruff", "check", "."])
    print(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
