"""Mutation testing of the reliability core: break a promise on purpose, see a test fail.

    python3 envol.py mutants                 every curated mutant, then the table and the score
    python3 envol.py mutants --list          the mutants, the promise each breaks, its tests
    python3 envol.py mutants --check         only check that every mutation still applies
    python3 envol.py mutants NAME...         only these mutants (names or prefixes)
    python3 envol.py mutants --no-baseline   skip the first run of the selected tests unmutated

Each mutant is a small textual change to one file of shared/envol_shared/ (consumer,
deliveries, relay, event log, lease, timers) that breaks one promise of the README, and the
few tests that must then fail. Every original text must occur exactly once in its file, so
that an edit of the product code that moves it makes the list fail loudly (`--check`, and
tests/unit/test_mutants.py in the ordinary suite) instead of silently testing nothing.

For each mutant the file is changed, the mutant's tests run (stopping at the first failure),
and the file is put back byte for byte, with its modification time, whatever happens: a
failure, Ctrl-C, SIGTERM. Should this process be killed outright, the pristine copy left
beside the file (`<file>.mutant-original`) is put back by the next run before anything else.

A mutant is *killed* when one of its tests fails, *survived* when they all pass: a missing
test. A selected test that was skipped (PostgreSQL missing...) leaves the mutant *not run*.
The exit status is 0 only when every mutant run was killed (and, first, every selected test
passed unmutated).

The tests need PostgreSQL: ENVOL_TEST_DATABASE_URL, or else one throwaway server started for
the whole run (tests/throwaway_postgres.py). The product code of this work tree is changed
while a mutant runs: run nothing else from this tree meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = "shared/envol_shared"
BACKUP_SUFFIX = ".mutant-original"
TIMEOUT_S = 300  # per mutant: far above what its tests take, a guard against a hang


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # under shared/envol_shared/
    promise: str  # what the change breaks
    changes: tuple[tuple[str, str], ...]  # (original text, replacement), each original found once
    tests: tuple[str, ...]  # pytest node ids, relative to tests/integration unless they say otherwise

    @property
    def path(self) -> Path:
        return ROOT / CORE / self.file

    def apply(self, text: str) -> str:
        for original, replacement in self.changes:
            found = text.count(original)
            if found != 1:
                raise MutationRot(f"{self.name}: {original!r} occurs {found} times in {CORE}/{self.file}, "
                                  "not once: update tests/mutations/mutants.py")
            text = text.replace(original, replacement)
        return text

    def test_ids(self) -> list[str]:
        return [test if test.startswith("tests/") else f"tests/integration/{test}" for test in self.tests]


class MutationRot(Exception):
    """A mutation no longer applies to the product code as it is."""


I12, I16, I20 = " " * 12, " " * 16, " " * 20

MUTANTS: tuple[Mutant, ...] = (
    # --- consumer.py ----------------------------------------------------------------------
    Mutant(
        "ack-before-commit", "consumer.py",
        "messages are acknowledged only after their batch commits",
        ((f"{I12}await uow.commit()\n{I12}return uow.outbox.written, holds",
          f"{I12}await self._settle(deliveries)\n"
          f"{I12}await uow.commit()\n{I12}return uow.outbox.written, holds"),
         ("        self._on_commit(written)\n        await self._settle(deliveries)\n",
          "        self._on_commit(written)\n")),
        ("test_promises.py::test_a_batch_whose_commit_the_database_refuses_comes_back_and_is_applied[sqlite]",
         "test_promises.py::test_a_serialization_failure_at_commit_redelivers_the_whole_batch[postgresql]"),
    ),
    Mutant(
        "lease-not-renewed-in-batch", "consumer.py",
        "a holder that lost the lease can never commit (renewed in the batch's transaction)",
        ((f"{I16}await self._lease.renew(uow.session)  # commits only while this instance holds it",
          f"{I16}pass"),),
        ("test_promises.py::test_a_holder_deposed_while_it_held_a_batch_never_commits_it[sqlite]",),
    ),
    Mutant(
        "dead-letter-off-by-one", "consumer.py",
        "dead-lettered after 5 attempts",
        (("if delivery.attempt >= self._max_attempts:", "if delivery.attempt > self._max_attempts:"),),
        ("test_promises.py::test_the_services_dead_letter_after_five_attempts_where_the_message_stood[sqlite]",),
    ),
    Mutant(
        "hold-never-released", "consumer.py",
        "a company's later events wait behind its retried event, then go on",
        ((f"{I12}elif held_at == delivery.stream_sequence and delivery.outcome not in (\n"
          f"{I20}Outcome.RETRY, Outcome.WAITING):\n{I16}changes[company] = None",
          f"{I12}elif held_at == delivery.stream_sequence and delivery.outcome not in (\n"
          f"{I20}Outcome.RETRY, Outcome.WAITING):\n{I16}pass"),),
        ("test_promises.py::test_the_services_dead_letter_after_five_attempts_where_the_message_stood[sqlite]",),
    ),
    Mutant(
        "later-events-do-not-wait", "consumer.py",
        "per-company order: later events wait behind a held company's oldest",
        (("if delivery.company and held_at is not None and delivery.stream_sequence > held_at:",
          "if delivery.company and held_at is not None and delivery.stream_sequence < held_at:"),),
        ("test_reliability.py::test_per_company_order_survives_a_restart_while_an_event_waits_for_its_retry"
         "[sqlite]",),
    ),
    Mutant(
        "holds-not-stored", "consumer.py",
        "the hold is stored with the batch, so per-company order survives a restart",
        ((f"{I12}await uow.holds.apply(holds)\n", f"{I12}pass\n"),),
        ("test_reliability.py::test_per_company_order_survives_a_restart_while_an_event_waits_for_its_retry"
         "[sqlite]",),
    ),
    Mutant(
        "no-savepoint-isolation", "consumer.py",
        "a message can only fail itself: its changes are undone alone, in a savepoint",
        ((f"{I12}async with uow.savepoint():\n{I16}await self._handle(uow, delivery)",
          f"{I12}if True:\n{I16}await self._handle(uow, delivery)"),),
        ("test_message_isolation.py::test_a_batch_of_refusals_is_applied_in_two_passes_not_one_per_refusal"
         "[sqlite]",),
    ),
    Mutant(
        "transient-failure-settles-batch", "consumer.py",
        "a transient failure rolls the batch back and its messages are redelivered, never lost",
        ((f"{I16}for delivery in deliveries:\n{I20}await delivery.msg.nak(delay=delay)\n{I16}return delay",
          f"{I16}for delivery in deliveries:\n{I20}await delivery.msg.ack()\n{I16}return delay"),),
        ("test_reliability.py::test_a_database_outage_leads_to_redelivery_not_loss[sqlite]",),
    ),
    # --- deliveries.py --------------------------------------------------------------------
    Mutant(
        "attempts-not-counted", "deliveries.py",
        "dead-lettered after 5 attempts (the delivery count is JetStream's)",
        (("attempt=meta.num_delivered or 1)", "attempt=1)"),),
        ("test_promises.py::test_the_services_dead_letter_after_five_attempts_where_the_message_stood[sqlite]",),
    ),
    Mutant(
        "dead-letter-loses-position", "deliveries.py",
        "a dead letter says where the original stood in the stream",
        (('"Envol-Original-Stream-Sequence": str(delivery.stream_sequence),',
          '"Envol-Original-Stream-Sequence": str(delivery.attempt),'),),
        ("test_promises.py::test_the_services_dead_letter_after_five_attempts_where_the_message_stood[sqlite]",),
    ),
    # --- event_log.py ---------------------------------------------------------------------
    Mutant(
        "inbox-forgets", "event_log.py",
        "the same event again is acknowledged with no second effect (the inbox)",
        (("        if not keys:\n            return {}\n        rows = await",
          "        if keys or not keys:\n            return {}\n        rows = await"),),
        ("test_financing_flow.py::test_a_partner_resending_the_same_event_id_changes_nothing[sqlite]",),
    ),
    Mutant(
        "timers-claimed-unlocked", "event_log.py",
        "each timer fires once, with several instances (claimed FOR UPDATE SKIP LOCKED)",
        (("            query = query.with_for_update(skip_locked=True)\n        row =",
          "            query = query\n        row ="),),
        ("test_financing_timers.py::test_two_instances_racing_fire_each_timer_once[postgresql]",),
    ),
    Mutant(
        "timer-not-marked-fired", "event_log.py",
        "a timer fires once: marked fired with its effects",
        (("values(fired_at=at, outcome=outcome[:500])", "values(outcome=outcome[:500])"),),
        ("test_promises.py::test_a_timer_that_fails_for_good_is_marked_with_its_error_and_the_others_fire"
         "[sqlite]",),
    ),
    Mutant(
        "rolled-back-rows-still-handed", "event_log.py",
        "what a savepoint undid is not published",
        (("        self._pending = []\n        del self.written[written:]", "        self._pending = []"),),
        ("test_promises.py::test_events_of_a_message_undone_after_they_were_written_are_never_published"
         "[sqlite]",),
    ),
    # --- lease.py -------------------------------------------------------------------------
    Mutant(
        "lease-release-noop", "lease.py",
        "after a graceful stop a standby takes over at once",
        (('"""Let a standby take over at once (a graceful stop)."""\n        if self.epoch is None:',
          '"""Let a standby take over at once (a graceful stop)."""\n        if True:'),),
        ("test_scaling.py::test_a_graceful_stop_hands_over_at_once[postgresql]",),
    ),
    Mutant(
        "lease-renewal-unchecked", "lease.py",
        "a holder that lost the lease can never commit (its renewal finds the lease gone)",
        (("        if result.rowcount != 1:  # type: ignore[attr-defined]",
          "        if False:  # type: ignore[attr-defined]"),),
        ("test_promises.py::test_a_holder_deposed_while_it_held_a_batch_never_commits_it[sqlite]",),
    ),
    Mutant(
        "lease-renewed-by-anyone", "lease.py",
        "a renewal is conditioned on the holder's epoch",
        (("                     .where(consumer_leases.c.consumer == self._consumer,\n"
          "                            consumer_leases.c.epoch == self.epoch)\n"
          "                     .values(renewed_at=now()))",
          "                     .where(consumer_leases.c.consumer == self._consumer)\n"
          "                     .values(renewed_at=now()))"),),
        ("test_promises.py::test_a_holder_deposed_while_it_held_a_batch_never_commits_it[sqlite]",),
    ),
    Mutant(
        "lease-taken-from-a-live-holder", "lease.py",
        "one holder at a time: the lease is taken over only once the holder stops renewing",
        (("if holder not in (self.holder, \"\") and renewed_at > moment - self._ttl:",
          "if holder not in (self.holder, \"\") and renewed_at > moment + self._ttl:"),
         ("consumer_leases.c.renewed_at <= moment - self._ttl))",
          "consumer_leases.c.renewed_at <= moment + self._ttl))")),
        ("test_lease.py::test_one_holder_then_a_takeover_once_it_stops_renewing[sqlite]",),
    ),
    # --- relay.py -------------------------------------------------------------------------
    Mutant(
        "relay-reads-unlocked", "relay.py",
        "several instances relay one outbox, each row published once (SKIP LOCKED)",
        (("                query = query.with_for_update(skip_locked=True)\n",
          "                query = query\n"),),
        ("test_competition.py::test_two_relays_racing_on_one_outbox_publish_each_row_once[postgresql]",),
    ),
    Mutant(
        "relay-publishes-handed-rows-unlocked", "relay.py",
        "rows handed over by the consumer are published once though another instance reads them",
        (("                    handed = await self._lock(connection, handed)\n",
          "                    pass\n"),),
        ("test_competition.py::test_rows_handed_to_one_relay_while_another_reads_the_outbox_are_published_once"
         "[postgresql]",),
    ),
    Mutant(
        "relay-marks-before-publishing", "relay.py",
        "a row is marked published when, and only when, JetStream acknowledged it",
        ((f"{I12}acked, refusal = await self._publish(lane, rows)\n{I12}if acked:\n"
          f"{I16}await self._mark(connection, acked)",
          f"{I12}await self._mark(connection, rows)\n{I12}acked, refusal = await self._publish(lane, rows)\n"
          f"{I12}if False:\n{I16}await self._mark(connection, acked)"),),
        ("test_relay.py::test_stop_does_not_wait_on_a_refused_lane_and_the_rows_go_out_at_the_next_start"
         "[sqlite]",),
    ),
    Mutant(
        "relay-marks-refused-rows", "relay.py",
        "a full stream keeps the rows in the outbox",
        (("acked = [row for (row, _), ack in zip(sent, acks, strict=True) "
          "if not isinstance(ack, BaseException)]",
          "acked = [row for row, _ in sent]"),),
        ("test_relay.py::test_a_full_dead_letter_stream_holds_up_neither_events_nor_readiness_for_long"
         "[sqlite]",),
    ),
    # --- timers.py ------------------------------------------------------------------------
    Mutant(
        "timer-fired-without-its-effects", "timers.py",
        "a timer is marked fired in the transaction of its effects",
        ((f'{I16}await uow.timers.mark_fired(key, at, "fired")\n{I16}await uow.commit()',
          f'{I16}await uow.timers.mark_fired(key, at, "fired")\n{I16}await uow.session.commit()'),),
        ("test_financing_timers.py::test_reminders_fire_after_a_restart_once_then_escalate[sqlite]",),
    ),
    Mutant(
        "failing-timer-retried-forever", "timers.py",
        "a timer whose handler fails for good is marked fired with the error, and others go on",
        (("                    await uow.timers.mark_fired(key, at, f\"failed: {exc!r}\")\n",
          "                    pass\n"),),
        ("test_promises.py::test_a_timer_that_fails_for_good_is_marked_with_its_error_and_the_others_fire"
         "[sqlite]",),
    ),
)


# --- running -------------------------------------------------------------------------------

@dataclass
class Result:
    mutant: Mutant
    outcome: str  # killed, survived, not run, timeout
    seconds: float
    detail: str = ""


def restore_leftovers() -> None:
    """Put back a pristine copy left by a run that was killed outright."""
    for backup in sorted((ROOT / CORE).glob(f"*{BACKUP_SUFFIX}")):
        target = backup.with_name(backup.name[: -len(BACKUP_SUFFIX)])
        print(f"mutants: restoring {target.relative_to(ROOT)} left mutated by an earlier run", flush=True)
        os.replace(backup, target)


@contextlib.contextmanager
def mutated(mutant: Mutant, serial: int) -> Iterator[None]:
    path = mutant.path
    original = path.read_bytes()
    stat = path.stat()
    text = mutant.apply(original.decode())
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    backup.write_bytes(original)
    os.utime(backup, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    try:
        path.write_text(text)
        # A modification time of its own, whole seconds apart: a cached bytecode file of the
        # original (or of another mutant of the same size) is never taken for this one.
        moment = stat.st_mtime_ns + (serial + 1) * 2_000_000_000
        os.utime(path, ns=(moment, moment))
        yield
    finally:
        if path.read_text() == text:
            path.write_bytes(original)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        else:  # changed by someone else meanwhile (a checkout, a merge): theirs stays
            print(f"\nmutants: {path.relative_to(ROOT)} changed during the run; left as it is now",
                  file=sys.stderr)
        backup.unlink(missing_ok=True)


def run_tests(tests: Sequence[str], *, stop_at_first_failure: bool, timeout_s: float) -> tuple[str, str]:
    """('passed' | 'failed' | 'skipped' | 'timeout', detail) of one pytest run."""
    with tempfile.TemporaryDirectory(prefix="envol-mutant-") as folder:
        report = Path(folder) / "report.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header",
                   f"--junitxml={report}", *(["-x"] if stop_at_first_failure else []), *tests]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        log = Path(folder) / "pytest.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _stop(process)
                return "timeout", f"no answer within {timeout_s:.0f} s"
            except BaseException:
                _stop(process)
                raise
        if not report.exists():
            return "failed", _tail(log)
        suite = ElementTree.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")  # type: ignore[assignment]
        assert suite is not None
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        ran = int(suite.get("tests", 0))
        if failed:
            names = [case.get("name", "?") for case in suite.iter("testcase")
                     if case.find("failure") is not None or case.find("error") is not None]
            return "failed", ", ".join(names)
        if ran == 0 or skipped or process.returncode != 0:
            return "skipped", "a selected test was skipped" if process.returncode in (0, 5) else _tail(log)
        return "passed", ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the test run: interrupted first, so that its fixtures stop what they started
    (nats-server, service processes); killed with everything in its group if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


VERDICTS = {"failed": "killed", "passed": "survived", "skipped": "not run", "timeout": "timeout"}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def select(names: Sequence[str]) -> list[Mutant]:
    if not names:
        return list(MUTANTS)
    chosen = [m for m in MUTANTS if any(m.name == n or m.name.startswith(n) for n in names)]
    unknown = [n for n in names if not any(m.name == n or m.name.startswith(n) for m in MUTANTS)]
    if unknown:
        raise SystemExit(f"mutants: no mutant named {', '.join(unknown)} (see --list)")
    return chosen


def check(mutants: Sequence[Mutant]) -> list[str]:
    """Why each mutant that no longer applies does not (empty: all apply)."""
    problems = []
    for mutant in mutants:
        try:
            mutated_text = mutant.apply(mutant.path.read_text())
            compile(mutated_text, str(mutant.path), "exec")
        except MutationRot as exc:
            problems.append(str(exc))
        except SyntaxError as exc:
            problems.append(f"{mutant.name}: the mutated file does not compile: {exc}")
    return problems


def table(results: Sequence[Result], elapsed: float) -> str:
    width = max(len(r.mutant.name) for r in results)
    lines = [f"{'mutant':<{width}}  {'file':<14} {'result':<9} {'s':>5}  promise broken",
             f"{'-' * width}  {'-' * 14} {'-' * 9} {'-' * 5}  {'-' * 14}"]
    for r in results:
        lines.append(f"{r.mutant.name:<{width}}  {r.mutant.file:<14} {r.outcome:<9} {r.seconds:>5.0f}  "
                     f"{r.mutant.promise}")
    killed = sum(r.outcome in ("killed", "timeout") for r in results)
    lines.append("")
    lines.append(f"score: {killed}/{len(results)} mutants killed ({100 * killed / len(results):.0f}%) "
                 f"in {elapsed / 60:.1f} min")
    for r in results:
        if r.outcome not in ("killed",) and r.detail:
            lines.append(f"\n{r.mutant.name} ({r.outcome}):\n{r.detail}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="envol.py mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="only these mutants (names or prefixes)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="only check that every mutation applies")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not first run the selected tests on the unmutated code")
    args = parser.parse_args(argv)
    restore_leftovers()
    mutants = select(args.names)
    if args.list:
        for m in mutants:
            tests = "\n            ".join(m.tests)
            print(f"{m.name}  ({m.file})\n    breaks: {m.promise}\n    tests:  {tests}")
        return 0
    problems = check(mutants)
    if problems:
        print("mutants: the list has rotted:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.check:
        print(f"mutants: all {len(mutants)} mutations apply, once each, and compile")
        return 0
    # SIGTERM ends the run like Ctrl-C does, so the file being mutated is put back.
    signal.signal(signal.SIGTERM, _interrupt)
    with postgresql():
        return run(mutants, baseline=not args.no_baseline)


@contextlib.contextmanager
def postgresql() -> Iterator[None]:
    """One throwaway PostgreSQL server for every run of the tests, unless one is given."""
    if os.environ.get("ENVOL_TEST_DATABASE_URL"):
        yield
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from throwaway_postgres import throwaway

    url = throwaway.url()
    if url is None:
        print(f"mutants: no PostgreSQL ({throwaway.unavailable}): the mutants whose tests need it "
              "are not run", file=sys.stderr)
        yield
        return
    print(f"mutants: PostgreSQL tests on a throwaway server ({throwaway.origin})", flush=True)
    os.environ["ENVOL_TEST_DATABASE_URL"] = url
    try:
        yield
    finally:
        del os.environ["ENVOL_TEST_DATABASE_URL"]
        throwaway.stop()


def run(mutants: Sequence[Mutant], *, baseline: bool) -> int:
    started = time.monotonic()
    if baseline:
        tests = list(dict.fromkeys(t for m in mutants for t in m.test_ids()))
        print(f"mutants: baseline, {len(tests)} tests on the code as it is", flush=True)
        outcome, detail = run_tests(tests, stop_at_first_failure=False, timeout_s=TIMEOUT_S * 3)
        if outcome != "passed":
            print(f"mutants: the baseline did not pass ({outcome}); fix that first:\n{detail}",
                  file=sys.stderr)
            return 2
    results: list[Result] = []
    try:
        for serial, mutant in enumerate(mutants):
            print(f"mutants: [{serial + 1}/{len(mutants)}] {mutant.name} ...", end=" ", flush=True)
            begun = time.monotonic()
            with mutated(mutant, serial):
                outcome, detail = run_tests(mutant.test_ids(), stop_at_first_failure=True,
                                            timeout_s=TIMEOUT_S)
            verdict = VERDICTS[outcome]
            results.append(Result(mutant, verdict, time.monotonic() - begun, detail))
            print(verdict, flush=True)
    except KeyboardInterrupt:
        print("\nmutants: interrupted; the code is as it was", file=sys.stderr)
        if not results:
            return 130
    print()
    print(table(results, time.monotonic() - started))
    killed = sum(r.outcome in ("killed", "timeout") for r in results)
    # The plain closing line CI reads: a killed mutant is a check passed.
    print(f"\nmutants: {killed} passed, {len(mutants) - killed} failed")
    return 0 if killed == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
