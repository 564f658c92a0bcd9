"""Market-data source adapters behind the ``MarketDataSource`` port.

- ``simulator``: the built-in market model, paced in real time.
- ``kafka``: the ``md.ticks`` topic, with a dead-letter topic.
- ``upstream``: a generic JSON vendor WebSocket feed.
"""

__all__: list[str] = []
