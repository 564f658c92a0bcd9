"""The docs and the code name the same settings keys, error codes and close codes.

Both ways: everything the code defines is documented, and everything the
reference tables document exists in the code. Codes are read from the
source with ``ast`` (the literal code passed to each error), keys from the
settings themselves.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from gateway import environment
from gateway.settings import Settings
from gateway.ws import closecodes

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Keys the docs name on purpose although no setting has them.
# The example of an unknown key, and removed keys their migration notes name.
EXAMPLE_KEYS = {"TICKGATE_FOO", "TICKGATE_RISK_MIN_SAMPLES", "TICKGATE_FANOUT_RECOVERY_HISTORY"}
SETTINGS_KEY = r"\bTICKGATE_[A-Z][A-Z0-9_]*[A-Z0-9]\b"
# The position of the code; a ProblemType is a problem+json code of a gateway route.
ERROR_CLASSES = {"ProtocolError": 0, "AuthError": 0, "HttpError": 1, "ProblemType": 0}


def doc_text() -> str:
    paths = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def section(path: Path, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    text = path.read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n")
    end = text.find(f"\n{level} ", start + len(heading) + 2)
    return text[start : end if end != -1 else len(text)]


def first_column_codes(table_text: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", table_text, re.MULTILINE))


def code_settings_keys() -> set[str]:
    keys = set(environment.env_keys(Settings)) | set(environment.env_aliases(Settings))
    # The documented secrets' file variants.
    return keys | {"TICKGATE_AUTH_JWT_SECRET_FILE", "TICKGATE_TLS_KEY_PASSWORD_FILE"}


def documented_settings_keys() -> set[str]:
    return set(re.findall(SETTINGS_KEY, doc_text())) - EXAMPLE_KEYS


def error_codes_in(source: str) -> Iterator[str]:
    """Literal codes passed to the error classes, and of error messages built as dicts."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            position = ERROR_CLASSES.get(node.func.id)
            if position is not None and len(node.args) > position:
                arg = node.args[position]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value
        elif isinstance(node, ast.Dict):
            fields = {
                k.value: v.value
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
            code = fields.get("code")
            if fields.get("type") == "error" and isinstance(code, str):
                yield code


def code_error_codes() -> set[str]:
    codes: set[str] = set()
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        codes.update(error_codes_in(path.read_text(encoding="utf-8")))
    return codes


def documented_error_codes() -> set[str]:
    ws = first_column_codes(section(DOCS / "protocol.md", "## Error codes"))
    http_tables = section(DOCS / "operations.md", "## HTTP endpoints")
    http = set(re.findall(r"^\| `\d{3}` \| `([a-z_]+)` \|", http_tables, re.MULTILINE))
    return ws | http


def code_close_codes() -> set[str]:
    return {str(getattr(closecodes, name)) for name in closecodes.__all__}


def documented_close_codes() -> set[str]:
    return first_column_codes(section(DOCS / "protocol.md", "## Close codes"))


def test_every_settings_key_is_documented():
    assert code_settings_keys() - documented_settings_keys() == set()


def test_every_documented_settings_key_exists():
    assert documented_settings_keys() - code_settings_keys() == set()


def test_every_error_code_is_documented():
    assert code_error_codes() - documented_error_codes() == set()


def test_every_documented_error_code_exists():
    assert documented_error_codes() - code_error_codes() == set()


def test_every_close_code_is_documented():
    assert code_close_codes() - documented_close_codes() == set()


def test_every_documented_close_code_exists():
    assert documented_close_codes() - code_close_codes() == set()


# --- the readers themselves ------------------------------------------------------------


def test_reader_finds_codes_passed_to_errors_and_built_as_error_dicts():
    source = (
        'raise ProtocolError("bad_json", "no")\n'
        'raise HttpError(404, "unknown_account", "no")\n'
        'e = AuthError(code, "variable codes are not literal")\n'
        'm = {"type": "error", "code": "too_many_errors"}\n'
        'n = {"type": "pong", "code": "not_an_error"}\n'
        'P = ProblemType("route_not_proxied", 404, "title")\n'
    )

    assert sorted(error_codes_in(source)) == [
        "bad_json",
        "route_not_proxied",
        "too_many_errors",
        "unknown_account",
    ]


def test_the_readers_find_what_they_look_for():
    assert "TICKGATE_WS_MAX_INBOUND_BYTES" in code_settings_keys()
    assert "TICKGATE_WS_MAX_INBOUND_BYTES" in documented_settings_keys()
    found = {"bad_json", "token_missing", "spike_unavailable", "demo_token_required"}
    assert found <= code_error_codes()
    assert found <= documented_error_codes()
    assert {"1000", "4008"} <= code_close_codes() & documented_close_codes()
