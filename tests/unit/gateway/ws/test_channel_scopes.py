"""Which scope reads which channel: quotes:read, portfolio:read, orders:read, and read for all."""

from __future__ import annotations

import pytest

from gateway.auth import Principal
from gateway.errors import ProtocolError
from gateway.ws.channelspecs import OrdersChannelSpec, PortfolioChannelSpec, QuotesChannelSpec
from portfolio.types import AccountId


def principal(*scopes: str) -> Principal:
    return Principal("svc", frozenset({AccountId("ACC-1")}), frozenset(scopes), 2_000_000_000)


@pytest.mark.parametrize(
    ("scopes", "readable"),
    [(("quotes:read",), True), (("read",), True), (("portfolio:read", "orders:read"), False)],
)
def test_closed_quotes_need_quotes_read(scopes, readable):
    spec = QuotesChannelSpec({"AAPL"}, is_open=False)

    assert (spec.refused(["AAPL"], principal(*scopes)) == []) is readable


def test_closed_quotes_refuse_a_token_without_the_scope_as_forbidden():
    spec = QuotesChannelSpec({"AAPL"}, is_open=False)

    with pytest.raises(ProtocolError) as caught:
        spec.check_keys(["AAPL"], principal("orders:read"))

    assert caught.value.code == "forbidden"


def test_open_quotes_take_any_token():
    assert QuotesChannelSpec({"AAPL"}).refused(["AAPL"], principal()) == []


@pytest.mark.parametrize(
    ("scopes", "readable"),
    [(("portfolio:read",), True), (("read",), True), (("quotes:read", "orders:read"), False)],
)
def test_portfolio_needs_portfolio_read(scopes, readable):
    spec = PortfolioChannelSpec({"ACC-1"})

    assert (spec.refused(["ACC-1"], principal(*scopes)) == []) is readable


@pytest.mark.parametrize(
    ("scopes", "readable"),
    [(("orders:read",), True), (("read",), True), (("portfolio:read", "orders:write"), False)],
)
def test_orders_need_orders_read(scopes, readable):
    spec = OrdersChannelSpec({"ACC-1"})

    assert (spec.refused(["ACC-1"], principal(*scopes)) == []) is readable


def test_a_scope_grants_only_the_accounts_the_token_lists():
    assert PortfolioChannelSpec({"ACC-1", "ACC-2"}).refused(
        ["ACC-1", "ACC-2"], principal("portfolio:read")
    ) == ["ACC-2"]
