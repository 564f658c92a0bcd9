"""Order entry: order and payment commands, their validation, idempotency and pre-trade risk.

Pure where it can be; adapters (idempotency stores, command buses) at the edge.
"""

__all__: list[str] = []
