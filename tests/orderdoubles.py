"""Test doubles of the order API's own ports, and builders for OrderEntry tests.

These stand in for ports we define (``AccountView``, ``OrderView``,
``CommandBus``/``CommandLookup``), never for a real server: the Kafka bus
and the Redis store are tested against real servers elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from orders.answers import encode_json
from orders.api import ApiRequest, ApiResponse, Caller, Unauthenticated
from orders.bus import CommandBus, CommandLookup
from orders.commands import Command
from orders.entry import OrderEntry
from orders.errors import BusUnavailable, InvalidCursor, StateUnavailable
from orders.events import EntryEvent
from orders.idempotency import IdempotencyRecord, IdempotencyStore
from orders.memory import MemoryIdempotencyStore
from orders.ports import EntryPorts
from orders.risk import AccountSnapshot, MarketQuote
from orders.settings import EntrySettings
from orders.types import AccountId, OrderId, PaymentId, PrincipalId, TransferId
from orders.views import OrderPage, OrderRecord, OrderStatus, PaymentRecord
from pricing.instruments import InstrumentMaster, parse_instrument_csv

NS = 1_000_000_000
T0 = 1_800_000_000 * NS  # 2027-01-15T08:00:00Z
PRINCIPAL = PrincipalId("svc-oms")
ACCOUNT = AccountId("ACC-1")


@cache
def master() -> InstrumentMaster:
    path = Path(__file__).resolve().parent.parent / "pricing" / "data" / "instruments.csv"
    return parse_instrument_csv(path.read_text(encoding="utf-8"))


class MemoryAccountView:
    """Accounts and quotes set by the test; ``is_down`` makes every call fail."""

    def __init__(self) -> None:
        self.accounts: dict[AccountId, AccountSnapshot] = {}
        self.quotes: dict[str, MarketQuote] = {}
        self.is_down = False

    def set_account(
        self,
        account_id: str = ACCOUNT,
        *,
        cash: Mapping[str, str] | None = None,
        positions: Mapping[str, str] | None = None,
        base_currency: str = "USD",
    ) -> None:
        self.accounts[AccountId(account_id)] = AccountSnapshot(
            account_id=AccountId(account_id),
            base_currency=base_currency,
            cash={c: Decimal(a) for c, a in (cash or {"USD": "1000000"}).items()},
            positions={s: Decimal(q) for s, q in (positions or {}).items()},
        )

    def set_quote(
        self,
        symbol: str,
        last: str | None,
        bid: str | None = None,
        ask: str | None = None,
        *,
        is_stale: bool = False,
    ) -> None:
        self.quotes[symbol] = MarketQuote(
            last=None if last is None else Decimal(last),
            bid=None if bid is None else Decimal(bid),
            ask=None if ask is None else Decimal(ask),
            is_stale=is_stale,
        )

    async def account(self, account_id: AccountId) -> AccountSnapshot | None:
        if self.is_down:
            raise StateUnavailable("the account view is down")
        return self.accounts.get(account_id)

    async def quote(self, symbol: str) -> MarketQuote | None:
        if self.is_down:
            raise StateUnavailable("the account view is down")
        return self.quotes.get(symbol)


class MemoryOrderView:
    """Orders and payments set by the test; cursors are list offsets as text."""

    def __init__(self) -> None:
        self.orders: list[OrderRecord] = []  # newest first
        self.payments: dict[PaymentId, PaymentRecord] = {}
        self.is_down = False

    async def get_order(self, order_id: OrderId) -> OrderRecord | None:
        self._check()
        return next((o for o in self.orders if o.order_id == order_id), None)

    async def list_orders(
        self, account_id: AccountId, *, status: OrderStatus | None, cursor: str | None, limit: int
    ) -> OrderPage:
        self._check()
        start = 0
        if cursor is not None:
            if not cursor.isdigit():
                raise InvalidCursor(f"unknown cursor {cursor!r}")
            start = int(cursor)
        matching = [
            o
            for o in self.orders
            if o.account_id == account_id and (status is None or o.status is status)
        ]
        page = matching[start : start + limit]
        has_more = start + limit < len(matching)
        return OrderPage(page, str(start + limit) if has_more else None)

    async def get_payment(self, payment_id: PaymentId) -> PaymentRecord | None:
        self._check()
        return self.payments.get(payment_id)

    def _check(self) -> None:
        if self.is_down:
            raise StateUnavailable("the order view is down")


class RecordingBus:
    """A CommandBus and CommandLookup that keeps what it was given.

    ``is_down`` makes submit raise; ``known`` is what the lookup finds
    (by default every submitted command); ``gate`` (an Event) holds submits
    until the test sets it.
    """

    def __init__(self) -> None:
        self.submitted: list[Command] = []
        self.known: dict[TransferId, Command] = {}
        self.is_down = False
        self.is_lookup_down = False
        self.gate: asyncio.Event | None = None
        self.lookups: list[TransferId] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def submit(self, command: Command) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.is_down:
            raise BusUnavailable("the bus is down")
        self.submitted.append(command)
        self.known.setdefault(command.transfer_id, command)

    async def find_command(self, transfer_id: TransferId) -> Command | None:
        self.lookups.append(transfer_id)
        if self.is_lookup_down:
            raise BusUnavailable("the lookup is down")
        return self.known.get(transfer_id)


@dataclass
class Harness:
    """An OrderEntry over doubles (and a given store), with what it emitted."""

    entry: OrderEntry
    store: IdempotencyStore
    bus: RecordingBus
    accounts: MemoryAccountView
    orders: MemoryOrderView
    events: list[EntryEvent] = field(default_factory=list)


def make_harness(
    *,
    store: IdempotencyStore | None = None,
    settings: EntrySettings | None = None,
    bus: RecordingBus | None = None,
    lookup: CommandLookup | None = None,
    owners: Iterable[str] | None = None,
    real_bus: CommandBus | None = None,
) -> Harness:
    """An OrderEntry with an ACC-1 holding USD 1,000,000 and AAPL quoted at 100.

    ``real_bus`` replaces the recording double as the entry's bus (the
    double then only answers lookups, unless ``lookup`` is given).
    """
    store = store or MemoryIdempotencyStore((settings or EntrySettings()).idempotency)
    bus = bus or RecordingBus()
    accounts = MemoryAccountView()
    accounts.set_account()
    accounts.set_quote("AAPL", "100.00", "99.99", "100.01")
    orders = MemoryOrderView()
    events: list[EntryEvent] = []
    counter = itertools.count()
    names = (
        iter(owners)
        if owners is not None
        else (f"owner-{next(counter)}" for _ in itertools.count())
    )
    new_owner: Callable[[], str] = lambda: next(names)  # noqa: E731
    entry = OrderEntry(
        master(),
        EntryPorts(
            idempotency=store,
            bus=real_bus or bus,
            lookup=lookup or bus,
            orders=orders,
            accounts=accounts,
        ),
        settings,
        on_event=events.append,
        encode=encode_json,
        new_owner=new_owner,
    )
    return Harness(entry, store, bus, accounts, orders, events)


def caller(
    *scopes: str,
    accounts: Iterable[str] = (ACCOUNT,),
    principal: str = PRINCIPAL,
) -> Caller:
    return Caller(
        PrincipalId(principal),
        frozenset(scopes or ("orders:write", "orders:read")),
        frozenset(accounts),
    )


def order_json(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "account_id": ACCOUNT,
        "symbol": "AAPL",
        "side": "buy",
        "quantity": "10",
        "type": "limit",
        "limit_price": "100.00",
        "time_in_force": "day",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _ABSENT}


def payment_json(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "account_id": ACCOUNT,
        "kind": "deposit",
        "amount": "2500.00",
        "currency": "USD",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _ABSENT}


_ABSENT = object()
ABSENT = _ABSENT
"""Pass as a field value to leave the field out of the body."""


def post(
    path: str,
    body: bytes | Mapping[str, object],
    *,
    key: str | None = "key-1",
    who: Caller | Unauthenticated | None = None,
    now_ns: int = T0,
    headers: Mapping[str, str] | None = None,
) -> ApiRequest:
    raw = body if isinstance(body, bytes) else encode_json(dict(body))
    all_headers = {"content-type": "application/json"}
    if key is not None:
        all_headers["idempotency-key"] = key
    all_headers.update(headers or {})
    return ApiRequest(
        caller=who or caller(),
        method="POST",
        path=path,
        now_ns=now_ns,
        headers=all_headers,
        body=raw,
    )


def get(
    path: str,
    *,
    query: str = "",
    who: Caller | Unauthenticated | None = None,
    now_ns: int = T0,
    method: str = "GET",
) -> ApiRequest:
    return ApiRequest(caller=who or caller(), method=method, path=path, now_ns=now_ns, query=query)


def problem_code(response: ApiResponse) -> str | None:
    import json

    if response.header("content-type") != "application/problem+json":
        return None
    code = json.loads(response.body)["code"]
    assert isinstance(code, str)
    return code


def body_of(response: ApiResponse) -> Any:  # decoded JSON: its shape is what tests assert
    import json

    value = json.loads(response.body)
    assert isinstance(value, dict)
    return value


async def wait_for_record(
    store: IdempotencyStore, transfer_id: TransferId, *, is_prepared: bool, max_steps: int = 100_000
) -> IdempotencyRecord:
    """Yield to the loop until the record exists (with its command if ``is_prepared``)."""
    for _ in range(max_steps):
        record = await store.get(transfer_id, T0)
        if record is not None and (record.command is not None or not is_prepared):
            return record
        await asyncio.sleep(0)  # a yield, not a wait: another task runs
    raise AssertionError(f"no record for {transfer_id} after {max_steps} loop steps")
