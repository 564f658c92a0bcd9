"""Portfolio analytics: positions, P&L, exposures, greeks and risk (pure numpy core)."""

__all__: list[str] = []
