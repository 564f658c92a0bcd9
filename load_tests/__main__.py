"""``python -m load_tests``: the same as ``tickgate-load``."""

from __future__ import annotations

import sys

from load_tests.cli import main

sys.exit(main())
