"""TLS on both listeners, with a certificate made in the test."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import InvalidStatus

from gateway.errors import SettingsError
from gateway.server import check_tls
from gateway.settings import Secret, TlsSettings
from tests.builders import make_settings
from tests.harness import ScriptedSource, client, running_gateway

pytestmark = pytest.mark.e2e


def make_certificate(directory: Path, *, password: bytes | None = None) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tickgate test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password is not None
        else serialization.NoEncryption()
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def https_get(url: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    def get() -> tuple[int, bytes]:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.status, response.read()

    return await asyncio.to_thread(get)


async def test_both_listeners_and_ws_speak_tls(tmp_path):
    cert, key = make_certificate(tmp_path)
    settings = make_settings(tmp_path, tls={"cert_file": cert, "key_file": key})
    context = trusting(cert)
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        main = await https_get(gw.url.replace("http:", "https:") + "/healthz", context)
        api = await https_get(gw.api_url.replace("http:", "https:") + "/openapi.json", context)
        wss = gw.ws_url.replace("ws:", "wss:")
        async with client(wss, ssl=context) as c:
            pong = await c.request({"op": "ping", "id": 1})

    assert main[0] == 200
    assert api[0] == 200
    assert pong["type"] == "pong"


async def test_plain_http_on_a_tls_listener_gets_no_http_answer(tmp_path):
    cert, key = make_certificate(tmp_path)
    settings = make_settings(tmp_path, tls={"cert_file": cert, "key_file": key})
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.server.config.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()

    assert not answer.startswith(b"HTTP/1.1 200")


async def test_the_default_origins_are_https_with_tls(tmp_path):
    cert, key = make_certificate(tmp_path)
    settings = make_settings(tmp_path, tls={"cert_file": cert, "key_file": key})
    context = trusting(cert)
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        port = gw.server.config.port
        wss = gw.ws_url.replace("ws:", "wss:")
        async with client(wss, ssl=context, origin=f"https://localhost:{port}") as c:
            pong = await c.request({"op": "ping", "id": 1})
        with pytest.raises(InvalidStatus) as refused:
            async with client(wss, ssl=context, origin=f"http://localhost:{port}"):
                pass

    assert pong["type"] == "pong"
    assert refused.value.response.status_code == 403


async def test_a_key_with_a_password_is_loaded(tmp_path):
    cert, key = make_certificate(tmp_path, password=b"correct horse")
    tls = {"cert_file": cert, "key_file": key, "key_password": Secret("correct horse")}
    settings = make_settings(tmp_path, tls=tls)
    check_tls(settings.tls)
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        status, _ = await https_get(gw.url.replace("http:", "https:") + "/healthz", trusting(cert))

    assert status == 200


def test_a_wrong_password_stops_the_start_naming_the_setting(tmp_path):
    cert, key = make_certificate(tmp_path, password=b"correct horse")
    tls = TlsSettings(cert_file=cert, key_file=key, key_password=Secret("wrong"))

    with pytest.raises(SettingsError) as caught:
        check_tls(tls)

    assert caught.value.key == "TICKGATE_TLS_KEY_FILE"
    assert "wrong" not in str(caught.value)


def test_a_missing_certificate_stops_the_start(tmp_path):
    with pytest.raises(SettingsError, match="cannot load") as caught:
        check_tls(TlsSettings(cert_file=tmp_path / "absent.pem"))

    assert caught.value.key == "TICKGATE_TLS_CERT_FILE"


@pytest.mark.parametrize("field", ["key_file", "key_password"])
def test_a_key_without_a_certificate_is_refused(tmp_path, field):
    value = tmp_path / "key.pem" if field == "key_file" else Secret("x")

    with pytest.raises(SettingsError, match="needs cert_file"):
        TlsSettings(**{field: value})  # type: ignore[arg-type]
