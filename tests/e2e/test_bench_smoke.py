"""The benchmark keeps working (its figures are not judged here: timing is no test matter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "run"


def test_the_quick_benchmark_runs_and_ends_with_its_machine_readable_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-postgres", "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"events_per_s=\S+ vs_naive=\S+ vs_raw=\S+ p99_ms=\S+", last), last
    assert list(tmp_path.glob("*.json")), "the run's figures are kept as JSON"
