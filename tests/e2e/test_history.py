"""End to end: the history data set, published into the local stack (its own nats-server with
production's users and permissions, every service as a child process), is accepted whole.

The stack runs as `python -m deploy.local.stack` with its own data dir and port; the history
runs as `python -m deploy.local.history` against it, at a small scale. Every wait has a
deadline, and the clean-up stops (then kills) whatever is left.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.history_model import generate
from envol_shared.nats_server import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTED = "Envol local stack is up"


def env_without_envol() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ENVOL_")}


@contextlib.contextmanager
def local_stack(tmp_path: Path) -> Iterator[Path]:
    """A running local stack; its data dir."""
    data_dir = tmp_path / "envol"
    out = tmp_path / "stack.out"
    with out.open("wb") as stdout, (tmp_path / "stack.err").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.stack", "--data-dir", str(data_dir),
             "--nats-port", str(free_port())],
            cwd=ROOT, env=env_without_envol(), stdout=stdout, stderr=stderr, start_new_session=True)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 40
        while STARTED not in out.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the stack did not start:\n{out.read_text(errors='replace')}\n"
                            f"{(tmp_path / 'stack.err').read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        state = json.loads((data_dir / "stack.json").read_text())
        children = [p for p in [state["nats_pid"], *state["services"].values()] if p]
        yield data_dir
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in children:  # a failed test leaves no nats-server nor service behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_the_history_is_published_without_a_single_refusal(tmp_path: Path) -> None:
    report_file = tmp_path / "history.json"
    with local_stack(tmp_path) as data_dir:
        run = subprocess.run(
            [sys.executable, "-m", "deploy.local.history", "--data-dir", str(data_dir), "--scale", "0.25",
             "--timeout", "40", "--report-json", str(report_file)],
            cwd=ROOT, env=env_without_envol(), capture_output=True, text=True, timeout=90)
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(report_file.read_text())
        assert report["rejections"] == [] and report["other_rejections"] == 0
        assert report["unanswered"] == 0 and report["late"] == 0
        assert report["dead_letters"] == 0
        years = [2024, 2025, 2026]
        assert report["cohort_years"] == {"aerospace-valley": years, "astech": years, "pegase": years}
        assert report["types"]["envol.outcomes.comparison.recorded.v1"] > 0
        assert report["types"]["envol.export.contract.signed.v1"] > 0

        # Published again, it is recognised and nothing is sent twice.
        again = subprocess.run(
            [sys.executable, "-m", "deploy.local.history", "--data-dir", str(data_dir), "--scale", "0.25"],
            cwd=ROOT, env=env_without_envol(), capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already has the history" in again.stdout

        # The outcomes service followed it all, and the directors' report shows it: each
        # cohort's applicants (each SME once) as the history made them.
        expected = applicants_per_cohort("pegase", scale=0.25)
        rows = wait_for_report(data_dir, tmp_path / "reports", "pegase", expected)
        assert {row["cohort"][-4:] for row in rows} == {"2024", "2025", "2026"}
        assert sum(int(row["participants"]) for row in rows) > 0
        assert sum(int(row["comparison"]) for row in rows) > 0
        assert sorted(p.name for p in (tmp_path / "reports").glob("*.html")) == [
            "envol-pegase-2024-01-01-en.html", "envol-pegase-2024-01-01-fr.html"]


def applicants_per_cohort(cluster: str, scale: float) -> dict[str, int]:
    """SMEs that applied, per cohort (programme and year of application), in the history."""
    smes: dict[str, set[str]] = {}
    for publication in generate(scale=scale):
        event = publication.event
        if event.type == "envol.application.submitted.v1" and event.cluster == cluster:
            cohort = f"{event.data['programme']}-{event.data['applied_on'][:4]}"
            smes.setdefault(cohort, set()).add(event.subject)
    return {cohort: len(found) for cohort, found in smes.items()}


def wait_for_report(data_dir: Path, out: Path, cluster: str,
                    expected: dict[str, int]) -> list[dict[str, str]]:
    """The report's CSV rows once the outcomes service has every applicant (it publishes
    nothing, so its report is the sign it has caught up)."""
    deadline = time.monotonic() + 60
    while True:
        run = subprocess.run(
            [sys.executable, "-m", "envol_outcomes.report", "--data-dir", str(data_dir),
             "--cluster", cluster, "--from", "2024-01-01", "--out", str(out)],
            cwd=ROOT, env=env_without_envol(), capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        with next(out.glob("*.csv")).open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        applied = {row["cohort"]: int(row["applied"]) for row in rows}
        if applied == expected or time.monotonic() > deadline:
            assert applied == expected
            return rows
        time.sleep(1)
