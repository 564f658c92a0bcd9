"""Redis position store: one hash per account, written in pipelined batches.

Layout (``<prefix>`` is ``tickgate`` by default):

- ``<prefix>:account:<id>``: a hash with ``base_currency``, ``version`` (the
  ledger sequence of the last fill reflected), ``cash`` (a JSON object of
  currency to amount) and one field ``position:<symbol>`` per position (a
  JSON array: quantity, avg_cost, realised_pnl, commission,
  day_open_quantity, day_trade_value);
- ``<prefix>:accounts``: the set of account ids;
- ``<prefix>:sync_mark``: a token set once the store holds every account; a
  Redis that restarted without persistence, or was emptied, has none, which
  tells the writer to write every account again.

``save`` replaces each account's hash in one MULTI/EXEC pipeline per batch.
Connection errors and timeouts become ``StoreUnavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from portfolio.errors import StoreUnavailable
from portfolio.store import AccountRecord
from portfolio.types import AccountId, PositionState

__all__ = ["RedisPositionStore"]

logger = logging.getLogger(__name__)

_POSITION: Final = "position:"
_LOAD_CHUNK: Final = 500
_FIELDS: Final = (
    "quantity",
    "avg_cost",
    "realised_pnl",
    "commission",
    "day_open_quantity",
    "day_trade_value",
)


class RedisPositionStore:
    """Account records in Redis hashes; see the module docstring."""

    def __init__(self, url: str, *, key_prefix: str = "tickgate", timeout_s: float = 2.0) -> None:
        self._url = url
        self._prefix = key_prefix
        self._timeout_s = timeout_s
        self._client: Redis | None = None

    async def start(self) -> None:
        """Create the client; connections are opened on first use."""
        self._client = Redis.from_url(
            self._url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            decode_responses=False,
        )

    async def stop(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def load(self) -> dict[AccountId, AccountRecord]:
        """Every stored account record."""
        client = self._require_client()
        try:
            ids = sorted(_text(m) for m in await client.smembers(self._index_key()))
            records: dict[AccountId, AccountRecord] = {}
            for start in range(0, len(ids), _LOAD_CHUNK):
                chunk = ids[start : start + _LOAD_CHUNK]
                async with client.pipeline(transaction=False) as pipe:
                    for account in chunk:
                        pipe.hgetall(self._key(account))
                    hashes = await pipe.execute()
                for account, fields in zip(chunk, hashes, strict=True):
                    if not fields:
                        continue
                    try:
                        records[AccountId(account)] = _decode(AccountId(account), fields)
                    except (KeyError, ValueError, TypeError) as e:
                        # A cache entry that cannot be read is a miss: the
                        # account is rebuilt from the truth and written again.
                        logger.warning(
                            "ignoring an unreadable cached account %s: %s",
                            account,
                            e,
                            extra={"event": "positions.cached_account_unreadable"},
                        )
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"redis load failed: {e}") from e
        return records

    async def save(self, records: Sequence[AccountRecord]) -> None:
        """Replace these accounts' hashes in one transaction."""
        if not records:
            return
        client = self._require_client()
        try:
            async with client.pipeline(transaction=True) as pipe:
                for record in records:
                    key = self._key(record.account)
                    pipe.delete(key)
                    # redis-py types mapping keys invariantly; str keys are valid.
                    pipe.hset(key, mapping=cast(Mapping[Any, bytes], _encode(record)))
                    pipe.sadd(self._index_key(), record.account)
                await pipe.execute()
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"redis save failed: {e}") from e

    async def clear(self) -> None:
        """Delete every account hash and the index."""
        client = self._require_client()
        try:
            ids = [_text(m) for m in await client.smembers(self._index_key())]
            async with client.pipeline(transaction=True) as pipe:
                for account in ids:
                    pipe.delete(self._key(account))
                pipe.delete(self._index_key(), self._sync_mark_key())
                await pipe.execute()
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"redis clear failed: {e}") from e

    async def read_sync_mark(self) -> str | None:
        """The sync mark, None when the key is missing."""
        client = self._require_client()
        try:
            value = await client.get(self._sync_mark_key())
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"redis read of the sync mark failed: {e}") from e
        return None if value is None else _text(value)

    async def ensure_sync_mark(self, mark: str) -> str:
        """``SET NX`` the sync mark, then read it back."""
        client = self._require_client()
        key = self._sync_mark_key()
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(key, mark, nx=True)
                pipe.get(key)
                _, value = await pipe.execute()
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"redis write of the sync mark failed: {e}") from e
        return _text(value)

    def _require_client(self) -> Redis:
        if self._client is None:
            raise StoreUnavailable("the redis store was not started")
        return self._client

    def _key(self, account: str) -> str:
        return f"{self._prefix}:account:{account}"

    def _index_key(self) -> str:
        return f"{self._prefix}:accounts"

    def _sync_mark_key(self) -> str:
        return f"{self._prefix}:sync_mark"


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member


def _encode(record: AccountRecord) -> dict[str, bytes]:
    fields = {
        "base_currency": record.base_currency.encode(),
        "version": str(record.version).encode(),
        "cash": orjson.dumps(dict(record.cash)),
    }
    for symbol, state in record.positions.items():
        fields[_POSITION + symbol] = orjson.dumps([getattr(state, f) for f in _FIELDS])
    return fields


def _decode(account: AccountId, fields: dict[bytes, bytes]) -> AccountRecord:
    positions = {}
    for name, value in fields.items():
        key = name.decode()
        if key.startswith(_POSITION):
            numbers = orjson.loads(value)
            positions[key[len(_POSITION) :]] = PositionState(*(float(x) for x in numbers))
    return AccountRecord(
        account=account,
        base_currency=fields[b"base_currency"].decode(),
        version=int(fields[b"version"]),
        cash={c: float(a) for c, a in orjson.loads(fields[b"cash"]).items()},
        positions=positions,
    )
