"""End to end: the one-command local stack and its demo, run as a developer runs them.

Each test starts `python -m deploy.local.stack` as a child process with its own data dir and
port, reads what it prints (JSON lines: its output is a file, not a terminal), and stops it
with SIGINT like Ctrl-C. Every wait has a deadline
and the clean-up kills whatever is left, so a broken stack fails the test instead of hanging.
The stack's NATS runs production's users and permissions: the demo and these tests connect
as the users whose passwords the stack keeps in its data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from support import SIRENS, dead_letters, enrolment_outcome

from envol_shared.events import make_event
from envol_shared.nats_server import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTED = "Envol local stack is up"
DEMO_DONE = '"event": "demo.finished"'


@dataclass
class StackProcess:
    process: subprocess.Popen[bytes]
    data_dir: Path
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def logs(self) -> str:
        return self.stderr.read_text(errors="replace")

    def wait_for(self, text: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            if self.process.poll() is not None:
                pytest.fail(f"the stack exited ({self.process.returncode}) before printing {text!r}:\n"
                            f"{self.output()}\n{self.logs()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not printed within {timeout_s}s:\n{self.output()}\n"
                            f"{self.logs()[-4000:]}")
            time.sleep(0.1)

    def state(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "stack.json").read_text())

    def child_pids(self) -> list[int]:
        state = self.state()
        return [p for p in [state["nats_pid"], *state["services"].values()] if p]

    def interrupt(self, timeout_s: float = 30) -> int:
        """Ctrl-C, and the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout_s)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited process not yet reaped by init (a zombie) is gone for our purpose.
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def credentials(stack: StackProcess) -> dict[str, str]:
    """The local users' passwords, kept by the stack in its data dir for its owner only."""
    path = Path(stack.state()["nats_credentials"])
    assert path == stack.data_dir / "nats-credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return json.loads(path.read_text())


@contextlib.asynccontextmanager
async def connected_as(url: str, user: str, passwords: dict[str, str],
                       errors: list[str] | None = None) -> AsyncIterator[Client]:
    async def on_error(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc).lower())  # (nats-py reports violations in lower case)

    client = await nats.connect(url, user=user, password=passwords[user], inbox_prefix=f"_INBOX_{user}",
                                error_cb=on_error, max_reconnect_attempts=0)
    try:
        yield client
    finally:
        await client.close()


async def published(client: Client, subject: str, payload: bytes) -> bool:
    try:
        await client.jetstream().publish(subject, payload, timeout=1.5)
        return True
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError):
        return False


async def what_the_local_nats_refuses(url: str, passwords: dict[str, str]) -> dict[str, Any]:
    """What a partner meets when it oversteps on the local stack, as in production."""
    found: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        anonymous = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
        found["anonymous"] = "connected"
        await anonymous.close()
    # A bank on another bank's subject; Pégase's staff forging the enrolment that opens a case.
    other_bank = "envol.aerospace-valley.credit-pyrenees.loan.decided"
    app_id = f"forged-{uuid.uuid4().hex[:8]}"
    forged_subject, forged = make_event(
        enrolment_outcome("enrolled", app_id, SIRENS[1], programme="PG-GROWTH-CONTRACT", cluster="pegase"),
        cluster="pegase", producer="enrolment", company=SIRENS[1])
    attempts = [("aerospace-valley-banque-garonne", other_bank), ("pegase-staff", forged_subject)]
    for user, subject in attempts:
        errors: list[str] = []
        async with connected_as(url, user, passwords, errors) as client:
            accepted = await published(client, subject, forged.to_bytes())
            await client.flush()
        found[user] = (accepted, [e for e in errors if "permissions violation" in e and subject in e])
    async with connected_as(url, "provisioner", passwords) as admin:
        found["dead_letters"] = len(await dead_letters(admin))
        js = admin.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            found["stored"] = (await js.get_last_msg("ENVOL_EVENTS", other_bank)).data
        last_enrolled = await js.get_last_msg("ENVOL_EVENTS", forged_subject)
        found["forged_stored"] = app_id.encode() in last_enrolled.data
    async with connected_as(url, "pegase-staff", passwords) as staff:
        request = json.dumps({"case_id": app_id}).encode()
        reply = await staff.request("envol-query.pegase.financing.case", request, timeout=5)
        found["case"] = json.loads(reply.data)
    return found


def env_without_envol() -> dict[str, str]:
    # The developer's own ENVOL_* settings (a NATS URL, a database) must not leak in.
    return {k: v for k, v in os.environ.items() if not k.startswith("ENVOL_")}


