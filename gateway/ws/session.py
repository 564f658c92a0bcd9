"""The client session: the WebSocket protocol's state machine, without I/O.

A ``ClientSession`` takes inbound message bytes and the current time and
returns a ``SessionOutput``: reply messages (plain dicts), commands for the
fan-out (subscribe, unsubscribe) and, when the connection must end, a close
decision. The transport adapter only pumps between the socket and this class,
so every rule here is testable with bytes and a number for the clock.

Rules enforced here (docs/protocol.md lists their codes): message size, JSON
shape, known ops and channels, authentication and its deadline, token
expiry, the connections per principal, the inbound rate limit, the
subscription limit and the abuse threshold (too many errors in a window).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from gateway.access import PrincipalSlots
from gateway.auth import Principal, TokenVerifier
from gateway.errors import AuthError, ProtocolError
from gateway.settings import WebSocketSettings
from gateway.ws import closecodes

__all__ = [
    "ChannelSpec",
    "ClientSession",
    "Close",
    "Command",
    "Message",
    "Recovery",
    "MAX_RATE_MS_LIMIT",
    "RequestId",
    "SessionOutput",
    "Subscribe",
    "Unsubscribe",
    "with_request_id",
]

Message = dict[str, object]
RequestId = int | str

_NS_PER_S: Final = 1_000_000_000
_MAX_ID_CHARS: Final = 64
_MAX_ECHO_CHARS: Final = 64
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_OPS: Final = ("auth", "subscribe", "unsubscribe", "ping")
MAX_RATE_MS_LIMIT: Final = 60_000  # the largest max_rate_ms a subscribe may ask for


@dataclass(frozen=True, slots=True)
class Recovery:
    """A resubscribe's position: the epoch it saw and its last seq per key."""

    epoch: str
    last_seq: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Command: subscribe the connection to ``keys`` of ``channel``."""

    channel: str
    keys: tuple[str, ...]
    request_id: RequestId | None
    recovery: Recovery | None = None
    max_rate_ms: int = 0  # at most one update per key this often (0: every update)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Command: drop the connection's subscriptions to ``keys`` of ``channel``."""

    channel: str
    keys: tuple[str, ...]
    request_id: RequestId | None


Command = Subscribe | Unsubscribe


@dataclass(frozen=True, slots=True)
class Close:
    """Decision to close the connection with a WebSocket close code."""

    code: int
    reason: str


@dataclass(slots=True)
class SessionOutput:
    """What the transport must do after one call into the session."""

    messages: list[Message] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    close: Close | None = None


class ChannelSpec(Protocol):
    """How the session validates subscriptions to one channel."""

    @property
    def name(self) -> str:
        """Channel name on the wire (``quotes``)."""
        ...

    @property
    def is_public(self) -> bool:
        """Whether anonymous clients may subscribe when that is allowed."""
        ...

    @property
    def conflates(self) -> bool:
        """Whether updates carry absolute state and may be conflated (``max_rate_ms``)."""
        ...

    def parse_keys(self, message: Mapping[str, object]) -> tuple[str, ...]:
        """Return the keys a subscribe or unsubscribe names; raise ``ProtocolError``."""
        ...

    def check_keys(self, keys: Sequence[str], principal: Principal | None) -> None:
        """Raise ``ProtocolError`` when a key is unknown or not allowed."""
        ...

    def refused(self, keys: Sequence[str], principal: Principal | None) -> list[str]:
        """The keys ``principal`` may not read (checked again when a token is renewed)."""
        ...


