"""The tickgate service: settings, CLI, sources, WebSocket protocol and fan-out."""

__all__: list[str] = []
