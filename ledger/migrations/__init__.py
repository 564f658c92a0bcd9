"""Versioned schema migrations: ``<dialect>/NNNN_<name>.sql``, applied in order at start.

Each store keeps the versions it applied in a ``ledger_migrations`` table
and applies the missing ones, each in one transaction; a schema newer than
the code is refused.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["migrations"]


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """The (version, file name, sql) of every migration of ``dialect``, in order."""
    folder = resources.files("ledger") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
