"""The ``/ws`` protocol: a sans-I/O core and its asyncio shell.

The core takes bytes, messages and the time, and returns what to send:
``session`` (the client session's state machine), ``channelspecs`` (how each
channel's subscriptions are named and checked), ``closecodes``, ``topic``
(per-key seqs, recovery and subscribers) and ``outbox`` (per-client
buffering and frames). The shell does the I/O: ``connection`` (one socket,
plugged into uvicorn), ``flusher`` (flushing a bounded number of
connections per loop step) and ``hub`` (what every connection shares, and
the sweep timer).
"""

__all__: list[str] = []
