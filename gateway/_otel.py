"""The OpenTelemetry side of ``gateway.tracing``: imported only when the package is installed."""

from __future__ import annotations

import secrets

from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from gateway.tracing import SpanAttributes, Tracer

__all__ = ["OtelTracer", "otel_tracer"]

_TRACER_NAME = "tickgate"


def otel_tracer(provider: trace.TracerProvider | None = None) -> Tracer | None:
    """A tracer on ``provider`` (default: the global one), or None when none is configured."""
    provider = provider or trace.get_tracer_provider()
    # The API's defaults record nothing: without an SDK provider there is nothing to emit.
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return OtelTracer(provider)


class OtelTracer:
    """Record each hop as a span in the order's trace, under a remote parent of that trace."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._tracer = provider.get_tracer(_TRACER_NAME)

    def record(
        self,
        name: str,
        trace_id: str,
        start_ns: int,
        end_ns: int,
        attributes: SpanAttributes,
    ) -> None:
        """Emit one finished span ``name`` in trace ``trace_id`` (32 hex digits)."""
        try:
            trace_int = int(trace_id, 16)
        except ValueError:
            return  # not a W3C trace id: nothing to attach the span to
        # The hop's parent is the trace itself: a remote span of that trace
        # (the API's caller, or the hop before, which ran elsewhere).
        parent = SpanContext(
            trace_id=trace_int,
            span_id=int.from_bytes(secrets.token_bytes(8), "big") or 1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        ctx = trace.set_span_in_context(NonRecordingSpan(parent), context.Context())
        span = self._tracer.start_span(
            name, context=ctx, start_time=start_ns, attributes=dict(attributes)
        )
        span.end(end_time=max(end_ns, start_ns))
