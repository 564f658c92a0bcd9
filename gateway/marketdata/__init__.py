"""Market data: the source port, its adapters, decoding and the pipeline into the PriceBook.

- ``source``: the ``MarketDataSource`` port the adapters below implement.
- ``pipeline``: applies each batch to the PriceBook and notifies its
  listeners.
- ``codec``: decoding JSON tick records.
- ``simulator``: the built-in market model, paced in real time.
- ``kafka``: the ``md.ticks`` topic, with a dead-letter topic (``_deadletters``).
- ``upstream``: a generic JSON vendor WebSocket feed.
"""

__all__: list[str] = []
