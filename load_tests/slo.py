"""Service-level objectives: ``--slo p99_ms=100,gaps=0,delivered_per_s>=50000``.

Each objective is ``name OP number`` with OP one of ``<=``, ``>=``, ``<``,
``>`` or ``=``. A bare ``=`` takes the natural direction of the name: an
upper bound for latencies, counts of bad things and memory growth, a lower
bound for throughput. The names:

| name | what | ``=`` means |
|---|---|---|
| ``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms`` | tick-to-client latency over the run | ``<=`` |
| ``spike_p99_ms``, ``baseline_p99_ms`` | p99 of one phase (``spike`` scenario) | ``<=`` |
| ``gaps`` | updates lost (seq gaps) | ``<=`` |
| ``errors`` | protocol errors seen by the clients | ``<=`` |
| ``closes`` | connections the server closed, not counting deliberately slow clients | ``<=`` |
| ``reconnects`` | reconnections | ``<=`` |
| ``connect_failures`` | failed connection attempts | ``<=`` |
| ``rss_growth_pct`` | server memory growth, first to last quarter of the run | ``<=`` |
| ``rss_after_spike_pct`` | server memory after the spike vs before it, in % | ``<=`` |
| ``delivered_per_s`` | updates delivered per second | ``>=`` |
| ``connected_pct`` | clients connected at the end, % of the target | ``>=`` |
| ``accepted_per_s`` | ``orders``: new orders accepted per second | ``>=`` |
| ``replayed_per_s`` | ``orders``: duplicates answered from their idempotency record | ``>=`` |

In the ``orders`` scenario the latencies are those of the submits (from the
scheduled send to the answer) and ``errors`` counts the answers that are
neither an acceptance, a replay nor a 409 of a duplicate still in flight,
and the requests that got no answer.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from load_tests.result import SloCheck

__all__ = ["NAMES", "Objective", "SloError", "evaluate", "parse_slo"]

_LOWER_BOUNDED: Final = frozenset(
    {"delivered_per_s", "connected_pct", "accepted_per_s", "replayed_per_s"}
)
NAMES: Final = frozenset(
    {
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "spike_p99_ms",
        "baseline_p99_ms",
        "gaps",
        "errors",
        "closes",
        "reconnects",
        "connect_failures",
        "rss_growth_pct",
        "rss_after_spike_pct",
    }
    | _LOWER_BOUNDED
)
_OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_ITEM: Final = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>|=)\s*(\S+)\s*$")


class SloError(ValueError):
    """An ``--slo`` text that cannot be parsed; the message names the item."""


@dataclass(frozen=True, slots=True)
class Objective:
    """``name op limit``, with ``op`` one of ``<=``, ``>=``, ``<`` or ``>``."""

    name: str
    op: str
    limit: float


def parse_slo(text: str) -> tuple[Objective, ...]:
    """Parse the comma-separated objectives; raise ``SloError`` naming a bad one."""
    objectives = []
    for item in (part for part in text.split(",") if part.strip()):
        match = _ITEM.match(item)
        if match is None:
            raise SloError(f"objective {item.strip()!r} is not name<=number (or =, >=, <, >)")
        name, op, number = match.groups()
        if name not in NAMES:
            raise SloError(f"unknown objective {name!r}; known: {', '.join(sorted(NAMES))}")
        try:
            limit = float(number)
        except ValueError:
            raise SloError(f"objective {name!r}: {number!r} is not a number") from None
        if not math.isfinite(limit):
            raise SloError(f"objective {name!r}: the limit must be finite, was {number!r}")
        if op == "=":
            op = ">=" if name in _LOWER_BOUNDED else "<="
        objectives.append(Objective(name, op, limit))
    return tuple(objectives)


def evaluate(
    objectives: tuple[Objective, ...], actuals: Mapping[str, float | None]
) -> list[SloCheck]:
    """Check each objective against ``actuals``; a missing actual fails its objective."""
    checks = []
    for objective in objectives:
        actual = actuals.get(objective.name)
        ok = actual is not None and _OPS[objective.op](actual, objective.limit)
        checks.append(SloCheck(objective.name, objective.op, objective.limit, actual, ok))
    return checks
