"""The Redis idempotency store: one hash per record, each operation one Lua script.

Layout: ``<prefix>:idem:<transfer_id>``, a hash with

- ``fp`` (fingerprint), ``owner`` (the attempt holding the lease),
  ``lease`` and ``exp`` (UNIX ns, zero-padded to 20 digits so that Lua
  compares them exactly as strings: Lua numbers are doubles, which cannot
  hold a nanosecond timestamp);
- ``cmd``: the prepared command (the bus's JSON wire form), once prepared;
- ``status``, ``headers`` (a JSON array of [name, value]) and ``body``
  (bytes as sent), once completed.

Each port method is one script (one round trip), so the claim of the hot
path is atomic with the decision of ``orders.idempotency.decide``, which
the script mirrors; the contract suite runs both adapters through the same
cases. Expiry is logical (``exp`` against the caller's clock) and physical
(``PEXPIRE`` with the retention, so Redis reclaims the memory).

Connection errors and timeouts become ``IdempotencyUnavailable``. A killed
and restarted Redis comes back empty: records are lost, but no request
runs without a claim, and the ledger's dedupe on transfer id still holds.
"""

from __future__ import annotations

from typing import Final, cast

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from orders.commands import Command, command_from_wire, command_to_wire
from orders.errors import CommandDecodeError, IdempotencyUnavailable
from orders.idempotency import (
    Busy,
    Claimed,
    ClaimOutcome,
    IdempotencyRecord,
    Mismatch,
    RecordState,
    Replay,
    StoredResponse,
)
from orders.settings import IdempotencySettings
from orders.types import TransferId

__all__ = ["RedisIdempotencyStore"]

_CLAIM: Final = """
local key = KEYS[1]
local fp, owner, now, lease_until, expires_at, ttl_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local r = redis.call('HMGET', key, 'fp', 'owner', 'lease', 'exp', 'status', 'cmd')
if r[1] and r[4] <= now then
  redis.call('DEL', key)
  r = {false}
end
if not r[1] then
  redis.call('HSET', key, 'fp', fp, 'owner', owner, 'lease', lease_until, 'exp', expires_at)
  redis.call('PEXPIRE', key, ttl_ms)
  return {'claimed'}
end
if r[1] ~= fp then
  return {'mismatch'}
end
if r[5] then
  local done = redis.call('HMGET', key, 'status', 'headers', 'body')
  return {'replay', done[1], done[2], done[3]}
end
if r[2] == owner then
  return {'claimed'}
end
if r[3] > now then
  return {'busy', r[3]}
end
redis.call('HSET', key, 'owner', owner, 'lease', lease_until)
return {'takeover', r[6] or ''}
"""

_PREPARE: Final = """
local r = redis.call('HMGET', KEYS[1], 'owner', 'status')
if r[1] ~= ARGV[1] or r[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'cmd', ARGV[2], 'lease', ARGV[3])
return 1
"""

_COMPLETE: Final = """
local r = redis.call('HMGET', KEYS[1], 'owner', 'status')
if r[1] ~= ARGV[1] then
  return 0
end
if r[2] then
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'headers', ARGV[3], 'body', ARGV[4],
  'exp', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

_RELEASE: Final = """
local r = redis.call('HMGET', KEYS[1], 'owner', 'status', 'cmd')
if r[1] ~= ARGV[1] or r[2] then
  return 0
