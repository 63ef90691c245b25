"""What cannot run here (no Docker engine), checked by other means: docker-compose.yml against
the Compose Specification's JSON schema; each image's command, variables and health check
against what the service really reads and serves; each service started natively with exactly
the environment compose gives it (hostnames mapped to loopback) against the deploy NATS
configuration and PostgreSQL; the placeholder secrets refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import check_jsonschema
import jsonschema
import pytest
from ruamel.yaml import YAML

from deploy.nats.generate import users
from envol_shared.nats_server import NatsServer, free_ports

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
SERVICES = ["enrolment", "financing", "export", "outcomes"]
SCHEMA = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?[?-][^}]*)?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and ${NAME:-default}, as `docker compose` does."""
    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in env:
            raise KeyError(f"compose needs {name}")
        return env[name]
    return VARIABLE.sub(replace, value)


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.validators.validator_for(schema)(schema)  # the draft the schema declares


def test_the_compose_file_follows_the_compose_specification():
    errors = sorted(validator().iter_errors(COMPOSE), key=str)
    assert errors == [], [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_a_broken_compose_file_would_be_caught():
    nats = {**COMPOSE["services"]["nats"], "restart": 3, "heathcheck": {}}
    broken = {**COMPOSE, "services": {**COMPOSE["services"], "nats": nats}}
    assert len(list(validator().iter_errors(broken))) == 2


def variables_read_by(service: str) -> set[str]:
    """Every ENVOL_* name the service's code (and the shared package's) reads."""
    sources = [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services" / service).rglob("*.py")]
    names: set[str] = set()
    for path in sources:
        text = path.read_text()
        names |= set(re.findall(r'"(ENVOL_[A-Z_]+)"', text))
        if 'f"ENVOL_{service.upper()}_DATABASE_URL"' in text:
            names.add(f"ENVOL_{service.upper()}_DATABASE_URL")
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_matches_what_its_service_reads_and_serves(service: str):
    spec = COMPOSE["services"][service]
    dockerfile = (ROOT / spec["build"]["dockerfile"]).read_text()
    project = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    # The command is the service's own console script...
    assert f'CMD ["envol-{service}"]' in dockerfile and f"envol-{service}" in scripts
    # ...installed from the very requirements the tests use, then the packages without deps.
    assert "-r requirements.txt" in dockerfile
    assert f"--no-deps ./shared ./services/{service}" in dockerfile
    assert "\nUSER envol\n" in dockerfile and "FROM python:3.11-slim AS build" in dockerfile
    # Every variable compose sets is one the service reads.
    assert set(spec["environment"]) <= variables_read_by(service)
    # The health check asks the port the service listens on, in the image and in compose.
    port = spec["environment"]["ENVOL_HEALTH_PORT"]
    assert f"ENVOL_HEALTH_PORT={port}" in dockerfile
    assert f"127.0.0.1:{port}/health/ready" in " ".join(spec["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/health/ready" in dockerfile
    # No fixed name nor host port: `--scale` can run several.
    assert "container_name" not in spec and "ports" not in spec


def test_every_secret_compose_needs_is_in_the_example_and_none_is_committed():
    example = env_example()
    needed = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    needed |= {user.password_variable for user in users()}
    assert needed <= set(example)
    assert set(example.values()) == {"change-me"}
    assert ".env\n" in (ROOT / ".gitignore").read_text()


def test_the_placeholder_secrets_stop_everything():
    check = COMPOSE["services"]["secrets-check"]["command"]
    with_placeholders = subprocess.run(check, env=env_example(), capture_output=True, text=True)
    assert with_placeholders.returncode == 1 and "placeholder secrets" in with_placeholders.stderr
    real = {name: uuid.uuid4().hex for name in env_example()}
    assert subprocess.run(check, env=real).returncode == 0
    # And a service started anyway refuses, saying which variable.
    environment = {name: interpolate(str(value), env_example())
                   for name, value in COMPOSE["services"]["financing"]["environment"].items()}
    refused = subprocess.run([sys.executable, "-m", "envol_financing.entrypoints.main"],
                             env={**os.environ, **environment}, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "ENVOL_NATS_URL still holds a placeholder secret" in refused.stderr


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _psql(url: str, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", *args], check=True, capture_output=True,
                   env={**os.environ, **(env or {})})


@pytest.fixture
def native_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The deploy NATS configuration on a free port, and the databases and roles that
    deploy/postgres/init-databases.sh creates, on the test PostgreSQL server."""
    # Compose's own server, as init-databases.sh and the services' URLs find it (127.0.0.1:5432,
    # psql on the PATH): given explicitly, never the throwaway one of tests/throwaway_postgres.py.
    admin = os.environ.get("ENVOL_TEST_DATABASE_URL")
    if not admin:
        pytest.skip("ENVOL_TEST_DATABASE_URL is not set (this test needs the server compose would use)")
    secrets = {name: uuid.uuid4().hex for name in env_example()}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    for service in SERVICES:  # left over by an interrupted run
        _drop(admin, service)
    subprocess.run(["sh", str(ROOT / "deploy" / "postgres" / "init-databases.sh")], check=True,
                   env={**os.environ, **secrets, "POSTGRES_USER": "postgres", "PGHOST": "127.0.0.1"},
                   capture_output=True)
    client, monitor = free_ports(2)
    server = NatsServer(tmp_path / "jetstream", client, log_file=tmp_path / "nats.log",
                        extra_args=["-c", str(ROOT / "deploy" / "nats" / "nats.conf"),
                                    "-m", str(monitor)])
    server.start()
    yield server, secrets
    server.kill()
    for service in SERVICES:
        _drop(admin, service)


def _drop(admin: str, service: str) -> None:
    _psql(admin, "-c", f'DROP DATABASE IF EXISTS "{service}" WITH (FORCE)',
          "-c", f'DROP ROLE IF EXISTS "{service}"')


def native_environment(service: str, secrets: dict[str, str], nats_port: int) -> dict[str, str]:
    """Exactly what compose gives the container, with its hostnames mapped to loopback."""
    environment = {}
    for name, value in COMPOSE["services"][service]["environment"].items():
        value = interpolate(str(value), secrets)
        environment[name] = value.replace("@nats:4222", f"@127.0.0.1:{nats_port}").replace(
            "@postgres:5432", "@127.0.0.1:5432")
    return environment


def test_each_service_runs_natively_with_the_compose_environment(native_backends: Any, tmp_path: Path):
    server, secrets = native_backends
    bin_dir = Path(sys.executable).parent
    base = {key: value for key, value in os.environ.items() if not key.startswith("ENVOL_")}
    provision = COMPOSE["services"]["provision"]
    subprocess.run([str(bin_dir / provision["command"][0])], check=True, timeout=60,
                   env={**base, **native_environment("provision", secrets, server.port)})
    for service in SERVICES:
        command = str(bin_dir / f"envol-{service}")
        log = tmp_path / f"{service}.log"
        with open(log, "wb") as output:
            environment = native_environment(service, secrets, server.port)
            process = subprocess.Popen([command], env={**base, **environment}, stdout=output, stderr=output)
        try:
            deadline = time.monotonic() + 60
            status = None
            while time.monotonic() < deadline and status != 200:
                assert process.poll() is None, log.read_text()[-3000:]
                status = _http_status("http://127.0.0.1:8080/health/ready")
                time.sleep(0.3)
            assert status == 200, log.read_text()[-3000:]
            assert _http_status("http://127.0.0.1:8080/health/live") == 200
        finally:
            process.terminate()
            assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert any(line["event"] == "service.started" for line in lines), "JSON log lines expected"
        assert not any(line["level"] == "error" for line in lines), log.read_text()[-3000:]
