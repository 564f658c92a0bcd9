"""Kernel benchmarks: ``python -m bench pnl`` (figures, not tests)."""

__all__: list[str] = []
