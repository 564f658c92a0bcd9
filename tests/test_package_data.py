"""An installed wheel carries the files the gateway reads at run time, the dashboard's included."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gateway.http.dashboard import STATIC_DIR, load_static_files

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "pricing", "portfolio", "orders", "ledger", "load_tests")


@pytest.mark.slow
def test_the_wheel_ships_every_file_of_the_dashboard(tmp_path):
    # Build from a copy, so the build leaves nothing in the working tree.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("tickgate-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())

    shipped = {f"gateway/http/static/{name}" for name in load_static_files()}
    assert shipped <= names
    assert {f"gateway/http/static/{p.name}" for p in STATIC_DIR.iterdir()} == shipped
    assert "pricing/data/instruments.csv" in names
