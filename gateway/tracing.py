"""Order traces: OpenTelemetry spans when the SDK is installed and configured, else nothing.

Every order carries a W3C trace id from the API (the request's
``traceparent``, else one derived from its transfer id) through the
command bus, the ledger's events and the ``orders`` channel. At each hop
the gateway records one span in that trace:

- ``tickgate.order.accept``: from the command's acceptance time to the
  moment the API made it durable on the bus;
- ``tickgate.ledger.commit``: the ledger batch that wrote one of the
  order's events, from the batch's time to its commit;
- ``tickgate.orders.push``: from the event's time in the ledger to its
  push to the account's ``orders`` subscribers.

``build_tracer`` returns ``NO_TRACER`` unless the ``opentelemetry``
package is installed (the ``otel`` extra) and a tracer provider is
configured (``opentelemetry-instrument tickgate run``, or
``trace.set_tracer_provider`` before ``create_app``). Without the package
nothing of OpenTelemetry is imported and ``record`` is an empty call.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Final, Protocol

__all__ = ["NO_TRACER", "NoTracer", "Tracer", "build_tracer"]

SpanAttributes = Mapping[str, str | int]


class Tracer(Protocol):
    """Record one finished span of an order's trace."""

    def record(
        self,
        name: str,
        trace_id: str,
        start_ns: int,
        end_ns: int,
        attributes: SpanAttributes,
    ) -> None: ...


class NoTracer:
    """The tracer when OpenTelemetry is absent or not configured: records nothing."""

    def record(
        self,
        name: str,
        trace_id: str,
        start_ns: int,
        end_ns: int,
        attributes: SpanAttributes,
    ) -> None:
        """Do nothing."""


NO_TRACER: Final = NoTracer()


def build_tracer() -> Tracer:
    """OpenTelemetry's tracer if the package is installed and a provider is set, else none."""
    # find_spec looks for the package without importing it.
    if importlib.util.find_spec("opentelemetry") is None:
        return NO_TRACER
    from gateway._otel import otel_tracer

    return otel_tracer() or NO_TRACER
