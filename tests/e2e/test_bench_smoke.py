"""The benchmark keeps working (its figures are not judged here: timing is no test matter)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "run"
FIGURES = r"events_per_s=(\S+) vs_naive=(\S+) vs_raw=(\S+) p99_ms=(\S+)"
EXPORT_FACTS = {"relay.lead.reported", "desk.prospects.delivered", "cci.workshop.attended",
                "export.contract.signed"}


def test_the_quick_benchmark_measures_every_service_and_ends_with_their_machine_readable_lines(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-postgres", "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    *_, export_line, financing_line, last = result.stdout.strip().splitlines()
    assert re.fullmatch(FIGURES, last), last  # enrolment's, last as it always was
    for name, line in (("financing", financing_line), ("export", export_line)):
        figures = re.fullmatch(f"{name} " + FIGURES, line)
        assert figures, line
        assert all(float(figure) > 0 for figure in figures.groups()), line  # no nan

    documents = list(tmp_path.glob("*.json"))
    assert documents, "the run's figures are kept as JSON"
    results = json.loads(documents[0].read_text())["results"]
    for service in ("financing", "export"):
        for phase in (f"a-{service}", f"b-{service}-sqlite", f"c-{service}-sqlite"):
            assert results[phase]["events_per_s"] > 0, results[phase]
        latency = results[f"latency-{service}-sqlite"]
        assert latency["missing_after_30s"] == 0, latency
        assert 0 < latency["end_to_end"]["p99_ms"] < math.inf
        headline = results[f"{service}_headline"]
        assert headline["database"] == "sqlite"
        assert all(headline[figure] > 0 for figure in ("events_per_s", "vs_naive", "vs_raw", "p99_ms"))

    by_event = results["latency-financing-sqlite"]["end_to_end_by_event"]
    assert set(by_event) == {"application.enrolled", "club.introduction.made"}
    assert all(figures["samples"] > 0 for figures in by_event.values())
    # Export: enrolments, and the facts of assigned (partners') and waiting (staff's) supports.
    by_event = results["latency-export-sqlite"]["end_to_end_by_event"]
    assert {"application.enrolled", "export.contract.signed"} <= set(by_event) <= {"application.enrolled",
                                                                                   *EXPORT_FACTS}
    assert set(by_event) & (EXPORT_FACTS - {"export.contract.signed"}), by_event
    assert all(figures["samples"] > 0 for figures in by_event.values())
