"""TLS to ZooKeeper, against a small TLS listener of the test's own (the suite runs no TLS ZooKeeper:
that needs a keystore and netty's codec jars). Certificates are made with the openssl command."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import pytest

from nlpzk.config import Config
from nlpzk.errors import ConfigError, ZkUnavailableError
from nlpzk.zk import client as zk_client

pytestmark = pytest.mark.timeout(60)  # the openssl command is installed by ./run.sh test, like iproute2


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2", "-subj", "/CN=nlpzk-test-ca")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"), "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.pem"), "-days", "2", "-extfile", str(d / "san.ext"))
    return d


class TlsListener:
    """Accepts TLS connections; records each completed handshake; answers ``srvr`` like ZooKeeper."""

    SRVR = "Zookeeper version: 3.8.0-abc, built on 2024-01-01\nLatency min/avg/max: 0/0/0\nMode: standalone\nNode count: 7\n"

    def __init__(self, certs) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(certs / "server.pem"), str(certs / "server.key"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    self.handshakes += 1
                    tls.settimeout(2)
                    if tls.recv(4) == b"srvr":
                        tls.sendall(self.SRVR.encode())
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(certs):
    srv = TlsListener(certs)
    yield srv
    srv.close()


def _config(listener, **flags) -> Config:
    return Config.resolve(flags=dict(zk=f"127.0.0.1:{listener.port}/nlpzk", zk_tls=True, connect_timeout=1.5, **flags), environ={}, toml_path=None)


def test_tls_without_zk_ca_still_verifies_the_server(listener):
    """--zk-tls without --zk-ca turned certificate verification off: any server (or anyone in the
    middle) with any certificate was accepted. It is checked against the system's CAs instead."""
    with pytest.raises(ZkUnavailableError) as failed:
        zk_client.connect(_config(listener))
    assert listener.handshakes == 0, "the client completed a TLS handshake with a server it cannot verify"
    assert "secureClientPort" in failed.value.hint and "--zk-ca" in failed.value.hint  # says TLS may be why


def test_tls_with_zk_ca_accepts_a_server_it_signed(listener, certs):
    with pytest.raises(ZkUnavailableError):  # the listener speaks TLS but not ZooKeeper
        zk_client.connect(_config(listener, zk_ca=str(certs / "ca.pem")))
    assert listener.handshakes >= 1


def test_a_client_certificate_needs_its_key(listener, certs):
    """kazoo sends a client certificate only with both files: --zk-cert alone was silently ignored."""
    with pytest.raises(ConfigError, match="--zk-key"):
        zk_client.connect(_config(listener, zk_ca=str(certs / "ca.pem"), zk_cert=str(certs / "server.pem")))


def test_zk_status_speaks_tls_to_a_tls_port(listener, certs, tmp_path):
    """`nlpzk zk status` and `nlpzk status` sent `srvr` in plain text to a TLS-only client port:
    every server read "not serving" and `zk status` exited 3 although the ensemble served."""
    import os
    import sys
    from pathlib import Path

    from nlpzk.status import servers

    env = dict(os.environ, NLPZK_ZK=f"127.0.0.1:{listener.port}/nlpzk", NLPZK_ZK_TLS="1", NLPZK_ZK_CA=str(certs / "ca.pem"), NLPZK_STATE_DIR=str(tmp_path), COLUMNS="200")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "nlpzk", "zk", "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"mode": "standalone"' in proc.stdout

    class _Fake:  # nlpzk.status.servers reads only the configuration
        config = _config(listener, zk_ca=str(certs / "ca.pem"))

    assert [r["mode"] for r in servers(_Fake())] == ["standalone"]