@contextlib.contextmanager
def local_stack(tmp_path: Path, *args: str, name: str = "stack") -> Iterator[StackProcess]:
    data_dir = tmp_path / "envol"
    stdout, stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.stack", "--data-dir", str(data_dir), *args],
            cwd=ROOT, env=env_without_envol(), stdout=out, stderr=err, start_new_session=True,
        )
    stack = StackProcess(process, data_dir, stdout, stderr)
    children: list[int] = []
    try:
        yield stack
    finally:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
            children = stack.child_pids()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in children:  # a failed test must not leave a nats-server or service behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_stack_runs_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
    with local_stack(tmp_path, "--demo", "--nats-port", str(free_port())) as stack:
        stack.wait_for(DEMO_DONE, timeout_s=45)
        report = json.loads((stack.data_dir / "demo-report.json").read_text())
        state = stack.state()
        children = stack.child_pids()

        assert report["complete"], report["unanswered"]
        apps = report["applications"]
        # Five growth contracts accepted for four places: the fifth waits, then takes the place
        # freed by the withdrawal.
        assert apps["durance-growth"]["path"] == ["applied", "eligible", "waitlisted", "enrolled"]
        waitlisted, promoted = apps["durance-growth"]["transitions"][2:]
        assert any("is full" in reason for reason in waitlisted["reasons"])
        assert promoted["by"] == "enrolment"
        assert apps["var-growth"]["id"] in promoted["reasons"][0]
        assert apps["var-growth"]["path"][-1] == "withdrawn"
        assert apps["marignane-growth"]["path"][-1] == "active"
        assert apps["calanques-growth"]["path"][-1] == "enrolled"

        def ineligible_because(key: str) -> str:
            assert apps[key]["path"] == ["applied", "ineligible"]
            return " ".join(apps[key]["transitions"][-1]["reasons"])

        assert "publicly funded collaborative project" in ineligible_because("lauragais-rd")
        assert "does not serve US" in ineligible_because("bigorre-vie")
        assert "not an SME" in ineligible_because("adour-club")
        # Pégase applying for a company it never registered (ASTech did): refused.
        assert apps["argenteuil-desks"]["path"] == []
        assert report["companies"]["adour"]["sme_category"] == "not_sme"
        assert report["companies"]["saclay"]["sme_category"] == "small"

        rejections = {r["event"]: r for r in report["rejections"]}
        malformed = rejections["registration of Vélizy Systèmes Embarqués (spreadsheet export)"]
        assert malformed["dead_lettered"] and "violates its schema" in malformed["reason"]
        wrong_version = rejections["PG-EXPORT-DESKS application of Calanques Robotique (v2)"]
        assert wrong_version["dead_lettered"] and "unknown event type" in wrong_version["reason"]
        mistake = rejections["review (accept) of AV-VIE-RELAY for Bigorre Drones Systèmes"]
        stranger = rejections["PG-EXPORT-DESKS application of Câblage Aéronautique Francilien"]
        assert not stranger["dead_lettered"] and "unknown company 448628073 in pegase" in stranger["reason"]
        assert not mistake["dead_lettered"] and "cannot go from ineligible" in mistake["reason"]
        assert report["dead_letters_this_run"] == 2

        # Financing: enrolment opened the cases, partners and staff took them on.
        financing = report["financing"]
        loan = financing["garonne-rd"]
        assert loan["case_id"] == apps["garonne-rd"]["id"]
        assert (loan["kind"], loan["partner"], loan["stage"]) == ("rd_loan", "banque-garonne", "disbursed")
        assert 0 < loan["awarded_cents"] <= loan["requested_cents"]
        assert loan["disbursed_cents"] == loan["awarded_cents"] and loan["remaining_cents"] == 0
        tranches = [h["summary"] for h in loan["history"] if h["fact"] == "loan.tranche.disbursed"]
        assert [t.split(" of ")[0] for t in tranches] == ["tranche 1", "tranche 2"]
        # Tranche 2 tried before the progress report gating it was complete: refused, with why.
        (early,) = loan["refused"]
        assert early["by"] == "banque-garonne" and early["type"] == "envol.loan.tranche.disbursed.v1"
        assert "tranche 2" in early["reason"] and "waits for requirement progress-report-1" in early["reason"]
        assert early["event"] in {r["event"] for r in report["rejections"] if not r["dead_lettered"]}
        # The annual accounts, due six weeks before today: reminded as overdue, then escalated.
        assert [(f["reason"], f["requirement_id"]) for f in loan["reminders"]] == [
            ("requirement_overdue", "annual-accounts-2025")]
        (escalation,) = loan["escalations"]
        assert escalation["reason"] == "requirement_overdue"
        assert escalation["requirement_id"] == "annual-accounts-2025"
        assert loan["reminders"][0]["seq"] < escalation["seq"]

        assert apps["lauragais-club"]["path"] == ["applied", "eligible", "enrolled"]
        club = financing["lauragais-club"]
        assert (club["kind"], club["partner"], club["stage"]) == (
            "investors_club", "av-investors-club", "round_closed")
        assert club["awarded_cents"] == club["disbursed_cents"] == 120_000_000
        assert [h["fact"] for h in club["history"]][-1] == "club.round.closed"
        assert "round of 1,200,000.00 € closed" in club["history"][-1]["summary"]
        assert not club["refused"]
        assert financing["marignane-growth"]["stage"] == "signed"
        # The withdrawn growth contract's case closed with it; the promoted one's opened.
        assert financing["var-growth"]["closed"] and financing["durance-growth"]["stage"] == "opened"

        # Export: enrolment opened the supports (support id = application id) and placed them.
        export = report["export"]
        # Three SMEs for the two places of the China relay mission: the third waits, then gets
        # the place freed when the first withdraws, and the China relay now reports for it.
        china_keys = ("quercy-vie", "landes-vie", "tarn-vie")
        china = [export[key] for key in china_keys]
        assert [s["support_id"] for s in china] == [apps[key]["id"] for key in china_keys]
        assert all(s["units"] == ["av-vie-cn-2026"] for s in china)
        left, stayed, waited = china
        assert apps["quercy-vie"]["path"][-1] == "withdrawn"
        assert left["path"] == ["opened", "assigned", "closed"] and left["closed"] and not left["unit_id"]
        assert stayed["path"] == ["opened", "assigned"] and not stayed["waited_for_place"]
        assert waited["path"] == ["opened", "waiting", "assigned"] and waited["waited_for_place"]
        assert (waited["unit_id"], waited["partner"], waited["status"]) == (
            "av-vie-cn-2026", "vie-relay-cn", "assigned")
        on_list, given = (h for h in waited["history"]
                          if h["fact"] in ("support.waitlisted", "support.assigned"))
        assert "av-vie-cn-2026 (CN) is full (2 places)" in on_list["summary"]
        assert given["by"] == "export" and f"by support {left['support_id']} (withdrawn)" in given["summary"]
        assert left["history"][-1]["seq"] < given["seq"]
        assert waited["waited_s"] is not None and waited["waited_s"] >= 0
        last = waited["history"][-1]
        assert (last["fact"], last["by"]) == ("relay.lead.reported", "vie-relay-cn")
        # Germany: a lead, a meeting and a contract signed in Germany, reported by the Germany relay.
        germany = export["aquitaine-vie"]
        assert (germany["target_country"], germany["unit_id"], germany["partner"]) == (
            "DE", "av-vie-de-2026", "vie-relay-de")
        assert (germany["leads"], germany["meetings"]) == (1, 1)
        (contract,) = germany["contracts"]
        assert (contract["country"], contract["buyer"], contract["amount_cents"], contract["by"]) == (
            "DE", "MTU Aero Engines", 45_000_000, "vie-relay-de")
        assert germany["contracted_cents"] == 45_000_000
        (signed,) = [h["summary"] for h in germany["history"] if h["fact"] == "export.contract.signed"]
        assert "signed in DE with MTU Aero Engines for 450,000.00 €" in signed
        # The China relay reporting for the German-bound SME: refused, with the reason.
        (wrong_relay,) = germany["refused"]
        assert wrong_relay["by"] == "vie-relay-cn" and wrong_relay["type"] == "envol.relay.lead.reported.v1"
        assert "is served by vie-relay-de (av-vie-de-2026), not by vie-relay-cn" in wrong_relay["reason"]
        assert wrong_relay["event"] in {r["event"] for r in report["rejections"] if not r["dead_lettered"]}
        assert all(not s["refused"] for key, s in export.items() if key != "aquitaine-vie")
        desk = export["azur-desks"]
        assert (desk["unit_id"], desk["partner"]) == ("pg-desk-in", "pg-comptoir-in")
        assert [h["fact"] for h in desk["history"]][-2:] == [
            "desk.prospects.delivered", "desk.meeting.arranged"]
        cci = export["velizy-cci"]
        assert (cci["unit_id"], cci["status"]) == ("as-cci-2026", "assigned")

        # The local NATS is production's: every user with its password, permissions enforced.
        passwords = credentials(stack)
        assert {"enrolment", "financing", "export", "provisioner", "pegase-staff", "astech-staff",
                "aerospace-valley-banque-garonne", "pegase-pg-comptoir-in"} <= set(passwords)
        shown = json.dumps(state) + stack.output() + stack.logs()
        assert not [password for password in passwords.values() if password in shown]
        refused = asyncio.run(what_the_local_nats_refuses(state["nats_url"], passwords))
        assert "anonymous" not in refused
        for user in ("aerospace-valley-banque-garonne", "pegase-staff"):
            accepted, violations = refused[user]
            assert not accepted and violations, (user, refused[user])
        assert "stored" not in refused and not refused["forged_stored"]
        assert "error" in refused["case"]
        assert refused["dead_letters"] == 2
        # Each service connects as its own NATS user.
        connz = f"{state['nats_monitor_url']}/connz?auth=1&limit=1024"
        with urllib.request.urlopen(connz, timeout=5) as page:
            users = {c.get("name"): c.get("authorized_user") for c in json.load(page)["connections"]}
        for name in ("enrolment", "financing", "export"):
            assert users[f"envol-{name}"] == name, users
        output = stack.output()
        assert STARTED in output and state["nats_url"] in output
        # The demo's report is for people: with the stack's output in a file, it is in demo.log.
        output += (stack.data_dir / "demo.log").read_text()
        assert "enrolled: place freed by application" in output
        assert "✗ refused: tranche 2, before the progress report  [banque-garonne]" in output
        assert "!! escalation (requirement_overdue" in output
        assert "  Export:" in output and "status opened → waiting → assigned" in output
        assert "✗ refused: lead from the China relay  [vie-relay-cn]" in output

        # A second run against the same stack tells the same story: it first closes what the
        # first run left live.
        again = subprocess.run(
            [sys.executable, "-m", "deploy.local.demo", "--data-dir", str(stack.data_dir),
             "--report-json", str(tmp_path / "again.json"), "--timeout", "20"],
            cwd=ROOT, env=env_without_envol(), capture_output=True, text=True, timeout=40,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        second = json.loads((tmp_path / "again.json").read_text())
        assert second["closed_from_earlier_runs"] == 12
        # ... which closes the five export supports it left open and frees their places: the
        # China story is the same again.
        assert second["supports_closed_from_earlier_runs"] == 5
        assert [second["export"][key]["path"] for key in ("quercy-vie", "landes-vie", "tarn-vie")] == [
            left["path"], stayed["path"], waited["path"]]
        assert second["export"]["aquitaine-vie"]["contracted_cents"] == 45_000_000
        assert len(second["export"]["aquitaine-vie"]["refused"]) == 1
        assert second["applications"]["durance-growth"]["path"] == apps["durance-growth"]["path"]
        # Fresh case ids: the same financing story again.
        again_loan = second["financing"]["garonne-rd"]
        assert again_loan["case_id"] != loan["case_id"]
        assert (again_loan["stage"], len(again_loan["refused"]), len(again_loan["escalations"])) == (
            "disbursed", 1, 1)
        assert second["financing"]["lauragais-club"]["stage"] == "round_closed"
        assert second["run"] != report["run"]

        assert stack.interrupt() == 0, stack.output() + stack.logs()[-4000:]
        assert not [pid for pid in children if alive(pid)]
        assert not (stack.data_dir / "stack.json").exists()
        assert "service.stopped" in stack.logs()


def test_a_taken_port_does_not_break_the_stack(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with local_stack(tmp_path, "--nats-port", str(taken)) as stack:
            stack.wait_for(STARTED)
            url = stack.state()["nats_url"]
            assert not url.endswith(f":{taken}")
            assert f"port {taken} is taken" in stack.output()
            children = stack.child_pids()
            assert stack.interrupt() == 0, stack.output() + stack.logs()[-4000:]
            assert not [pid for pid in children if alive(pid)]


def test_the_next_start_stops_what_a_killed_stack_left_running(tmp_path: Path) -> None:
    # A stack killed outright (SIGKILL) cannot stop its children; they would hold the JetStream
    # store and the port. The next start on the same data dir stops them first.
    with local_stack(tmp_path, "--nats-port", str(free_port()), name="first") as first:
        first.wait_for(STARTED)
        leftovers = first.child_pids()
        passwords = credentials(first)
        first.process.kill()
        first.process.wait(10)
        assert all(alive(pid) for pid in leftovers)
        # Nested: should this fail, the outer clean-up still kills the leftovers.
        with local_stack(tmp_path, "--nats-port", str(free_port()), name="second") as second:
            second.wait_for(STARTED)
            assert not [pid for pid in leftovers if alive(pid)]
            assert "a previous stack was killed" in second.output()
            assert credentials(second) == passwords  # kept between runs
            assert second.interrupt() == 0, second.output() + second.logs()[-4000:]
