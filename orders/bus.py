"""The command bus port: the durable hand-off from order entry to the ledger.

``submit`` returns only once the command is durable (Kafka acknowledged it
with ``acks=all``, or the embedded inbox committed it); that is what the
API's ``202`` means. Adapters: ``orders.kafka`` (topic ``orders.submitted``,
key ``account_id``) and the ledger's embedded inbox (``ledger.inbox``, a
table in the ledger's SQLite store). One contract suite runs against both.

``CommandLookup`` answers the reconciliation question of an expired
idempotency lease: did a command with this transfer id reach the ledger's
hand-off queue or store? The ledger implements it over its inbox and its
store of processed transfers.
"""

from __future__ import annotations

from typing import Protocol

from orders.commands import Command
from orders.types import TransferId

__all__ = ["CommandBus", "CommandLookup"]


class CommandBus(Protocol):
    """Where accepted commands are handed to the ledger (port)."""

    async def start(self) -> None:
        """Connect; must not fail because the server is down (``submit`` will raise)."""
        ...

    async def stop(self) -> None:
        """Flush and release connections."""
        ...

    async def submit(self, command: Command) -> None:
        """Return once ``command`` is durable; raise ``BusUnavailable`` otherwise.

        Submitting a command whose ``transfer_id`` was submitted before is
        allowed: the ledger dedupes on it.
        """
        ...


class CommandLookup(Protocol):
    """Find a command the ledger has received, by transfer id (port)."""

    async def find_command(self, transfer_id: TransferId) -> Command | None:
        """Return the command if the hand-off queue or the ledger holds it, else None.

        Raises ``BusUnavailable`` when the answer is unknown (store down).
        """
        ...
