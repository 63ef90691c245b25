"""TLS switched on as the README says (uncomment the tls block of deploy/nats/nats.conf, your
certificates in place): services connect over TLS with their CA, plain connections are refused."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import nats
import pytest

from deploy.nats.generate import users
from envol_enrolment.bootstrap import bootstrap
from envol_shared.nats_server import NatsServer, free_ports
from envol_shared.service import RunningService, Settings
from envol_shared.topology import provision

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nats"


def certificates(directory: Path) -> None:
    """A certificate authority and a server certificate for 127.0.0.1, as a cluster's IT has."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Envol test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=nats", "-keyout", "server.key",
            "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    tls = tmp_path / "tls"
    tls.mkdir()
    certificates(tls)
    conf = (DEPLOY / "nats.conf").read_text()
    # The README's step: uncomment the block, certificates where it says (here, in tmp).
    block = re.search(r"^# tls \{.*?^# \}$", conf, flags=re.S | re.M)
    assert block is not None, "nats.conf has no tls block to switch on"
    enabled = "\n".join(line.removeprefix("# ") for line in block.group(0).splitlines())
    conf = conf.replace(block.group(0), enabled.replace("/etc/nats/tls", str(tls)))
    (tmp_path / "nats.conf").write_text(conf)
    shutil.copy(DEPLOY / "auth.conf", tmp_path / "auth.conf")
    passwords = {user.name: uuid.uuid4().hex for user in users()}
    for user in users():
        monkeypatch.setenv(user.password_variable, passwords[user.name])
    client, monitor = free_ports(2)
    server = NatsServer(tmp_path / "jetstream", client, log_file=tmp_path / "nats.log",
                        extra_args=["-c", str(tmp_path / "nats.conf"), "-m", str(monitor)])
    server.start()
    yield server, passwords, tls / "ca.crt"
    server.kill()


async def test_services_connect_over_tls_and_plain_connections_are_refused(tls_server, tmp_path):
    server, passwords, ca = tls_server
    url = f"tls://enrolment:{passwords['enrolment']}@127.0.0.1:{server.port}"
    settings = Settings("enrolment", url, f"sqlite+aiosqlite:///{tmp_path / 'e.sqlite'}", 64,
                        provision=False, nats_inbox_prefix="_INBOX_enrolment", nats_ca_file=str(ca))
    admin_url = f"tls://provisioner:{passwords['provisioner']}@127.0.0.1:{server.port}"
    admin = await nats.connect(admin_url, tls=ssl.create_default_context(cafile=str(ca)),
                               inbox_prefix="_INBOX_provisioner")
    await provision(admin.jetstream())
    await admin.close()
    service = RunningService(bootstrap(), settings)
    await service.start()
    try:
        assert service.nc is not None and service.nc.is_connected
        assert service.nc.connected_url is not None and service.nc.connected_url.scheme == "tls"
    finally:
        await service.stop()
    with pytest.raises(Exception):  # noqa: B017 - refused, whatever nats-py names it
        await nats.connect(f"nats://enrolment:{passwords['enrolment']}@127.0.0.1:{server.port}",
                           max_reconnect_attempts=0, connect_timeout=2, allow_reconnect=False)
