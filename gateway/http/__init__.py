"""The HTTP API: Starlette routes beside ``/ws``."""

__all__: list[str] = []