class ClientSession:
    """Protocol state of one WebSocket connection."""

    def __init__(
        self,
        settings: WebSocketSettings,
        *,
        channels: Mapping[str, ChannelSpec],
        verifier: TokenVerifier,
        allow_anonymous_quotes: bool,
        decode_json: Callable[[bytes], object],
        now_ns: int,
        principal_slots: PrincipalSlots | None = None,
    ) -> None:
        self._settings = settings
        self._decode_json = decode_json
        self._channels = channels
        self._verifier = verifier
        self._allow_anonymous = allow_anonymous_quotes
        self._slots = principal_slots
        self._holds_slot = False
        self._auth_deadline_ns = now_ns + int(settings.auth_deadline_s * _NS_PER_S)
        self._tokens = float(settings.inbound_burst)
        self._tokens_at_ns = now_ns
        self._error_times_ns: deque[int] = deque()
        self.principal: Principal | None = None
        self.subscriptions: dict[str, set[str]] = {}
        self.is_closed = False

    @property
    def subscription_count(self) -> int:
        """Keys subscribed across all channels."""
        return sum(len(keys) for keys in self.subscriptions.values())

    def open(self, token: str | None, now_ns: int) -> SessionOutput:
        """Start the session; ``token`` came with the handshake (header or query)."""
        if token is None:
            return SessionOutput()
        return self._authenticate(token, None, now_ns)

    def receive(self, data: bytes, now_ns: int, *, is_binary: bool = False) -> SessionOutput:
        """Handle one inbound message (its raw payload bytes)."""
        if self.is_closed:
            return SessionOutput()
        size = len(data)
        if size > self._settings.max_inbound_bytes:
            limit = self._settings.max_inbound_bytes
            error = ProtocolError(
                "message_too_big",
                f"message must be at most {limit} bytes, was {size}",
                close_code=closecodes.MESSAGE_TOO_BIG,
            )
            return self._fail(error, None, now_ns)
        if not self._take_token(now_ns):
            retry_after_ms = int(1000 * (1.0 - self._tokens) / self._settings.inbound_rate_per_s)
            error = ProtocolError(
                "rate_limited",
                f"at most {self._settings.inbound_rate_per_s:g} messages per second",
                is_retriable=True,
                extra={"retry_after_ms": max(retry_after_ms, 1)},
            )
            return self._fail(error, None, now_ns)
        if is_binary:
            error = ProtocolError("bad_frame", "binary frames are not accepted; send JSON text")
            return self._fail(error, None, now_ns)
        request_id: RequestId | None = None
        try:
            message = self._parse_json_object(data)
            request_id = _parse_request_id(message)
            return self._dispatch(message, request_id, now_ns)
        except ProtocolError as e:
            return self._fail(e, request_id, now_ns)

    def end(self) -> None:
        """The connection is gone: give back its principal's connection slot."""
        if self._holds_slot and self._slots is not None and self.principal is not None:
            self._slots.release(self.principal.subject)
        self._holds_slot = False

    def poll(self, now_ns: int) -> SessionOutput:
        """Check deadlines: the auth deadline and token expiry."""
        if self.is_closed:
            return SessionOutput()
        principal = self.principal
        if principal is not None:
            if self._verifier.is_expired(principal, now_ns / _NS_PER_S):
                message = f"token expired at {principal.expires_at_s}"
                error = ProtocolError("token_expired", message, close_code=closecodes.UNAUTHORIZED)
                return self._fail(error, None, now_ns)
        elif now_ns >= self._auth_deadline_ns and not self.subscriptions:
            deadline = self._settings.auth_deadline_s
            error = ProtocolError(
                "auth_timeout",
                f"authenticate or subscribe within {deadline:g} s of connecting",
                close_code=closecodes.UNAUTHORIZED,
            )
            return self._fail(error, None, now_ns)
        return SessionOutput()

    # --- ops -----------------------------------------------------------------

    def _dispatch(
        self, message: Mapping[str, object], request_id: RequestId | None, now_ns: int
    ) -> SessionOutput:
        op = message.get("op")
        if op == "ping":
            return SessionOutput(messages=[with_request_id({"type": "pong"}, request_id)])
        if op == "auth":
            token = message.get("token")
            if not isinstance(token, str) or not token:
                raise ProtocolError("bad_request", "auth needs a non-empty string token")
            return self._authenticate(token, request_id, now_ns)
        if op == "subscribe":
            return self._subscribe(message, request_id)
        if op == "unsubscribe":
            return self._unsubscribe(message, request_id)
        shown = op if isinstance(op, str) else None
        raise ProtocolError(
            "unknown_op",
            f"op must be one of {', '.join(_OPS)}, was {_shorten(repr(op))}",
            extra={"op": _shorten(shown) if shown is not None else None},
        )

    def _authenticate(self, token: str, request_id: RequestId | None, now_ns: int) -> SessionOutput:
        try:
            principal = self._verifier.verify(token, now_ns / _NS_PER_S)
        except AuthError as e:
            error = ProtocolError(e.code, e.message, close_code=closecodes.UNAUTHORIZED)
            return self._fail(error, request_id, now_ns)
        if self.principal is not None and principal.subject != self.principal.subject:
            error = ProtocolError(
                "token_invalid",
                "a new token must be for the same subject as the connection's",
                close_code=closecodes.UNAUTHORIZED,
            )
            return self._fail(error, request_id, now_ns)
        if self.principal is None and self._slots is not None:
            if not self._slots.acquire(principal.subject):
                limit = self._slots.limit
                error = ProtocolError(
                    "too_many_connections",
                    f"at most {limit} connections per token subject",
                    close_code=closecodes.TOO_MANY_CONNECTIONS,
                )
                return self._fail(error, request_id, now_ns)
            self._holds_slot = True
        self.principal = principal
        reply: Message = {
            "type": "authenticated",
            "sub": principal.subject,
            "accounts": sorted(principal.accounts),
            "scopes": sorted(principal.scopes),
            "exp": principal.expires_at_s,
        }
        return SessionOutput(
            messages=[with_request_id(reply, request_id)], commands=self._revoke(principal)
        )

    def _revoke(self, principal: Principal) -> list[Command]:
        # A renewed token may grant less: drop what it no longer allows.
        commands: list[Command] = []
        for name, keys in list(self.subscriptions.items()):
            refused = tuple(self._channels[name].refused(sorted(keys), principal))
            if refused:
                keys.difference_update(refused)
                if not keys:
                    del self.subscriptions[name]
                commands.append(Unsubscribe(name, refused, None))
        return commands

    def _channel(self, message: Mapping[str, object]) -> ChannelSpec:
        name = message.get("channel")
        spec = self._channels.get(name) if isinstance(name, str) else None
        if spec is None:
            raise ProtocolError(
                "unknown_channel",
                f"channel must be one of {', '.join(sorted(self._channels))}, was {name!r}",
            )
        return spec

    def _subscribe(
        self, message: Mapping[str, object], request_id: RequestId | None
    ) -> SessionOutput:
        spec = self._channel(message)
        if self.principal is None and not (spec.is_public and self._allow_anonymous):
            raise ProtocolError(
                "auth_required", f"channel {spec.name} needs an authenticated token"
            )
        keys = spec.parse_keys(message)
        spec.check_keys(keys, self.principal)
        recovery = _parse_recovery(message, keys)
        max_rate_ms = _parse_max_rate(message, spec)
        current = self.subscriptions.get(spec.name, set())
        added = len(set(keys) - current)
        limit = self._settings.max_subscriptions
        if self.subscription_count + added > limit:
            raise ProtocolError(
                "too_many_subscriptions",
                f"at most {limit} subscriptions per connection, "
                f"this would make {self.subscription_count + added}",
                extra={"limit": limit},
            )
        self.subscriptions.setdefault(spec.name, set()).update(keys)
        command = Subscribe(spec.name, keys, request_id, recovery, max_rate_ms)
        return SessionOutput(commands=[command])

    def _unsubscribe(
        self, message: Mapping[str, object], request_id: RequestId | None
    ) -> SessionOutput:
        spec = self._channel(message)
        keys = spec.parse_keys(message)
        current = self.subscriptions.get(spec.name, set())
        removed = tuple(k for k in dict.fromkeys(keys) if k in current)
        current.difference_update(removed)
        if not current:
            self.subscriptions.pop(spec.name, None)
        return SessionOutput(commands=[Unsubscribe(spec.name, removed, request_id)])

    def _parse_json_object(self, data: bytes) -> Mapping[str, object]:
        # The injected decoder must accept strict UTF-8 JSON only (no NaN, no
        # lone surrogates), so whatever it returns can be echoed back safely.
        try:
            message = self._decode_json(data)
        except (ValueError, RecursionError) as e:
            raise ProtocolError("bad_json", f"message is not valid UTF-8 JSON: {e}") from None
        if not isinstance(message, dict):
            kind = type(message).__name__
            raise ProtocolError("bad_request", f"message must be a JSON object, was {kind}")
        return message

    # --- limits ----------------------------------------------------------------

    def _take_token(self, now_ns: int) -> bool:
        elapsed_s = max(0, now_ns - self._tokens_at_ns) / _NS_PER_S
        self._tokens_at_ns = now_ns
        burst = float(self._settings.inbound_burst)
        self._tokens = min(burst, self._tokens + elapsed_s * self._settings.inbound_rate_per_s)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _fail(
        self, error: ProtocolError, request_id: RequestId | None, now_ns: int
    ) -> SessionOutput:
        reply: Message = {
            "type": "error",
            "code": error.code,
            "message": error.message,
            "retry": error.is_retriable,
            **error.extra,
        }
        output = SessionOutput(messages=[with_request_id(reply, request_id)])
        if error.close_code is not None:
            output.close = Close(error.close_code, error.code)
        elif self._count_error(now_ns):
            limit, window = self._settings.error_limit, self._settings.error_window_s
            output.messages.append(
                {
                    "type": "error",
                    "code": "too_many_errors",
                    "message": f"more than {limit} errors within {window:g} s",
                    "retry": False,
                }
            )
            output.close = Close(closecodes.POLICY_VIOLATION, "too_many_errors")
        if output.close is not None:
            self.is_closed = True
        return output

    def _count_error(self, now_ns: int) -> bool:
        # Returns True when this error crosses the abuse threshold.
        times = self._error_times_ns
        times.append(now_ns)
        horizon = now_ns - int(self._settings.error_window_s * _NS_PER_S)
        while times and times[0] <= horizon:
            times.popleft()
        return len(times) > self._settings.error_limit


