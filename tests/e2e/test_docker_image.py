"""The Docker image's file set, built the way the Dockerfile builds it, serves ``/healthz``.

No container engine runs here, so the test does what the Dockerfile does,
step by step: it copies exactly what the ``COPY`` lines name into a staging
directory, makes a fresh venv that cannot see the repository, runs the
``RUN`` commands there (the dependencies from the metadata, then the code),
starts ``tickgate run`` from that venv and runs the image's ``HEALTHCHECK``
against it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import TEST_SECRET
from tests.harness import http, poll_until
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("gateway", "pricing", "portfolio", "orders", "ledger")
# Commands of the RUN lines that change the host rather than the file set.
HOST_ONLY = ("useradd",)


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        out.append((keyword.upper(), arguments.strip()))
    return out


def copy_sources(arguments: str) -> tuple[list[str], str]:
    words = [w for w in shlex.split(arguments) if not w.startswith("--")]
    return words[:-1], words[-1]


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_the_base_image_is_pinned():
    (base,) = [arguments for keyword, arguments in DOCKERFILE if keyword == "FROM"]

    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


def test_dependencies_are_installed_before_the_code_is_copied():
    # Layer caching: a code edit must not reinstall every dependency.
    steps = [(k, a) for k, a in DOCKERFILE if k in ("COPY", "RUN")]
    install_deps = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "-r " in a)
    copied_before = [copy_sources(a)[0] for k, a in steps[:install_deps] if k == "COPY"]

    assert [s for sources in copied_before for s in sources] == ["pyproject.toml", "README.md"]


def test_every_package_is_copied():
    copied = {
        source.rstrip("/")
        for keyword, arguments in DOCKERFILE
        if keyword == "COPY"
        for source in copy_sources(arguments)[0]
    }

    assert set(PACKAGES) <= copied


def stage(tmp_path: Path) -> Path:
    """The image's /app: exactly what the COPY lines name."""
    app = tmp_path / "app"
    app.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for keyword, arguments in DOCKERFILE:
        if keyword != "COPY":
            continue
        sources, destination = copy_sources(arguments)
        target = app / destination
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, target, ignore=ignore)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    return app


def run_commands(arguments: str) -> list[str]:
    """The ``&&``-joined commands of a RUN line, without the host-only ones."""
    commands = [c.strip() for c in arguments.split("&&")]
    return [c for c in commands if not c.startswith(HOST_ONLY)]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in DOCKERFILE:
        if keyword == "ENV":
            for word in shlex.split(arguments):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def healthcheck_command() -> list[str]:
    (arguments,) = [a for k, a in DOCKERFILE if k == "HEALTHCHECK"]
    _, _, exec_form = arguments.partition("CMD ")
    command = json.loads(exec_form)
    assert isinstance(command, list)
    return [str(word) for word in command]


def build(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the staged /app installed by the image's RUN lines; its env."""
    app = stage(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    build_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TICKGATE_", "PYTHON"))},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
    }
    for keyword, arguments in DOCKERFILE:
        if keyword == "RUN":
            for command in run_commands(arguments):
                subprocess.run(
                    ["bash", "-c", command],
                    cwd=app,
                    env=build_env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    timeout=600,
                )
    return venv, build_env


def imported_from(venv: Path, env: dict[str, str], cwd: Path) -> list[str]:
    """Where the venv's python finds each package, run from ``cwd``."""
    script = f"import {', '.join(PACKAGES)}\n" + "".join(
        f"print({name}.__file__)\n" for name in PACKAGES
    )
    done = subprocess.run(
        [venv / "bin" / "python", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def health_check(venv: Path, env: dict[str, str]) -> int:
    """The exit status of the image's HEALTHCHECK command under ``env``."""
    check = healthcheck_command()
    check[0] = str(venv / "bin" / check[0])
    return subprocess.run(
        check, env=env, timeout=10, check=False, stderr=subprocess.DEVNULL
    ).returncode


async def test_the_image_file_set_installs_and_serves_healthz_on_the_configured_port(tmp_path):
    venv, build_env = await asyncio.to_thread(build, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # The venv sees the installed copy only, never the repository.
    where = await asyncio.to_thread(imported_from, venv, build_env, outside)
    port = free_port()
    env = {
        **build_env,
        **image_env(),
        "TICKGATE_HOST": "127.0.0.1",
        "TICKGATE_PORT": str(port),
        "TICKGATE_API_HOST": "127.0.0.1",
        "TICKGATE_API_PORT": str(free_port()),
        "TICKGATE_DATA_DIR": str(tmp_path / "data"),
        "TICKGATE_AUTH_JWT_SECRET": TEST_SECRET,
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": "20",
    }
    process = await asyncio.create_subprocess_exec(
        venv / "bin" / "tickgate", "run", cwd=outside, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:

        async def healthy() -> bool:
            try:
                status, _ = await http("GET", f"http://127.0.0.1:{port}/healthz")
            except OSError:
                return process.returncode is not None  # it ended: stop polling, fail below
            return status == 200

        await poll_until(healthy, what="tickgate run from the image", timeout_s=60)
        is_running = process.returncode is None
        if not is_running:
            _, early = await process.communicate()
            raise AssertionError(f"tickgate run ended early:\n{early.decode()[-3000:]}")
        passes = await asyncio.to_thread(health_check, venv, env)
        wrong_port = {**env, "TICKGATE_PORT": str(free_port())}
        fails = await asyncio.to_thread(health_check, venv, wrong_port)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log = stderr.decode()
    assert all(path.startswith(str(venv)) for path in where), where
    assert is_running, log
    assert "ModuleNotFoundError" not in log
    assert passes == 0
    assert fails != 0
    assert process.returncode == 0, log
