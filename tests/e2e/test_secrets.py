"""A planted secret never reaches a log line, an HTTP answer or a WebSocket frame.

The signing secret, the TLS key's passphrase and a Redis password are
planted through the environment and files, as an operator gives them; the
gateway is then driven through every HTTP route of both listeners (with and
without tokens, good and bad), a WebSocket session with good and bad
tokens, and a settings dump, and everything it said is searched for them.
"""

from __future__ import annotations

import logging
import re
import secrets

import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.devsecret import DEV_SECRET_FILE, load_or_create_dev_secret
from gateway.settings import Secret, Settings
from tests.builders import make_settings, make_token
from tests.harness import client, request, running_gateway

pytestmark = pytest.mark.e2e

# Route parameters: a real one and an unknown one, so both answers are seen.
PARAMS = {"account": "DEMO-0001", "name": "client.js", "path": "v1/orders"}


def planted() -> str:
    return "planted-" + secrets.token_hex(24)


def test_the_settings_dump_redacts_every_secret(tmp_path):
    jwt_secret, password, redis_password = planted(), planted(), planted()
    secret_file = tmp_path / "jwt-secret"
    secret_file.write_text(jwt_secret + "\n", encoding="utf-8")
    (tmp_path / "cert.pem").write_text("unused", encoding="utf-8")
    settings = Settings.from_env(
        {
            "TICKGATE_AUTH_JWT_SECRET_FILE": str(secret_file),
            "TICKGATE_TLS_CERT_FILE": str(tmp_path / "cert.pem"),
            "TICKGATE_TLS_KEY_PASSWORD": password,
            "TICKGATE_REDIS_URL": f"redis://user:{redis_password}@cache:6379/0",
            "TICKGATE_LEDGER_URL": f"postgresql://ledger:{redis_password}@db/ledger",
        }
    )

    dump = settings.redacted()
    text = f"{dump} {settings!r} {settings!s}"

    for secret in (jwt_secret, password, redis_password):
        assert secret not in text
    assert dump["TICKGATE_AUTH_JWT_SECRET"] == "***"
    assert dump["TICKGATE_TLS_KEY_PASSWORD"] == "***"
    assert dump["TICKGATE_LEDGER_URL"] == "***"
    assert dump["TICKGATE_REDIS_URL"] == "redis://user:***@cache:6379/0"


@pytest.fixture
def request_node(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    return request


def answers_text(answers: list[tuple[str, int, bytes, dict[str, str]]]) -> str:
    return "\n".join(
        f"{what} {status} {headers} {body!r}" for what, status, body, headers in answers
    )


async def test_a_planted_secret_is_in_no_log_answer_or_frame(tmp_path, caplog, request_node):
    caplog.set_level(logging.DEBUG)
    # As configure_logging leaves it at any level: websockets from WARNING up.
    websockets_logger = logging.getLogger("websockets")
    websockets_logger.setLevel(logging.WARNING)
    request_node.addfinalizer(lambda: websockets_logger.setLevel(logging.NOTSET))
    secret = planted()
    settings = make_settings(tmp_path, auth={"jwt_secret": Secret(secret)})
    good = make_token(subject="trader-1", accounts=["DEMO-0001"], secret=secret)
    admin = make_token(subject="ops", accounts=[], scopes=["admin"], secret=secret)
    bad = make_token(subject="mallory", secret="x" * 40)
    answers: list[tuple[str, int, bytes, dict[str, str]]] = []
    async with running_gateway(settings) as gw:
        app = gw.server.config.app
        assert isinstance(app, Starlette)
        main_routes = [r for r in app.routes if isinstance(r, Route)]
        openapi = await request("GET", f"{gw.api_url}/openapi.json")
        api_paths = list(orjson.loads(openapi.body)["paths"])
        targets = [(gw.url, r.path, sorted(r.methods or ())) for r in main_routes]
        targets += [(gw.api_url, p, ["GET", "POST", "DELETE"]) for p in api_paths]
        targets += [(gw.api_url, p, ["GET"]) for p in ("/healthz", "/metrics", "/openapi.json")]
        for base, template, methods in targets:
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMS.get(m[1], "x-1"), template)
            for method in methods:
                if method == "HEAD":
                    continue
                for token in (None, good, admin, bad):
                    answer = await request(
                        method,
                        base + path,
                        body=b"{}" if method == "POST" else None,
                        token=token,
                        headers={"Idempotency-Key": "k-1"} if method == "POST" else None,
                    )
                    answers.append((f"{method} {path}", answer.status, answer.body, answer.headers))
        frames: list[object] = []
        async with client(f"{gw.ws_url}?token={good}") as c:
            await c.until(lambda m: m["type"] == "authenticated")
            await c.send({"op": "subscribe", "channel": "portfolio", "account": "DEMO-0001"})
            await c.send({"op": "bogus", "id": 2})
            await c.until(lambda m: m.get("id") == 2)
            frames += c.received
        async with client(f"{gw.ws_url}?token={bad}") as c:
            await c.closed()
            frames += c.received
        async with client(gw.ws_url, headers={"Authorization": f"Bearer {bad}"}) as c:
            await c.closed()
            frames += c.received

    logs = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert len(answers) > 50, "every route was tried"
    assert {status for _, status, _, _ in answers} >= {200, 401}
    assert secret not in answers_text(answers)
    assert {m["type"] for m in frames} >= {"authenticated", "error"}  # type: ignore[index]
    assert secret not in str(frames)
    assert secret not in logs
    for token in (good, admin, bad):
        assert token not in logs, "tokens are never logged"
    assert "starting tickgate" in logs


def test_the_dev_secret_file_is_created_0600_in_a_0700_directory(tmp_path):
    data_dir = tmp_path / "data"
    load_or_create_dev_secret(data_dir)

    assert (data_dir / DEV_SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert data_dir.stat().st_mode & 0o777 == 0o700
