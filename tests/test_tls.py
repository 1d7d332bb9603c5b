"""amqps:// connections verify the broker: its certificate chain and its host name.

A local TLS server with certificates made here by ``openssl`` stands in for the broker's TLS
listener; the client side is exactly what the agent and the worker use.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from sortline.connection import TlsFiles, connection_parameters

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command to make test certificates")


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)  # fmt: skip
    return key, cert


def make_server_cert(folder: Path, ca_key: Path, ca_cert: Path, host: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (
        folder / "server.key",
        folder / "server.csr",
        folder / "server.pem",
        folder / "san.ext",
    )
    ext.write_text(f"subjectAltName=DNS:{host}\n")
    subprocess.run([OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", key,
                    "-out", csr], check=True, capture_output=True)  # fmt: skip
    subprocess.run([OPENSSL, "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert],
                   check=True, capture_output=True)  # fmt: skip
    return key, cert


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A TLS listener on 127.0.0.1 whose certificate names 'localhost', signed by 'site-ca'."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = make_ca(folder, "site-ca")
    _other_key, other_ca = make_ca(folder, "other-ca")
    key, cert = make_server_cert(folder, ca_key, ca_cert, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, ca_cert, other_ca
    stop.set()
    thread.join(2)
    listener.close()


def handshake(url: str, tls: TlsFiles, port: int) -> None:
    """Run the TLS handshake exactly as pika would with these connection parameters."""
    parameters = connection_parameters(url, "test", "tls", tls)
    options = parameters.ssl_options
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        options.context.wrap_socket(raw, server_hostname=options.server_hostname),
    ):
        pass


def test_amqps_with_the_site_ca_verifies_the_broker(tls_server) -> None:
    port, site_ca, _ = tls_server
    handshake(f"amqps://u:p@localhost:{port}/site", TlsFiles(ca_file=site_ca), port)


def test_a_certificate_from_another_ca_is_refused(tls_server) -> None:
    port, _, other_ca = tls_server
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(f"amqps://u:p@localhost:{port}/site", TlsFiles(ca_file=other_ca), port)


def test_a_host_name_the_certificate_does_not_name_is_refused(tls_server) -> None:
    port, site_ca, _ = tls_server
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        handshake(f"amqps://u:p@broker.elsewhere:{port}/site", TlsFiles(ca_file=site_ca), port)


def test_plain_amqp_has_no_tls_options() -> None:
    assert connection_parameters("amqp://u:p@localhost/", "test", "tls").ssl_options is None
