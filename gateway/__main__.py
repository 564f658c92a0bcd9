"""``python -m gateway`` is the ``tickgate`` command."""

import sys

from gateway.cli import main

sys.exit(main())
