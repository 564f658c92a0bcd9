"""The tickgate service: the composition root, the running service and its components.

``app`` composes, ``service`` runs; ``marketdata/`` feeds prices in, ``ws/``
speaks the WebSocket protocol, ``channels/`` publishes quotes and
portfolios, ``accounts/`` keeps accounts current, ``http/`` serves the HTTP
API (docs/architecture.md, "Packages").
"""

__all__: list[str] = []
