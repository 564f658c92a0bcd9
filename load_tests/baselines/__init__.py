"""Servers the benchmark compares tickgate with: simple implementations of its protocol."""