def _shorten(text: str) -> str:
    # Client text echoed in replies is capped, so a reply stays small.
    return text if len(text) <= _MAX_ECHO_CHARS else text[:_MAX_ECHO_CHARS] + "..."


def _parse_request_id(message: Mapping[str, object]) -> RequestId | None:
    request_id = message.get("id")
    if request_id is None:
        return None
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        raise ProtocolError("bad_request", "id must be an integer or a string")
    if isinstance(request_id, int) and not _INT64_MIN <= request_id <= _INT64_MAX:
        raise ProtocolError("bad_request", "id must fit in a signed 64-bit integer")
    if isinstance(request_id, str) and len(request_id) > _MAX_ID_CHARS:
        raise ProtocolError("bad_request", f"id must be at most {_MAX_ID_CHARS} characters")
    return request_id


def _parse_recovery(message: Mapping[str, object], keys: Sequence[str]) -> Recovery | None:
    epoch, last_seq = message.get("epoch"), message.get("last_seq")
    if epoch is None and last_seq is None:
        return None
    if not isinstance(epoch, str) or not epoch:
        raise ProtocolError("bad_request", "recovery needs epoch as a non-empty string")
    if isinstance(last_seq, int) and not isinstance(last_seq, bool):
        if len(keys) != 1:
            raise ProtocolError(
                "bad_request", "last_seq must be an object of key to seq for several keys"
            )
        seqs: dict[str, object] = {keys[0]: last_seq}
    elif isinstance(last_seq, dict):
        seqs = last_seq
    else:
        raise ProtocolError("bad_request", "last_seq must be an integer or an object")
    parsed: dict[str, int] = {}
    for key in keys:
        seq = seqs.get(key)
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ProtocolError("bad_request", f"last_seq needs a non-negative integer for {key}")
        parsed[key] = seq
    return Recovery(epoch, parsed)


def _parse_max_rate(message: Mapping[str, object], spec: ChannelSpec) -> int:
    max_rate_ms = message.get("max_rate_ms", 0)
    if (
        isinstance(max_rate_ms, bool)
        or not isinstance(max_rate_ms, int)
        or not 0 <= max_rate_ms <= MAX_RATE_MS_LIMIT
    ):
        raise ProtocolError(
            "bad_request", f"max_rate_ms must be an integer from 0 to {MAX_RATE_MS_LIMIT}"
        )
    if max_rate_ms and not spec.conflates:
        raise ProtocolError(
            "bad_request", f"channel {spec.name} is lossless: it takes no max_rate_ms"
        )
    return max_rate_ms


def with_request_id(message: Message, request_id: RequestId | None) -> Message:
    """Echo the client's request ``id`` in a reply, when it sent one."""
    if request_id is not None:
        message["id"] = request_id
    return message
