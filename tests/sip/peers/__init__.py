"""Real SIP peers for the trunk tests: sipp as a UAS (UDP/TCP), kamailio with TLS."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")


def need(program: str) -> str:
    path = shutil.which(program) or (f"/usr/sbin/{program}" if Path(
        f"/usr/sbin/{program}").exists() else None)
    if path is None:
        pytest.skip(f"{program} is not installed (tests/debian-packages.txt)")
    return path


def free_port(kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@dataclass
class Sipp:
    proc: asyncio.subprocess.Process
    port: int
    messages: Path

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_sipp(tmp: Path, scenario: str, transport: str, port: int) -> Sipp:
    """sipp as a UAS on 127.0.0.1:port answering with ``peers/<scenario>.xml``."""
    sipp = need("sipp")
    messages = tmp / f"sipp-{scenario}-{transport}-{port}.log"
    proc = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(HERE / f"{scenario}.xml"), "-t", "u1" if transport == "udp" else "t1",
        "-i", "127.0.0.1", "-p", str(port), "-nostdin", "-trace_msg", "-message_file",
        str(messages), "-max_socket", "64",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    await _wait_listening(port, transport)
    return Sipp(proc, port, messages)


async def _wait_listening(port: int, transport: str) -> None:
    proto = "udp" if transport == "udp" else "tcp"
    async with asyncio.timeout(10):
        while True:
            out = await asyncio.create_subprocess_exec(
                "ss", "-Hln", f"--{proto}", f"sport = :{port}",
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            text, _ = await out.communicate()
            if text.strip():
                return
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def sipp_uas(tmp: Path, scenario: str, transport: str,
                   port: int | None = None) -> AsyncIterator[Sipp]:
    peer = await start_sipp(tmp, scenario, transport, port or free_port())
    try:
        yield peer
    finally:
        await peer.stop()


@dataclass(frozen=True)
class TestCa:
    ca: Path
    cert: Path
    key: Path


def make_ca(tmp: Path) -> TestCa:
    """A test CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    need("openssl")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=clgwd test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
        "server.key", "-out", "server.csr")
    (tmp / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    return TestCa(tmp / "ca.pem", tmp / "server.pem", tmp / "server.key")


KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
listen=tls:127.0.0.1:{tls_port}
enable_tls=yes
mpath="{modules}/"
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
modparam("tls", "config", "{tls_cfg}")
{auth_module}
request_route {{
    {auth_route}
    if (is_method("OPTIONS")) {{
        append_to_reply("Accept: application/sdp\\r\\n");
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("501", "Not Implemented");
}}
"""

TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


@dataclass
class Kamailio:
    proc: asyncio.subprocess.Process
    port: int
    tls_port: int

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


AUTH_ROUTE = """if (!pv_proxy_authenticate("clgwd-test", "s3cret-pass", "0")
        || $au != "trunkuser") {
        proxy_challenge("clgwd-test", "1");
        exit;
    }"""


@contextlib.asynccontextmanager
async def kamailio(tmp: Path, ca: TestCa, children: int = 2,
                   auth: bool = False) -> AsyncIterator[Kamailio]:
    """kamailio answering OPTIONS on UDP/TCP ``port`` and TLS ``tls_port`` (127.0.0.1);
    with ``auth`` only after a 407 digest challenge for trunkuser / s3cret-pass."""
    binary = need("kamailio")
    if not (KAMAILIO_MODULES / "tls.so").exists():
        pytest.skip("kamailio-tls-modules is not installed")
    port, tls_port = free_port(), free_port(socket.SOCK_STREAM)
    run = tmp / "kamailio-run"
    run.mkdir(exist_ok=True)
    tls_cfg = tmp / "tls.cfg"
    tls_cfg.write_text(TLS_CFG.format(key=ca.key, cert=ca.cert))
    cfg = tmp / "kamailio.cfg"
    cfg.write_text(KAMAILIO_CFG.format(port=port, tls_port=tls_port, modules=KAMAILIO_MODULES,
                                       tls_cfg=tls_cfg,
                                       auth_module='loadmodule "auth.so"' if auth else "",
                                       auth_route=AUTH_ROUTE if auth else "").replace(
        "children=2\n", f"children={children}\n"))
    log = (tmp / "kamailio.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        binary, "-f", str(cfg), "-DD", "-E", "-m", "64", "-M", "8", "-Y", str(run),
        "-P", str(run / "kamailio.pid"), stdout=log, stderr=log)
    try:
        await _wait_listening(tls_port, "tls")
        await _wait_listening(port, "udp")
        yield Kamailio(proc, port, tls_port)
    finally:
        peer = Kamailio(proc, port, tls_port)
        await peer.stop()
        log.close()


def make_self_signed(tmp: Path, name: str, *, expired: bool = False) -> TestCa:
    """A self-signed certificate for 127.0.0.1 and localhost (``ca`` is the cert itself);
    ``expired`` makes it valid only for a day that has passed."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=3 if expired else 1)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=1 if expired
                                                                          else 3))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return TestCa(cert_path, cert_path, key_path)
