"""What ``/ws`` publishes: the fan-out side of each channel (``quotes``, ``portfolio``)."""

__all__: list[str] = []
