"""End to end: the local stack heals and is run from other shells.

`python3 envol.py up` stops everything on SIGINT or SIGTERM sent to the wrapper alone (not to
its process group, as `kill` from another shell does); `down` and `status` work from another
process; a service killed outright is restarted and the stack keeps running; what the stack
writes to a file is one JSON object per line; the demo refuses, within seconds, a NATS where
no service answers. Waits are on positive conditions, each with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_local_stack import STARTED, StackProcess, alive, env_without_envol, local_stack

from envol_shared.nats_server import NatsServer, free_port
from envol_shared.topology import EVENTS_STREAM, provision

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s}s")
        time.sleep(0.1)
    return found


def parsed_lines(text: str) -> list[dict[str, Any]]:
    """Every line is one JSON object (json.loads fails the test otherwise)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def control(command: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.local.stack_control", command, *args,
                           "--data-dir", str(data_dir)], cwd=ROOT, env=env_without_envol(),
                          capture_output=True, text=True, timeout=60)


def status(data_dir: Path) -> dict[str, Any]:
    return json.loads(control("status", data_dir, "--json").stdout)


def every_pid(stack: StackProcess) -> list[int]:
    return [stack.process.pid, *stack.child_pids()]


@pytest.fixture
def wrapper_venv(tmp_path: Path) -> Path:
    """A venv for envol.py that is this test's Python, marked as installed: the wrapper then
    runs the stack at once, whatever the state of the developer's .venv."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # exec: the same pid
    python.chmod(0o755)
    sys.path.insert(0, str(ROOT))
    try:
        import envol
    finally:
        sys.path.remove(str(ROOT))
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in envol.INPUTS)).hexdigest()
    (venv / ".envol-installed").write_text(digest)
    return venv


@contextlib.contextmanager
def wrapped_stack(tmp_path: Path, venv: Path) -> Iterator[StackProcess]:
    """`python3 envol.py up` in its own session: a signal to its pid reaches the wrapper only."""
    data_dir = tmp_path / "envol"
    stdout, stderr = tmp_path / "up.out", tmp_path / "up.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "envol.py"), "up", "--data-dir", str(data_dir),
             "--nats-port", str(free_port())],
            cwd=ROOT, env={**env_without_envol(), "ENVOL_VENV": str(venv)}, stdout=out, stderr=err,
            start_new_session=True,
        )
    stack = StackProcess(process, data_dir, stdout, stderr)
    pids: list[int] = []
    try:
        stack.wait_for(STARTED)
        pids = [stack.state()["stack_pid"], *stack.child_pids()]
        yield stack
    finally:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
            pids += [stack.state()["stack_pid"], *stack.child_pids()]
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in pids:  # a failed test must not leave a stack, nats-server or service behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_wrapper_stops_everything(tmp_path: Path, wrapper_venv: Path, signum: int) -> None:
    with wrapped_stack(tmp_path, wrapper_venv) as stack:
        state = stack.state()
        pids = [state["stack_pid"], *stack.child_pids()]
        assert len(pids) == 6 and all(alive(pid) for pid in pids)
        stack.process.send_signal(signum)
        assert stack.process.wait(45) == 0, stack.output() + stack.logs()[-4000:]
        assert not [pid for pid in pids if alive(pid)]
        assert not (stack.data_dir / "stack.json").exists()
        stopping = [line for line in parsed_lines(stack.output()) if line["event"] == "stack.stopping"]
        assert [line["signal"] for line in stopping] == [signal.Signals(signum).name]


def test_down_from_another_shell_stops_the_stack(tmp_path: Path) -> None:
    with local_stack(tmp_path, "--nats-port", str(free_port())) as stack:
        stack.wait_for(STARTED)
        pids = every_pid(stack)
        found = status(stack.data_dir)
        assert found["running"] and found["stack_pid"] == stack.process.pid
        assert set(found["services"]) == {"enrolment", "financing", "export", "outcomes"}
        for service in found["services"].values():
            assert service["health_port"] and service["restarts"] == 0
        down = control("down", stack.data_dir)
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
        assert stack.process.wait(10) == 0
        assert not [pid for pid in pids if alive(pid)]
        again = control("down", stack.data_dir)
        assert again.returncode == 0 and "no local stack is running" in again.stdout
        assert control("status", stack.data_dir).returncode == 3
        # Written to files, the stack's lines and the services' are each one JSON object.
        lines = parsed_lines(stack.output()) + parsed_lines(stack.logs())
        assert {"stack.up", "service.stopping", "stack.stopped"} <= {line["event"] for line in lines}


def test_down_cleans_up_after_a_stack_killed_outright(tmp_path: Path) -> None:
    with local_stack(tmp_path, "--nats-port", str(free_port())) as stack:
        stack.wait_for(STARTED)
        children = stack.child_pids()
        stack.process.kill()
        stack.process.wait(10)
        assert status(stack.data_dir) == {"running": False, "stale": True,
                                          "state_file": str(stack.data_dir / "stack.json")}
        down = control("down", stack.data_dir)
        assert down.returncode == 0 and "stale" in down.stdout, down.stdout + down.stderr
        assert not [pid for pid in children if alive(pid)]
        assert not (stack.data_dir / "stack.json").exists()


def test_a_killed_service_is_restarted_and_the_stack_keeps_running(tmp_path: Path) -> None:
    with local_stack(tmp_path, "--nats-port", str(free_port())) as stack:
        stack.wait_for(STARTED)
        killed = stack.state()["services"]["enrolment"]
        os.kill(killed, signal.SIGKILL)

        def restarted() -> dict[str, Any] | None:
            enrolment = status(stack.data_dir)["services"]["enrolment"]
            return enrolment if enrolment["restarts"] == 1 and enrolment["ready"] == "ready" else None

        enrolment = wait_until(restarted, "enrolment restarted and ready")
        assert enrolment["pid"] != killed and alive(enrolment["pid"])
        assert stack.process.poll() is None
        lines = parsed_lines(stack.output())
        exited = next(line for line in lines if line["event"] == "service.exited")
        assert (exited["service"], exited["pid"], exited["exit_code"]) == ("enrolment", killed, -9)
        assert any(line["event"] == "service.restarted" and line["pid"] == enrolment["pid"] for line in lines)
        pids = every_pid(stack)
        assert enrolment["pid"] in pids
        assert stack.interrupt() == 0, stack.output() + stack.logs()[-4000:]
        assert not [pid for pid in pids if alive(pid)]


async def test_the_demo_fails_fast_when_no_service_answers(
    tmp_path: Path, nats_server: NatsServer, nc: Any
) -> None:
    await provision(nc.jetstream())
    demo = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "deploy.local.demo", "--nats-url", nats_server.url,
         "--data-dir", str(tmp_path / "nothing")],
        cwd=ROOT, env=env_without_envol(), capture_output=True, text=True, timeout=40,
    )
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "enrolment, export, financing service(s) do not answer" in demo.stderr
    assert "nothing published" in demo.stderr and "Demo run" not in demo.stdout
    assert (await nc.jetstream().stream_info(EVENTS_STREAM)).state.messages == 0