end
if r[3] then
  redis.call('HSET', KEYS[1], 'lease', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""

_NS_PER_MS: Final = 1_000_000


def _ns(value: int) -> bytes:
    return b"%020d" % value


class RedisIdempotencyStore:
    """Idempotency records in Redis; see the module docstring."""

    def __init__(
        self,
        url: str,
        settings: IdempotencySettings | None = None,
        *,
        key_prefix: str = "tickgate",
        timeout_s: float = 2.0,
    ) -> None:
        self._url = url
        self._settings = settings or IdempotencySettings()
        self._prefix = key_prefix
        self._timeout_s = timeout_s
        self._client: Redis | None = None
        self._claim: AsyncScript | None = None
        self._prepare: AsyncScript | None = None
        self._complete: AsyncScript | None = None
        self._release: AsyncScript | None = None

    async def start(self) -> None:
        """Create the client; connections open on first use, so a down server is no error."""
        client = Redis.from_url(
            self._url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            decode_responses=False,
        )
        self._client = client
        # register_script is typed for both clients; these run on the asyncio one.
        self._claim = client.register_script(_CLAIM)
        self._prepare = client.register_script(_PREPARE)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    async def stop(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> RedisIdempotencyStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def claim(
        self, transfer_id: TransferId, fingerprint: str, owner: str, now_ns: int
    ) -> ClaimOutcome:
        s = self._settings
        reply = await self._run(
            self._claim,
            transfer_id,
            fingerprint,
            owner,
            _ns(now_ns),
            _ns(now_ns + s.lease_ns),
            _ns(now_ns + s.retention_ns),
            s.retention_ns // _NS_PER_MS,
        )
        assert isinstance(reply, list)  # the script always returns an array
        tag = reply[0]
        if tag == b"claimed":
            return Claimed(is_takeover=False)
        if tag == b"mismatch":
            return Mismatch()
        if tag == b"busy":
            return Busy(int(reply[1]))
        if tag == b"replay":
            return Replay(_response(reply[1], reply[2], reply[3]))
        assert tag == b"takeover", tag
        return Claimed(is_takeover=True, command=_command(reply[1]) if reply[1] else None)

    async def prepare(
        self, transfer_id: TransferId, owner: str, command: Command, now_ns: int
    ) -> bool:
        wire = orjson.dumps(command_to_wire(command))
        lease_until = _ns(now_ns + self._settings.lease_ns)
        return bool(await self._run(self._prepare, transfer_id, owner, wire, lease_until))

    async def complete(
        self, transfer_id: TransferId, owner: str, response: StoredResponse, now_ns: int
    ) -> bool:
        s = self._settings
        reply = await self._run(
            self._complete,
            transfer_id,
            owner,
            str(response.status).encode(),
            orjson.dumps([list(pair) for pair in response.headers]),
            response.body,
            _ns(now_ns + s.retention_ns),
            s.retention_ns // _NS_PER_MS,
        )
        return bool(reply)

    async def release(self, transfer_id: TransferId, owner: str) -> bool:
        return bool(await self._run(self._release, transfer_id, owner, _ns(0)))

    async def get(self, transfer_id: TransferId, now_ns: int) -> IdempotencyRecord | None:
        client = self._require_client()
        try:
            raw = await client.hgetall(self._key(transfer_id))
            # decode_responses=False: every name and value is bytes.
            fields = cast(dict[bytes, bytes], raw)
        except (RedisError, OSError) as e:
            raise IdempotencyUnavailable(f"redis read failed: {e}") from e
        if not fields or int(fields[b"exp"]) <= now_ns:
            return None
        is_completed = b"status" in fields
        return IdempotencyRecord(
            transfer_id=transfer_id,
            fingerprint=fields[b"fp"].decode(),
            state=RecordState.COMPLETED if is_completed else RecordState.IN_PROGRESS,
            owner=fields[b"owner"].decode(),
            lease_until_ns=int(fields[b"lease"]),
            expires_at_ns=int(fields[b"exp"]),
            command=_command(fields[b"cmd"]) if b"cmd" in fields else None,
            response=(
                _response(fields[b"status"], fields[b"headers"], fields[b"body"])
                if is_completed
                else None
            ),
        )

    async def _run(
        self, script: AsyncScript | None, transfer_id: TransferId, *args: bytes | str | int
    ) -> object:
        self._require_client()
        assert script is not None  # set together with the client
        try:
            return await script(keys=[self._key(transfer_id)], args=list(args))
        except (RedisError, OSError) as e:
            raise IdempotencyUnavailable(f"redis idempotency store failed: {e}") from e

    def _require_client(self) -> Redis:
        if self._client is None:
            raise IdempotencyUnavailable("the redis idempotency store was not started")
        return self._client

    def _key(self, transfer_id: TransferId) -> str:
        return f"{self._prefix}:idem:{transfer_id}"


def _response(status: bytes, headers: bytes, body: bytes) -> StoredResponse:
    pairs = orjson.loads(headers)
    return StoredResponse(int(status), tuple((str(n), str(v)) for n, v in pairs), body)


def _command(wire: bytes) -> Command:
    try:
        return command_from_wire(orjson.loads(wire))
    except orjson.JSONDecodeError as e:
        raise CommandDecodeError("bad_json", f"stored command is not JSON: {e}") from e
