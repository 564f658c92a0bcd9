"""The Makefile picks the interpreter: a venv made by another Python is made again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def runs(python: str) -> bool:
    # A pyenv shim is on PATH for every installed version but runs only the active ones.
    done = subprocess.run([python, "-c", "import sys"], capture_output=True, check=False)
    return done.returncode == 0


def other_supported_python() -> str:
    """A supported interpreter other than the one running the tests."""
    mine = (sys.version_info.major, sys.version_info.minor)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in (13, 12, 11):
        if (3, minor) == mine:
            continue
        candidates = [shutil.which(f"python3.{minor}")]
        candidates += [str(p) for p in sorted(pyenv.glob(f"3.{minor}.*/bin/python3.{minor}"))]
        for path in candidates:
            if path is not None and runs(path):
                return path
    message = "no second Python 3.11-3.13 interpreter on this machine"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def fake_venv(path: Path, python: str) -> None:
    """A venv as far as the Makefile can tell: its bin/python is ``python``."""
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").symlink_to(python)


def test_a_venv_of_another_python_is_made_again(tmp_path):
    venv = tmp_path / "venv"
    fake_venv(venv, sys.executable)
    other = other_supported_python()

    plan = make("-n", f"VENV={venv}", f"PYTHON={other}", f"{venv}/.dev-installed")

    assert plan.returncode == 0, plan.stderr
    assert f"rm -rf {venv}" in plan.stdout
    assert f"{other} -m venv {venv}" in plan.stdout
    assert "pip install --quiet -e '.[dev,load]'" in plan.stdout


def test_a_venv_of_the_same_python_is_kept(tmp_path):
    venv = tmp_path / "venv"
    fake_venv(venv, sys.executable)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    (venv / f".python-{version}").touch()
    (venv / ".dev-installed").touch()

    plan = make("-n", f"VENV={venv}", f"PYTHON={sys.executable}", f"{venv}/.dev-installed")

    assert plan.returncode == 0, plan.stderr
    assert "rm -rf" not in plan.stdout
    assert "-m venv" not in plan.stdout


def test_an_unsupported_python_is_refused_before_anything_is_made(tmp_path):
    venv = tmp_path / "venv"
    python = shutil.which("python3.10") or shutil.which("python2") or "/nonexistent/python"

    done = make(f"VENV={venv}", f"PYTHON={python}", f"{venv}/.dev-installed")

    assert done.returncode != 0
    assert "tickgate needs one of 3.11 3.12 3.13" in done.stderr
    assert not venv.exists()
