"""A private redis-server on a free port, which a test may stop and start again."""

from __future__ import annotations

import datetime
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Ports a server is started on after they are chosen (redis-server, gunicorn) come from a range
# of each test worker's own, below the kernel's ephemeral ports: a port picked by asking the
# kernel for one and closing it again could be handed to another worker's server meanwhile.
_SPAN = 2500
_handed: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, and that no other test worker (and no
    earlier call in this one) is handed."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    low = 10000 + (int(worker) % 8 if worker.isdigit() else 0) * _SPAN
    for _ in range(200):
        port = random.randrange(low, low + _SPAN)
        if port in _handed:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed.add(port)
        if len(_handed) > _SPAN // 2:
            _handed.clear()
        return port
    raise AssertionError(f"no free port in {low}–{low + _SPAN}")


def self_signed_certificate(folder: str) -> tuple[str, str]:
    """(certificate, key) files for 127.0.0.1, signed by nobody: what managed Redis hands out."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis.internal")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = os.path.join(folder, "redis.crt"), os.path.join(folder, "redis.key")
    with open(cert_file, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_file, key_file


class RedisServer:
    """``persistent``: an append-only file synced on every write, as a production Redis keeps,
    so a killed and restarted server still holds its locks. ``tls``: only a TLS port, with a
    self-signed certificate. ``password``: clients must AUTH, as on every managed Redis."""

    def __init__(
        self, *, persistent: bool = False, tls: bool = False, password: str | None = None
    ) -> None:
        self.persistent = persistent
        self.tls = tls
        self.password = password
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bot-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        listen = ["--port", str(self.port)]
        if self.tls:
            cert, key = self_signed_certificate(self.dir)
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert]
            listen += ["--tls-key-file", key, "--tls-auth-clients", "no"]
        self.process = subprocess.Popen(
            [
                self.binary,
                *listen,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *(
                    ["--appendonly", "yes", "--appendfsync", "always"]
                    if self.persistent
                    else ["--appendonly", "no"]
                ),
                *(["--requirepass", self.password] if self.password else []),
                "--dir",
                self.dir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = self.client(socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def client(self, **options: object) -> redis.Redis:
        """A client that trusts this server's certificate without checking it."""
        tls = {"ssl_cert_reqs": "none"} if self.tls else {}
        return redis.Redis.from_url(self.url, **tls, **options)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def flush(self) -> None:
        self.client().flushall()
