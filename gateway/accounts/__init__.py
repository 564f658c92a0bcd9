"""Keeping accounts current around the portfolio engine.

The risk cadence, the day roll, the position cache and the positions file.
"""

__all__: list[str] = []
